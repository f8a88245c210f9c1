package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/pgtest"
	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/store"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func seed(t *testing.T, st *store.Store, ctx context.Context, total int64, partial bool) (*store.Practice, *store.Invoice) {
	p, key, err := st.CreatePractice(ctx, store.NewPractice{Name: "Calm Minds", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	require.NotEmpty(t, key)
	c, err := st.CreateClient(ctx, &store.Client{PracticeID: p.ID, Name: "Ada", Email: "ada@example.com"})
	require.NoError(t, err)
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	inv, err := st.CreateInvoice(ctx, store.NewInvoice{PracticeID: p.ID, ClientID: c.ID, Currency: "usd", IssueDate: day,
		DueDate: day.AddDate(0, 0, 14), Items: []store.Item{{ServiceDate: day, Description: "Session", CPTCode: "90837", Units: 1, UnitAmount: total}},
		PartialPayments: store.PartialPayments{Enabled: partial, MaxInstallments: 2}})
	require.NoError(t, err)
	return p, inv
}

func payment(inv *store.Invoice, id string, amount int64, status contract.PaymentStatus) *store.Payment {
	return &store.Payment{ID: id, PracticeID: inv.PracticeID, ClientID: inv.ClientID, InvoiceID: inv.ID, IdempotencyKey: id,
		Amount: amount, Currency: "usd", Status: status, ProcessorIntentID: "pi_" + id, MethodType: "card", Brand: "visa", Last4: "4242"}
}

func TestMigrateIsIdempotent(t *testing.T) {
	st, ctx := storetest.Open(t)
	applied, err := st.Migrate(ctx)
	require.NoError(t, err)
	require.Empty(t, applied, "template database is already migrated")
}

func TestAPIKeyAuth(t *testing.T) {
	st, ctx := storetest.Open(t)
	p, key, err := st.CreatePractice(ctx, store.NewPractice{Name: "A", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	id, err := st.PracticeIDForAPIKey(ctx, key)
	require.NoError(t, err)
	require.Equal(t, p.ID, id)
	_, err = st.PracticeIDForAPIKey(ctx, key+"x")
	require.ErrorIs(t, err, store.ErrNotFound)
	var stored []byte
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT key_hash FROM api_keys WHERE practice_id=$1`, p.ID).Scan(&stored))
	require.NotContains(t, string(stored), key, "only the hash is stored")
}

func TestInvoiceNumbersAndLedger(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 18000, false)
	require.Equal(t, "INV-0001", inv.Number)
	require.Equal(t, store.StatusOpen, inv.Status)
	bal, err := st.LedgerBalance(ctx, inv.ID)
	require.NoError(t, err)
	require.Equal(t, int64(18000), bal)
	got, err := st.GetInvoice(ctx, inv.ID)
	require.NoError(t, err)
	require.Len(t, got.Items, 1)
	require.Equal(t, int64(18000), got.Items[0].Amount)
}

func TestPaymentIdempotentAndDuplicateKeyRejected(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 18000, false)
	after, p, err := st.RecordPayment(ctx, payment(inv, "pay_1", 18000, "succeeded"))
	require.NoError(t, err)
	require.Equal(t, store.StatusPaid, after.Status)
	require.Equal(t, int64(0), after.AmountDue)
	require.NotNil(t, after.PaidAt)
	require.Equal(t, "succeeded", string(p.Status))
	// The same payment recorded again (a retried activity) changes nothing.
	again, _, err := st.RecordPayment(ctx, payment(inv, "pay_1", 18000, "succeeded"))
	require.NoError(t, err)
	require.Equal(t, int64(18000), again.AmountPaid)
	// A different payment row with the same idempotency key is rejected by the database.
	_, err = st.Pool.Exec(ctx, `INSERT INTO payments (id, practice_id, client_id, invoice_id, idempotency_key, amount, currency, status)
 VALUES ('pay_dup',$1,$2,$3,'pay_1',100,'usd','succeeded')`, inv.PracticeID, inv.ClientID, inv.ID)
	require.Error(t, err)
	require.Contains(t, err.Error(), "payments_invoice_id_idempotency_key_key")
	bal, err := st.LedgerBalance(ctx, inv.ID)
	require.NoError(t, err)
	require.Equal(t, int64(0), bal)
	var n int
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_entries WHERE invoice_id=$1`, inv.ID).Scan(&n))
	require.Equal(t, 2, n)
}

func TestLedgerIsAppendOnly(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 5000, false)
	_, err := st.Pool.Exec(ctx, `UPDATE ledger_entries SET amount=0 WHERE invoice_id=$1`, inv.ID)
	require.ErrorContains(t, err, "append-only")
	_, err = st.Pool.Exec(ctx, `DELETE FROM ledger_entries WHERE invoice_id=$1`, inv.ID)
	require.ErrorContains(t, err, "append-only")
}

func TestProcessingThenSucceededAndFailed(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 18000, false)
	after, _, err := st.RecordPayment(ctx, payment(inv, "pay_b", 18000, "processing"))
	require.NoError(t, err)
	require.Equal(t, store.StatusProcessing, after.Status)
	require.Equal(t, int64(0), after.AmountDue)
	after, _, err = st.RecordPayment(ctx, payment(inv, "pay_b", 18000, "failed"))
	require.NoError(t, err)
	require.Equal(t, store.StatusOpen, after.Status, "a failed debit reopens the amount")
	require.Equal(t, int64(18000), after.AmountDue)
	// A final status is never overwritten.
	after, p, err := st.RecordPayment(ctx, payment(inv, "pay_b", 18000, "succeeded"))
	require.NoError(t, err)
	require.Equal(t, "failed", string(p.Status))
	require.Equal(t, int64(18000), after.AmountDue)
}

func TestPartialRefundsAndOverpayment(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 10000, true)
	after, _, err := st.RecordPayment(ctx, payment(inv, "pay_1", 6000, "succeeded"))
	require.NoError(t, err)
	require.Equal(t, store.StatusPartiallyPaid, after.Status)
	require.Equal(t, int64(4000), after.AmountDue)
	after, _, err = st.RecordPayment(ctx, payment(inv, "pay_2", 4000, "succeeded"))
	require.NoError(t, err)
	require.Equal(t, store.StatusPaid, after.Status)

	after, _, err = st.RecordRefund(ctx, &store.Refund{ID: "ref_1", InvoiceID: inv.ID, PaymentID: "pay_1", IdempotencyKey: "ref_1", Amount: 1000})
	require.NoError(t, err)
	require.Equal(t, store.StatusPartiallyRefunded, after.Status)
	require.Equal(t, int64(0), after.AmountDue, "a refund does not make the client owe again")
	// Idempotent.
	_, r, err := st.RecordRefund(ctx, &store.Refund{ID: "ref_1", InvoiceID: inv.ID, PaymentID: "pay_1", IdempotencyKey: "ref_1", Amount: 1000})
	require.NoError(t, err)
	require.Equal(t, int64(1000), r.Amount)
	// More than what is left on the payment is refused, and changes nothing.
	_, _, err = st.RecordRefund(ctx, &store.Refund{ID: "ref_2", InvoiceID: inv.ID, PaymentID: "pay_1", IdempotencyKey: "ref_2", Amount: 5001})
	require.True(t, errors.Is(err, store.ErrConflict), "got %v", err)
	after, _, err = st.RecordRefund(ctx, &store.Refund{ID: "ref_3", InvoiceID: inv.ID, PaymentID: "pay_1", IdempotencyKey: "ref_3", Amount: 5000})
	require.NoError(t, err)
	after, _, err = st.RecordRefund(ctx, &store.Refund{ID: "ref_4", InvoiceID: inv.ID, PaymentID: "pay_2", IdempotencyKey: "ref_4", Amount: 4000})
	require.NoError(t, err)
	require.Equal(t, store.StatusRefunded, after.Status)
	bal, err := st.LedgerBalance(ctx, inv.ID)
	require.NoError(t, err)
	require.Equal(t, after.AmountDue, bal)
}

func TestOverpaymentExcessRefundNeedsNoCredit(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 10000, false)
	// Two payments raced through the processor: 2,000 overpaid.
	_, _, err := st.RecordPayment(ctx, payment(inv, "pay_1", 10000, "succeeded"))
	require.NoError(t, err)
	_, _, err = st.RecordPayment(ctx, payment(inv, "pay_2", 2000, "succeeded"))
	require.NoError(t, err)
	bal, _ := st.LedgerBalance(ctx, inv.ID)
	require.Equal(t, int64(-2000), bal)
	after, _, err := st.RecordRefund(ctx, &store.Refund{ID: "ref_x", InvoiceID: inv.ID, PaymentID: "pay_2", IdempotencyKey: "ref_x", Amount: 2000})
	require.NoError(t, err)
	bal, _ = st.LedgerBalance(ctx, inv.ID)
	require.Equal(t, int64(0), bal)
	require.Equal(t, int64(0), after.AmountDue)
}

func TestVoid(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 10000, false)
	after, err := st.VoidInvoice(ctx, inv.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusVoid, after.Status)
	require.Equal(t, int64(0), after.AmountDue)
	_, paid := seed(t, st, ctx, 10000, false)
	_, _, err = st.RecordPayment(ctx, payment(paid, "pay_v", 10000, "succeeded"))
	require.NoError(t, err)
	_, err = st.VoidInvoice(ctx, paid.ID)
	require.ErrorIs(t, err, store.ErrConflict)
}

func TestClientIsolation(t *testing.T) {
	st, ctx := storetest.Open(t)
	p1, _ := seed(t, st, ctx, 5000, false)
	p2, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Other", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	c, err := st.CreateClient(ctx, &store.Client{PracticeID: p1.ID, Name: "Bo", Email: "bo@example.com"})
	require.NoError(t, err)
	_, err = st.GetClient(ctx, p2.ID, c.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestInvoiceDetailOneRoundTrip(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 10000, true)
	_, _, err := st.RecordPayment(ctx, payment(inv, "pay_d1", 4000, "succeeded"))
	require.NoError(t, err)
	_, _, err = st.RecordRefund(ctx, &store.Refund{ID: "ref_d1", InvoiceID: inv.ID, PaymentID: "pay_d1", IdempotencyKey: "ref_d1", Amount: 1000})
	require.NoError(t, err)
	d, err := st.GetInvoiceDetail(ctx, inv.ID)
	require.NoError(t, err)
	require.Len(t, d.Items, 1)
	require.Len(t, d.Payments, 1)
	require.Len(t, d.Refunds, 1)
	require.Equal(t, int64(6000), d.AmountDue)
	_, err = st.GetInvoiceDetail(ctx, "inv_missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	// The pool is still usable after a not-found batch.
	_, err = st.GetInvoiceDetail(ctx, inv.ID)
	require.NoError(t, err)
}

func TestRefundOnPartlyPaidInvoiceLeavesBalancePayable(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 10000, true)
	_, _, err := st.RecordPayment(ctx, payment(inv, "pay_1", 6000, "succeeded"))
	require.NoError(t, err)
	after, _, err := st.RecordRefund(ctx, &store.Refund{ID: "ref_1", InvoiceID: inv.ID, PaymentID: "pay_1", IdempotencyKey: "ref_1", Amount: 1000})
	require.NoError(t, err)
	require.Equal(t, store.StatusPartiallyPaid, after.Status, "money is still due: the invoice stays payable")
	require.Equal(t, int64(4000), after.AmountDue)
	require.Equal(t, int64(1000), after.AmountRefunded)
	require.Nil(t, after.PaidAt)
	after, _, err = st.RecordPayment(ctx, payment(inv, "pay_2", 4000, "succeeded"))
	require.NoError(t, err)
	require.Equal(t, store.StatusPartiallyRefunded, after.Status, "settled, with a refund")
	require.Equal(t, int64(0), after.AmountDue)
}

// The pool opens all its connections up front, so a burst of requests does
// not wait for new ones; pool_min_conns in the URL still decides.
func TestOpenFillsThePool(t *testing.T) {
	st, _ := storetest.Open(t)
	max := st.Pool.Config().MaxConns
	require.Eventually(t, func() bool { return st.Pool.Stat().IdleConns() == max }, 10*time.Second, 20*time.Millisecond,
		"idle %d of %d", st.Pool.Stat().IdleConns(), max)

	url := pgtest.NewDB(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	one, err := store.Open(context.Background(), url+sep+"pool_min_conns=1")
	require.NoError(t, err)
	defer one.Close()
	assert.Equal(t, int32(1), one.Pool.Config().MinConns)
}
