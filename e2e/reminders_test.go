package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

func (s *stack) runReminders(t *testing.T, today time.Time) *contract.ReminderRunResult {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: contract.TaskQueue,
		ID: "reminder-run-test-" + today.Format(time.DateOnly) + "-" + time.Now().Format("150405.000")},
		workflows.ReminderRunWorkflow, &contract.ReminderRunInput{Today: today})
	require.NoError(t, err)
	var res contract.ReminderRunResult
	require.NoError(t, run.Get(ctx, &res))
	return &res
}

// The seed story: pay part, then the remaining-balance reminder arrives once
// with a link for the rest, however often the daily run is triggered.
func TestRemainingBalanceReminderOnce(t *testing.T) {
	s := getStack(t)
	inv := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 20000, map[string]any{"partial_payments": map[string]any{"enabled": true, "minimum_amount": 5000}})
	id := inv.str("id")
	due, err := time.Parse(time.DateOnly, inv.str("due_date"))
	require.NoError(t, err)
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 8000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "partially_paid", r.Body["invoice"].(map[string]any)["status"])

	countReminders := func() int {
		n := 0
		for _, m := range s.mailsFor(id) {
			if kindOf(m) == "reminder" {
				n++
			}
		}
		return n
	}
	// Two weeks before the due date nothing is due.
	s.runReminders(t, due.AddDate(0, 0, -14))
	// On the due date the run signals it and one reminder goes out.
	res := s.runReminders(t, due)
	assert.GreaterOrEqual(t, res.Signalled, 1)
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, 1, countReminders()) }, 30*time.Second, 200*time.Millisecond)
	var reminder string
	for _, m := range s.mailsFor(id) {
		if kindOf(m) == "reminder" {
			reminder = m.Text
		}
	}
	assert.Contains(t, reminder, "$120.00")
	assert.Contains(t, reminder, s.API.URL+"/pay/")
	assert.NotContains(t, reminder, "late fee")

	// Triggered again the same day: nothing new.
	s.runReminders(t, due)
	time.Sleep(2 * time.Second) // give a (wrong) second email time to arrive
	assert.Equal(t, 1, countReminders())
	sent, err := s.Store.RemindersSent(context.Background(), id)
	require.NoError(t, err)
	assert.Len(t, sent, 1)

	v, err := s.Temporal.QueryWorkflow(context.Background(), contract.InvoiceWorkflowID(id), "", contract.StateQuery)
	require.NoError(t, err)
	var st contract.InvoiceState
	require.NoError(t, v.Get(&st))
	require.NotNil(t, st.NextReminderAt)
	assert.Equal(t, due.AddDate(0, 0, 7), *st.NextReminderAt)
}

func TestNoReminderForPaidOrVoidInvoices(t *testing.T) {
	s := getStack(t)
	paid := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 5000, nil)
	require.Equal(t, 200, s.do(t, "POST", "/v1/invoices/"+paid.str("id")+"/payments", s.Key, map[string]any{"amount": 5000, "payment_method": "pm_card_visa"}).Status)
	void := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 5000, nil)
	v := s.do(t, "POST", "/v1/invoices/"+void.str("id")+"/void", s.Key, nil)
	require.Equal(t, 200, v.Status, string(v.Raw))
	assert.Equal(t, "void", v.str("status"))
	due, _ := time.Parse(time.DateOnly, paid.str("due_date"))
	s.runReminders(t, due.AddDate(0, 0, 7))
	time.Sleep(time.Second)
	for _, inv := range []*resp{paid, void} {
		for _, m := range s.mailsFor(inv.str("id")) {
			assert.NotEqual(t, "reminder", kindOf(m), inv.str("status"))
		}
	}
	// A void invoice cannot be paid.
	r := s.do(t, "POST", "/v1/invoices/"+void.str("id")+"/payments", s.Key, map[string]any{"amount": 5000, "payment_method": "pm_card_visa"})
	assert.Contains(t, []int{409}, r.Status, string(r.Raw))
}

func TestResendInvoiceEmail(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 7000, nil).str("id")
	issued := func() []string {
		var out []string
		for _, m := range s.mailsFor(id) {
			if kindOf(m) == "invoice_issued" {
				out = append(out, m.MessageID)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(issued()) == 1 }, 20*time.Second, 100*time.Millisecond)

	r := s.do(t, "POST", "/v1/invoices/"+id+"/send", s.Key, nil, "Idempotency-Key", "resend-1")
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "open", r.str("status"))
	require.Eventually(t, func() bool { return len(issued()) == 2 }, 20*time.Second, 100*time.Millisecond)
	// The retried request sends nothing more.
	again := s.do(t, "POST", "/v1/invoices/"+id+"/send", s.Key, nil, "Idempotency-Key", "resend-1")
	require.Equal(t, 200, again.Status, string(again.Raw))
	time.Sleep(500 * time.Millisecond)
	assert.Len(t, issued(), 2)
	// A new fresh link, different from the first email's.
	msgs := s.mailsFor(id)
	assert.NotEqual(t, msgs[0].Text, msgs[len(msgs)-1].Text)

	// Clients cannot resend; another practice sees nothing.
	tok := s.portalToken(t, s.Key, cl)
	assert.Equal(t, 404, s.do(t, "POST", "/v1/invoices/"+id+"/send", tok, nil).Status, "practice-only route")
	_, otherKey, err := s.Store.CreatePractice(context.Background(), store.NewPractice{Name: "Other Practice", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	assert.Equal(t, 404, s.do(t, "POST", "/v1/invoices/"+id+"/send", otherKey, nil).Status)

	// Paid or void: nothing to send.
	require.Equal(t, 200, s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 7000, "payment_method": "pm_card_visa"}).Status)
	paid := s.do(t, "POST", "/v1/invoices/"+id+"/send", s.Key, nil)
	assert.Equal(t, 409, paid.Status, string(paid.Raw))
	void := s.newInvoice(t, s.Key, cl, 5000, nil).str("id")
	require.Equal(t, 200, s.do(t, "POST", "/v1/invoices/"+void+"/void", s.Key, nil).Status)
	assert.Equal(t, 409, s.do(t, "POST", "/v1/invoices/"+void+"/send", s.Key, nil).Status)
}
