package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/store"
)

func TestProRate(t *testing.T) {
	for _, tc := range []struct {
		amount int64
		parts  []int64
		want   []int64
	}{
		{10000, []int64{3333, 3333, 3334}, []int64{3333, 3333, 3334}},
		{5000, []int64{3333, 3333, 3334}, []int64{1667, 1666, 1667}},
		{1, []int64{5000, 5000}, []int64{1, 0}},
		{99999, []int64{50000, 50000}, []int64{50000, 49999}},
		{20000, []int64{5000, 5000}, []int64{5000, 5000}}, // an overpayment pays no more than the fees
		{0, []int64{5000}, []int64{0}},
		{500, []int64{0, 1000}, []int64{0, 500}},
		{7, []int64{1, 1, 1, 10}, []int64{1, 1, 0, 5}},
	} {
		got := store.ProRate(tc.amount, tc.parts)
		require.Equal(t, tc.want, got, "ProRate(%d, %v)", tc.amount, tc.parts)
	}
}

type account struct {
	st       *store.Store
	ctx      context.Context
	practice *store.Practice
	client   *store.Client
}

func newAccount(t *testing.T, st *store.Store, ctx context.Context, p *store.Practice) *account {
	c, err := st.CreateClient(ctx, &store.Client{PracticeID: p.ID, Name: "Grace", Email: "grace@example.com"})
	require.NoError(t, err)
	return &account{st: st, ctx: ctx, practice: p, client: c}
}

func (a *account) invoice(t *testing.T, issued time.Time, items ...store.Item) *store.Invoice {
	inv, err := a.st.CreateInvoice(a.ctx, store.NewInvoice{PracticeID: a.practice.ID, ClientID: a.client.ID, Currency: "usd",
		IssueDate: issued, DueDate: issued.AddDate(0, 0, 14), Items: items})
	require.NoError(t, err)
	return inv
}

func (a *account) pay(t *testing.T, inv *store.Invoice, id string, amount int64) {
	_, _, err := a.st.RecordPayment(a.ctx, payment(inv, id, amount, "succeeded"))
	require.NoError(t, err)
}

func (a *account) refund(t *testing.T, inv *store.Invoice, paymentID, id string, amount int64) {
	_, _, err := a.st.RecordRefund(a.ctx, &store.Refund{ID: id, InvoiceID: inv.ID, PaymentID: paymentID, IdempotencyKey: id, Amount: amount})
	require.NoError(t, err)
}

func item(day time.Time, amount int64, cpt string) store.Item {
	return store.Item{ServiceDate: day, Description: "Session", CPTCode: cpt, Units: 1, UnitAmount: amount, DiagnosisCodes: []string{"F41.1"}}
}

func TestClientAccountAndSuperbill(t *testing.T) {
	st, ctx := storetest.Open(t)
	p, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Calm Minds", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	a := newAccount(t, st, ctx, p)
	// Payments, refunds and voids are dated when written (today); invoices on their issue date.
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from, to := today.AddDate(0, 0, -10), today.AddDate(0, 0, 5)
	d := func(n int) time.Time { return from.AddDate(0, 0, n) }

	invA := a.invoice(t, d(-20), item(d(-20), 10000, "90837"))
	invB := a.invoice(t, d(1), item(d(-5), 3333, "90834"), item(d(0), 3333, "90834"), item(d(1), 3334, "90837"))
	invC := a.invoice(t, d(2), item(d(2), 5000, "90791"))
	invE := a.invoice(t, d(3), store.Item{ServiceDate: d(3), Description: "Family session", CPTCode: "90847", Units: 2, UnitAmount: 4500})
	invF := a.invoice(t, d(4), item(d(4), 5000, "90832"))
	a.pay(t, invA, "pay_a", 10000)
	a.pay(t, invB, "pay_b", 7000)
	a.refund(t, invB, "pay_b", "re_b", 2000) // returns money the invoice had taken: the invoice is credited back
	_, err = st.VoidInvoice(ctx, invC.ID)
	require.NoError(t, err)
	a.pay(t, invE, "pay_e", 9000)
	a.pay(t, invF, "pay_f", 6000)            // 1,000 overpaid
	a.refund(t, invF, "pay_f", "re_f", 1000) // returns the overpayment: the balance rises by it

	acc, err := st.ClientAccount(ctx, p.ID, a.client.ID, "usd", from, to)
	require.NoError(t, err)
	require.Equal(t, int64(10000), acc.OpeningBalance, "invoice A, issued before the period")
	type line struct {
		Date              string
		Kind, Number      string
		Amount, Refunded  int64
		Brand, Last4, Ref string
	}
	var got []line
	for _, l := range acc.Lines {
		got = append(got, line{l.Date.Format(time.DateOnly), l.Kind, l.InvoiceNumber, l.Amount, l.Refunded, l.Brand, l.Last4, l.RefundID})
	}
	ds := func(t time.Time) string { return t.Format(time.DateOnly) }
	require.Equal(t, []line{
		{ds(d(1)), "invoice", invB.Number, 10000, 0, "", "", ""},
		{ds(d(2)), "invoice", invC.Number, 5000, 0, "", "", ""},
		{ds(d(3)), "invoice", invE.Number, 9000, 0, "", "", ""},
		{ds(d(4)), "invoice", invF.Number, 5000, 0, "", "", ""},
		{ds(today), "payment", invA.Number, -10000, 0, "visa", "4242", ""},
		{ds(today), "payment", invB.Number, -7000, 0, "visa", "4242", ""},
		{ds(today), "refund", invB.Number, 0, 2000, "visa", "4242", "re_b"},
		{ds(today), "void", invC.Number, -5000, 0, "", "", ""},
		{ds(today), "payment", invE.Number, -9000, 0, "visa", "4242", ""},
		{ds(today), "payment", invF.Number, -6000, 0, "visa", "4242", ""},
		{ds(today), "refund", invF.Number, 1000, 1000, "visa", "4242", "re_f"},
	}, got)
	require.Equal(t, int64(3000), acc.ClosingBalance)
	// The closing balance is what the client owes: invoice B's remaining 3,000.
	var due int64
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT SUM(amount_due) FROM invoices WHERE client_id=$1`, a.client.ID).Scan(&due))
	require.Equal(t, due, acc.ClosingBalance)

	before, err := st.ClientAccount(ctx, p.ID, a.client.ID, "usd", d(-40), d(-1))
	require.NoError(t, err)
	require.Zero(t, before.OpeningBalance)
	require.Len(t, before.Lines, 1)
	require.Equal(t, int64(10000), before.ClosingBalance)
	after, err := st.ClientAccount(ctx, p.ID, a.client.ID, "usd", to.AddDate(0, 0, 1), to.AddDate(0, 0, 30))
	require.NoError(t, err)
	require.Equal(t, int64(3000), after.OpeningBalance, "each period opens where the last closed")
	require.Empty(t, after.Lines)
	require.Equal(t, int64(3000), after.ClosingBalance)
	other, err := st.ClientAccount(ctx, p.ID, a.client.ID, "eur", from, to)
	require.NoError(t, err)
	require.Zero(t, other.ClosingBalance, "one currency at a time")
	require.Empty(t, other.Lines)

	items, err := st.SuperbillItems(ctx, p.ID, a.client.ID, "usd", from, to)
	require.NoError(t, err)
	type sb struct {
		Number, CPT string
		Fee, Paid   int64
	}
	var sbs []sb
	for _, it := range items {
		sbs = append(sbs, sb{it.InvoiceNumber, it.CPTCode, it.Amount, it.Paid})
	}
	// B: net paid 5,000 of 10,000 pro-rated over all three items (1667, 1666,
	// 1667); its first item is outside the period. C is void. F's refund only
	// returned the overpayment, so F is paid in full.
	require.Equal(t, []sb{
		{invB.Number, "90834", 3333, 1666},
		{invB.Number, "90837", 3334, 1667},
		{invE.Number, "90847", 9000, 9000},
		{invF.Number, "90832", 5000, 5000},
	}, sbs)

	curs, err := st.ClientCurrencies(ctx, p.ID, a.client.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"usd"}, curs)
}

func TestStatementClientsPaging(t *testing.T) {
	st, ctx := storetest.Open(t)
	p, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Calm Minds", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)
	var active []string
	for i := 0; i < 5; i++ {
		a := newAccount(t, st, ctx, p)
		a.invoice(t, from.AddDate(0, 0, i*7), item(from, 9000, "90837"))
		active = append(active, a.client.ID)
	}
	quiet := newAccount(t, st, ctx, p)
	quiet.invoice(t, from.AddDate(0, 0, -1), item(from, 9000, "90837"))
	late := newAccount(t, st, ctx, p)
	late.invoice(t, to.AddDate(0, 0, 1), item(from, 9000, "90837"))

	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		page, err := st.StatementClients(ctx, "", from, to, cursor, 2)
		require.NoError(t, err)
		for _, c := range page {
			require.Equal(t, p.ID, c.PracticeID)
			require.Equal(t, []string{"usd"}, c.Currencies)
			seen = append(seen, c.ClientID)
		}
		if len(page) < 2 {
			break
		}
		cursor = page[len(page)-1].ClientID
	}
	require.ElementsMatch(t, active, seen, "clients with activity in the period, each once")
	require.IsIncreasing(t, seen)
}

func TestDocumentFilename(t *testing.T) {
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)
	q4 := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	require.Equal(t, "INV-0001.pdf", (&store.Document{Kind: "invoice"}).Filename("INV-0001"))
	require.Equal(t, "Receipt INV-0001.pdf", (&store.Document{Kind: "receipt"}).Filename("INV-0001"))
	require.Equal(t, "Statement 2026-10.pdf", (&store.Document{Kind: "statement", PeriodFrom: &from, PeriodTo: &to}).Filename(""))
	require.Equal(t, "Superbill 2026-10-01 to 2026-12-31.pdf", (&store.Document{Kind: "superbill", PeriodFrom: &from, PeriodTo: &q4}).Filename(""))
}
