package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/store"
)

// The same creation key twice is one invoice with one number; the key with a
// different invoice is refused; no key is always a new invoice.
func TestCreateInvoiceOnceUnderItsKey(t *testing.T) {
	st, ctx := storetest.Open(t)
	p, first := seed(t, st, ctx, 5000, false)
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	ni := func(amount int64) store.NewInvoice {
		return store.NewInvoice{PracticeID: p.ID, ClientID: first.ClientID, Currency: "usd", IssueDate: day,
			DueDate: day.AddDate(0, 0, 14), CreationKey: p.ID + " key-1",
			Items: []store.Item{{ServiceDate: day, Description: "Session", CPTCode: "90837", Units: 1, UnitAmount: amount}}}
	}
	a, created, err := st.CreateInvoiceOnce(ctx, ni(7000))
	require.NoError(t, err)
	require.True(t, created)
	retry := ni(7000)
	retry.IssueDate = day.AddDate(0, 0, 1) // a retry after midnight is the same request
	b, created, err := st.CreateInvoiceOnce(ctx, retry)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, a.ID, b.ID)
	assert.Equal(t, a.Number, b.Number)
	assert.Equal(t, int64(7000), b.Total)
	require.Len(t, b.Items, 1)

	_, _, err = st.CreateInvoiceOnce(ctx, ni(9000))
	require.ErrorIs(t, err, store.ErrKeyReused)

	var n int
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE practice_id=$1`, p.ID).Scan(&n))
	assert.Equal(t, 2, n, "the seeded invoice and the keyed one")
	// The refused and the repeated requests took no number: the next invoice gets the next one.
	other := ni(9000)
	other.CreationKey = p.ID + " key-2"
	c, created, err := st.CreateInvoiceOnce(ctx, other)
	require.NoError(t, err)
	require.True(t, created)
	assert.Equal(t, "INV-0003", c.Number)
	assert.Equal(t, "INV-0002", a.Number)

	// Not started yet: on the reconciler's list once old enough; marked, off it.
	list, err := st.UnstartedInvoices(ctx, "", time.Now().Add(time.Minute), 10)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{a.ID, c.ID}, ids(list), "the unkeyed seed invoice is not the reconciler's")
	list, err = st.UnstartedInvoices(ctx, "", time.Now().Add(-time.Hour), 10)
	require.NoError(t, err)
	assert.Empty(t, list, "too young")
	require.NoError(t, st.MarkInvoiceWorkflowStarted(ctx, a.ID))
	list, err = st.UnstartedInvoices(ctx, "", time.Now().Add(time.Minute), 10)
	require.NoError(t, err)
	assert.Equal(t, []string{c.ID}, ids(list))
}

func ids(invs []*store.Invoice) []string {
	out := []string{}
	for _, inv := range invs {
		out = append(out, inv.ID)
	}
	return out
}
