package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/store"
)

// A balance payment's invoices are recorded in one transaction: when the
// write of one fails, none is recorded (before, each invoice was its own
// transaction and a retry stopped at the first one it found), and the retry
// records them all, once.
func TestBalanceChargeIsRecordedWholeOrNotAtAll(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, a := seed(t, st, ctx, 10000, false)
	b, err := st.CreateInvoice(ctx, store.NewInvoice{PracticeID: a.PracticeID, ClientID: a.ClientID, Currency: "usd",
		IssueDate: a.IssueDate, DueDate: a.DueDate, Items: []store.Item{{ServiceDate: a.IssueDate, Description: "Session",
			Units: 1, UnitAmount: 5000}}})
	require.NoError(t, err)
	att, created, err := st.BeginPaymentAttempt(ctx, &store.PaymentAttempt{ID: "bal_x", Kind: "balance", PracticeID: a.PracticeID,
		ClientID: a.ClientID, Scope: "test", IdempotencyKey: "k1", RequestHash: "h1", Amount: 15000, Currency: "usd"})
	require.NoError(t, err)
	require.True(t, created)
	allocs := []store.Allocation{{InvoiceID: a.ID, PaymentID: "bal_x_1", Amount: 10000}, {InvoiceID: b.ID, PaymentID: "bal_x_2", Amount: 5000}}
	require.NoError(t, st.MarkAttemptCharging(ctx, att.ID, "", allocs))

	// The second invoice's payment cannot be written (a fault in Postgres).
	_, err = st.Pool.Exec(ctx, `CREATE FUNCTION fail_bal_x_2() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.id = 'bal_x_2' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$;
CREATE TRIGGER fail_bal_x_2 BEFORE INSERT ON payments FOR EACH ROW EXECUTE FUNCTION fail_bal_x_2();`)
	require.NoError(t, err)
	out := &store.ChargeOutcome{Status: "succeeded", IntentID: "pi_bal_x", MethodType: "card", Brand: "visa", Last4: "4242"}
	_, _, err = st.RecordCharge(ctx, att.ID, out)
	require.Error(t, err)
	pays, err := st.PaymentsOfBalance(ctx, "bal_x")
	require.NoError(t, err)
	assert.Empty(t, pays, "nothing recorded when any part fails")
	cur, err := st.GetPaymentAttempt(ctx, att.ID)
	require.NoError(t, err)
	assert.Equal(t, store.AttemptCharging, cur.Status, "still to settle")
	unsettled, err := st.UnsettledCharges(ctx, a.ClientID, b.ID, "")
	require.NoError(t, err)
	assert.Equal(t, int64(5000), unsettled, "its part of invoice b counts as paid until settled")

	_, err = st.Pool.Exec(ctx, `DROP TRIGGER fail_bal_x_2 ON payments`)
	require.NoError(t, err)
	rec, invs, err := st.RecordCharge(ctx, att.ID, out)
	require.NoError(t, err)
	assert.Equal(t, "succeeded", string(rec.Status))
	require.Len(t, invs, 2)
	for _, inv := range invs {
		assert.Equal(t, store.StatusPaid, inv.Status)
	}
	_, _, err = st.RecordCharge(ctx, att.ID, out) // a retry changes nothing
	require.NoError(t, err)
	pays, err = st.PaymentsOfBalance(ctx, "bal_x")
	require.NoError(t, err)
	assert.Len(t, pays, 2)
	for _, id := range []string{a.ID, b.ID} {
		bal, err := st.LedgerBalance(ctx, id)
		require.NoError(t, err)
		assert.Zero(t, bal)
	}
}

// The same key with the same request finds the first attempt; with another
// request it is refused; text Postgres cannot store fails before anything.
func TestBeginPaymentAttempt(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 10000, false)
	att := func(id, key, hash, payer string) *store.PaymentAttempt {
		return &store.PaymentAttempt{ID: id, Kind: "invoice", PracticeID: inv.PracticeID, ClientID: inv.ClientID, InvoiceID: inv.ID,
			Scope: "prac", IdempotencyKey: key, RequestHash: hash, Amount: 10000, Currency: "usd", PayerName: payer}
	}
	first, created, err := st.BeginPaymentAttempt(ctx, att("pay_1", "k", "h", "Ada"))
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := st.BeginPaymentAttempt(ctx, att("pay_2", "k", "h", "Ada"))
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, first.ID, again.ID, "a later run's new payment ID gives way to the first")
	_, _, err = st.BeginPaymentAttempt(ctx, att("pay_3", "k", "other", "Ada"))
	assert.ErrorIs(t, err, store.ErrKeyReused)
	_, _, err = st.BeginPaymentAttempt(ctx, att("pay_4", "k2", "h", "Ada\x00"))
	assert.ErrorIs(t, err, store.ErrInvalidText)

	// Declines count per client and per link.
	_, _, err = st.BeginPaymentAttempt(ctx, &store.PaymentAttempt{ID: "pay_5", Kind: "invoice", PracticeID: inv.PracticeID,
		ClientID: inv.ClientID, InvoiceID: inv.ID, Scope: "prac", IdempotencyKey: "k5", RequestHash: "h", Amount: 100,
		Currency: "usd", PayLinkID: "link1"})
	require.NoError(t, err)
	_, _, err = st.RecordCharge(ctx, "pay_5", &store.ChargeOutcome{Status: "failed", FailureCode: "card_declined", DeclineCode: "generic_decline"})
	require.NoError(t, err)
	byClient, byLink, err := st.Declines(ctx, inv.ClientID, "link1", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 1, byClient)
	assert.Equal(t, 1, byLink)
	pays, err := st.ListPayments(ctx, inv.ID)
	require.NoError(t, err)
	assert.Empty(t, pays, "a decline records no payment")
}
