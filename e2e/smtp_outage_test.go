package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/workflows"
)

// TestSMTPOutageReminderDoesNotBlockPayment: with SMTP down, a reminder falls
// due and keeps failing; the client pays meanwhile. The payment answers 200 at
// once (the reminder never holds the payment lock); once SMTP is back the
// receipt goes out exactly once, and the reminder, now for a paid invoice,
// never does.
func TestSMTPOutageReminderDoesNotBlockPayment(t *testing.T) {
	s := getStack(t)
	inv := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 11000, nil)
	id := inv.str("id")
	due, err := time.Parse(time.DateOnly, inv.str("due_date"))
	require.NoError(t, err)
	byKind := func(kind string) (ids map[string]int, n int) {
		ids = map[string]int{}
		for _, m := range s.mailsFor(id) {
			if kindOf(m) == kind {
				ids[m.MessageID]++
				n++
			}
		}
		return ids, n
	}
	// The invoice email goes out before SMTP goes down.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, n := byKind("invoice_issued")
		assert.Equal(c, 1, n)
	}, 30*time.Second, 100*time.Millisecond)

	require.NoError(t, s.Mail.StopSMTP())
	t.Cleanup(func() { require.NoError(t, s.Mail.StartSMTP()) })

	// The due-date reminder falls due and fails against the stopped server.
	res := s.runReminders(t, due)
	require.GreaterOrEqual(t, res.Signalled, 1)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		d, err := s.Temporal.DescribeWorkflowExecution(context.Background(), workflows.InvoiceWorkflowID(id), "")
		if !assert.NoError(c, err) {
			return
		}
		retrying := false
		for _, a := range d.GetPendingActivities() {
			if a.GetActivityType().GetName() == "SendReminder" && a.GetAttempt() >= 2 {
				retrying = true
			}
		}
		assert.True(c, retrying, "the reminder is retrying against the stopped SMTP server")
	}, 30*time.Second, 200*time.Millisecond)

	// The client pays during the outage: answered at once, not 503.
	raw, err := json.Marshal(map[string]any{"amount": 11000, "payment_method": "pm_card_visa"})
	require.NoError(t, err)
	req, err := http.NewRequest("POST", s.API.URL+"/v1/invoices/"+id+"/payments", bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.Key)
	start := time.Now()
	pay, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	require.NoError(t, err, "the payment waited on the reminder")
	var body map[string]any
	require.NoError(t, json.NewDecoder(pay.Body).Decode(&body))
	require.NoError(t, pay.Body.Close())
	require.Equal(t, 200, pay.StatusCode, body)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, "paid", body["invoice"].(map[string]any)["status"])
	_, n := byKind("payment_received")
	assert.Zero(t, n, "no receipt can go out while SMTP is down")

	require.NoError(t, s.Mail.StartSMTP())
	// Everything owed is settled: the receipt out, the reminder dropped.
	s.waitIdle(t, id, 1)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ids, n := byKind("payment_received")
		assert.Equal(c, 1, n)
		assert.Len(c, ids, 1)
	}, 30*time.Second, 100*time.Millisecond)
	d, err := s.Temporal.DescribeWorkflowExecution(context.Background(), workflows.InvoiceWorkflowID(id), "")
	require.NoError(t, err)
	assert.Empty(t, d.GetPendingActivities())
	ids, n := byKind("payment_received")
	assert.Equal(t, 1, n, ids)
	_, n = byKind("reminder")
	assert.Zero(t, n, "a reminder for an invoice paid in the meantime")
	sent, err := s.Store.RemindersSent(context.Background(), id)
	require.NoError(t, err)
	assert.Empty(t, sent)
}
