package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/store"
)

func TestClientBilling(t *testing.T) {
	st, ctx := storetest.Open(t)
	p, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Calm Minds", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	a := newAccount(t, st, ctx, p)
	stranger := newAccount(t, st, ctx, p)
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

	paid := a.invoice(t, day, item(day, 9000, "90837"))
	partly := a.invoice(t, day.AddDate(0, 0, 7), item(day.AddDate(0, 0, 7), 18000, "90837"))
	open1 := a.invoice(t, day.AddDate(0, 0, 14), item(day.AddDate(0, 0, 14), 12000, "90834"))
	void := a.invoice(t, day.AddDate(0, 0, 21), item(day.AddDate(0, 0, 21), 5000, "90832"))
	eur, err := st.CreateInvoice(ctx, store.NewInvoice{PracticeID: p.ID, ClientID: a.client.ID, Currency: "eur",
		IssueDate: day, DueDate: day.AddDate(0, 0, 14), Items: []store.Item{item(day, 7000, "90837")}})
	require.NoError(t, err)
	stranger.invoice(t, day, item(day, 99900, "90837"))
	a.pay(t, paid, "pay_paid", 9000)
	a.pay(t, partly, "pay_partly", 5000)
	_, err = st.VoidInvoice(ctx, void.ID)
	require.NoError(t, err)
	for _, kind := range []string{"statement", "superbill", "invoice"} {
		_, err := st.SaveDocument(ctx, &store.Document{PracticeID: p.ID, ClientID: a.client.ID, Kind: kind, PeriodFrom: &day, PeriodTo: &day},
			[]byte("%PDF-1.4 "+kind))
		require.NoError(t, err)
	}

	b, err := st.ClientBilling(ctx, p.ID, a.client.ID)
	require.NoError(t, err)
	require.Equal(t, "usd", b.PracticeCurrency)
	require.Equal(t, []store.CurrencyAmount{{Currency: "eur", AmountDue: 7000}, {Currency: "usd", AmountDue: 13000 + 12000}}, b.Balances)
	require.Equal(t, store.CurrencyAmount{Currency: "usd", AmountDue: 25000}, b.Balance())
	var ids []string
	for _, inv := range b.Invoices {
		ids = append(ids, inv.ID)
	}
	// Open ones first, newest first; then the paid one; never the void one.
	require.Equal(t, []string{eur.ID, open1.ID, partly.ID, paid.ID}, ids)
	require.Len(t, b.Statements, 1)
	require.Len(t, b.Superbills, 1)
	require.Equal(t, "statement", b.Statements[0].Kind)
	require.Equal(t, "superbill", b.Superbills[0].Kind)

	// Another practice's ID finds nothing, and nobody owes anything there.
	q, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Elsewhere", Currency: "cad", Timezone: "UTC"})
	require.NoError(t, err)
	none, err := st.ClientBilling(ctx, q.ID, a.client.ID)
	require.NoError(t, err)
	require.Empty(t, none.Invoices)
	require.Empty(t, none.Balances)
	require.Equal(t, store.CurrencyAmount{Currency: "cad"}, none.Balance())
}

func TestAccountHistory(t *testing.T) {
	st, ctx := storetest.Open(t)
	// A timezone far from UTC: a payment made late in the UTC day is dated by the practice's own day.
	p, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Calm Minds", Currency: "usd", Timezone: "Pacific/Kiritimati"})
	require.NoError(t, err)
	a := newAccount(t, st, ctx, p)
	loc, err := time.LoadLocation("Pacific/Kiritimati")
	require.NoError(t, err)
	now := time.Now().In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	d := func(n int) time.Time { return today.AddDate(0, 0, n) }

	old := a.invoice(t, d(-100), item(d(-100), 9000, "90837"))
	inv := a.invoice(t, d(-3), item(d(-5), 4000, "90834"),
		store.Item{ServiceDate: d(-3), Description: "Family session", CPTCode: "90847", Units: 2, UnitAmount: 4500})
	void := a.invoice(t, d(-2), item(d(-2), 5000, "90832"))
	_, err = st.VoidInvoice(ctx, void.ID)
	require.NoError(t, err)
	a.pay(t, inv, "pay_1", 6000)
	p2 := payment(inv, "pay_2", 3000, "processing")
	_, _, err = st.RecordPayment(ctx, p2)
	require.NoError(t, err)
	_, _, err = st.RecordPayment(ctx, payment(inv, "pay_failed", 1000, "failed"))
	require.NoError(t, err)
	a.refund(t, inv, "pay_1", "re_1", 1500)

	hist, err := st.AccountHistory(ctx, p.ID, a.client.ID, p.Timezone, d(-90), today)
	require.NoError(t, err)
	type line struct {
		Date, Kind, Number, Ref string
		Amount                  int64
	}
	var got []line
	for _, e := range hist {
		ref := e.Description + e.PaymentID + "/" + e.RefundID + e.Status
		got = append(got, line{e.Date.Format(time.DateOnly), string(e.Kind), e.InvoiceNumber, ref, e.Amount})
	}
	ds := func(t time.Time) string { return t.Format(time.DateOnly) }
	require.Equal(t, []line{
		{ds(d(-5)), "session", inv.Number, "Session/", 4000},
		{ds(d(-3)), "session", inv.Number, "Family session/", 9000},
		{ds(today), "payment", inv.Number, "pay_1/succeeded", 6000},
		{ds(today), "payment", inv.Number, "pay_2/processing", 3000},
		{ds(today), "refund", inv.Number, "pay_1/re_1succeeded", 1500},
	}, got, "sessions of void invoices and failed payments are left out; the invoice outside the range too")
	require.Equal(t, "90847", hist[1].CPTCode)
	require.Equal(t, int64(2), hist[1].Units)
	require.Equal(t, "visa", hist[2].Brand)
	require.Equal(t, "4242", hist[2].Last4)

	older, err := st.AccountHistory(ctx, p.ID, a.client.ID, p.Timezone, d(-120), d(-6))
	require.NoError(t, err)
	require.Len(t, older, 1)
	require.Equal(t, old.Number, older[0].InvoiceNumber)

	other, err := st.AccountHistory(ctx, "prac_other", a.client.ID, "UTC", d(-200), d(10))
	require.NoError(t, err)
	require.Empty(t, other, "scoped to the practice")
}
