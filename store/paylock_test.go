package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/storetest"
)

func TestClientPaymentLease(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 10000, false)
	cl := inv.ClientID
	take := func(holder string, exclusive bool, lease time.Duration) bool {
		t.Helper()
		ok, err := st.LockClientPayments(ctx, cl, holder, exclusive, lease)
		require.NoError(t, err)
		return ok
	}
	give := func(holder string) { t.Helper(); require.NoError(t, st.UnlockClientPayments(ctx, cl, holder)) }

	// Invoice payments share the lease.
	assert.True(t, take("pay_a", false, time.Minute))
	assert.True(t, take("pay_b", false, time.Minute), "two invoice payments charge at once")
	assert.True(t, take("pay_a", false, time.Minute), "a retried charge takes its own lease again")

	// A balance payment waits for them, and keeps new ones out meanwhile.
	assert.False(t, take("bal_x", true, time.Minute), "balance payment waits for the invoice payments")
	assert.False(t, take("pay_c", false, time.Minute), "a new invoice payment waits behind the balance payment")
	assert.False(t, take("bal_y", true, time.Minute), "one balance payment waits at a time")
	give("pay_a")
	assert.False(t, take("bal_x", true, time.Minute), "pay_b still charging")
	give("pay_b")
	assert.True(t, take("bal_x", true, time.Minute), "alone now")
	assert.False(t, take("pay_c", false, time.Minute))
	give("pay_c") // a non-holder's give-back changes nothing
	assert.False(t, take("pay_c", false, time.Minute))
	give("bal_x")
	assert.True(t, take("pay_c", false, time.Minute))

	// Leases are per client.
	ok, err := st.LockClientPayments(ctx, "cli_other", "bal_z", true, time.Minute)
	require.NoError(t, err)
	assert.True(t, ok)

	// A holder that died frees the lease when it runs out.
	give("pay_c")
	assert.True(t, take("bal_dead", true, 50*time.Millisecond))
	assert.False(t, take("pay_d", false, time.Minute))
	time.Sleep(100 * time.Millisecond)
	assert.True(t, take("pay_d", false, time.Minute), "an expired lease is taken over")
}

func TestAwaitingActionPayments(t *testing.T) {
	st, ctx := storetest.Open(t)
	_, inv := seed(t, st, ctx, 10000, true)
	_, _, err := st.RecordPayment(ctx, payment(inv, "pay_wait", 4000, "requires_action"))
	require.NoError(t, err)
	_, _, err = st.RecordPayment(ctx, payment(inv, "pay_done", 3000, "succeeded"))
	require.NoError(t, err)
	for _, invoiceID := range []string{inv.ID, ""} {
		ps, err := st.AwaitingActionPayments(ctx, inv.ClientID, invoiceID)
		require.NoError(t, err)
		require.Len(t, ps, 1, "invoice %q", invoiceID)
		assert.Equal(t, "pay_wait", ps[0].ID)
	}
	ps, err := st.AwaitingActionPayments(ctx, inv.ClientID, "inv_other")
	require.NoError(t, err)
	assert.Empty(t, ps)
	upd := payment(inv, "pay_wait", 4000, "failed")
	upd.FailureCode = "payment_intent_canceled"
	_, _, err = st.RecordPayment(ctx, upd)
	require.NoError(t, err)
	ps, err = st.AwaitingActionPayments(ctx, inv.ClientID, "")
	require.NoError(t, err)
	assert.Empty(t, ps, "a canceled payment no longer waits")
}
