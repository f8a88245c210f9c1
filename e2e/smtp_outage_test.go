package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/mail"
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
	byKind := func(kind string) (map[string]int, int) { return s.mailsByKind(id, kind) }
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
		assert.GreaterOrEqual(c, s.pendingAttempts(c, contract.InvoiceWorkflowID(id))["SendReminder"], int32(2),
			"the reminder is retrying against the stopped SMTP server")
	}, 30*time.Second, 200*time.Millisecond)

	// The client pays during the outage: answered at once, not 503.
	s.payDuringOutage(t, id, 11000)
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
	d, err := s.Temporal.DescribeWorkflowExecution(context.Background(), contract.InvoiceWorkflowID(id), "")
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

// payDuringOutage pays an invoice in full and requires the answer 200 within
// seconds: a payment that waits on an email times out here instead.
func (s *stack) payDuringOutage(t *testing.T, id string, amount int64) {
	t.Helper()
	start := time.Now()
	status, body, err := s.postWithin(20*time.Second, "/v1/invoices/"+id+"/payments", map[string]any{"amount": amount, "payment_method": "pm_card_visa"}, "")
	require.NoError(t, err, "the payment waited on an email")
	require.Equal(t, 200, status, body)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, "paid", body["invoice"].(map[string]any)["status"])
}

// postWithin is do with a deadline and no test assertions, so it can run in
// a goroutine.
func (s *stack) postWithin(timeout time.Duration, path string, body any, idemKey string) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest("POST", s.API.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.Key)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	res, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return res.StatusCode, nil, err
	}
	return res.StatusCode, out, nil
}

// pendingAttempts is how often each of a workflow's pending activities has
// been tried, by activity type.
func (s *stack) pendingAttempts(c *assert.CollectT, workflowID string) map[string]int32 {
	d, err := s.Temporal.DescribeWorkflowExecution(context.Background(), workflowID, "")
	if !assert.NoError(c, err) {
		return nil
	}
	out := map[string]int32{}
	for _, a := range d.GetPendingActivities() {
		out[a.GetActivityType().GetName()] = a.GetAttempt()
	}
	return out
}

// TestSMTPOutageResendDoesNotBlockPayment: with SMTP down the practice
// resends the invoice and the email keeps failing; the client pays
// meanwhile and is answered at once. When SMTP is back the receipt goes out
// once and the resent bill, for an invoice now paid, never does.
func TestSMTPOutageResendDoesNotBlockPayment(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 8500, nil).str("id")
	count := func(kind string) (map[string]int, int) { return s.mailsByKind(id, kind) }
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, n := count("invoice_issued")
		assert.Equal(c, 1, n)
	}, 30*time.Second, 100*time.Millisecond)

	require.NoError(t, s.Mail.StopSMTP())
	t.Cleanup(func() { require.NoError(t, s.Mail.StartSMTP()) })

	type answer struct {
		status int
		err    error
	}
	resent := make(chan answer, 1)
	go func() {
		status, _, err := s.postWithin(2*time.Minute, "/v1/invoices/"+id+"/send", nil, "outage-resend-"+id)
		resent <- answer{status, err}
	}()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, s.pendingAttempts(c, contract.InvoiceWorkflowID(id))["IssueInvoice"], int32(2),
			"the resend is retrying against the stopped SMTP server")
	}, 30*time.Second, 200*time.Millisecond)

	s.payDuringOutage(t, id, 8500)

	require.NoError(t, s.Mail.StartSMTP())
	s.waitIdle(t, id, 1)
	var r answer
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		select {
		case r = <-resent:
		default:
		}
		// 200 when the email went out within the request's wait, 202 when
		// the wait ran out first (TestResendAnswers202WhileSMTPIsDown).
		assert.Contains(c, []int{200, 202}, r.status)
		assert.NoError(c, r.err)
		ids, n := count("payment_received")
		assert.Equal(c, 1, n)
		assert.Len(c, ids, 1)
		assert.Empty(c, s.pendingAttempts(c, contract.InvoiceWorkflowID(id)))
	}, time.Minute, 200*time.Millisecond)
	ids, n := count("invoice_issued")
	assert.Equal(t, 1, n, "no bill after the payment: %v", ids)
	ids, n = count("payment_received")
	assert.Equal(t, 1, n, ids)
}

// A resend while SMTP is down answers 202 once the request's wait runs out:
// the resend is recorded and its email goes out, once, when SMTP is back. A
// request never waits on the mail server without a deadline.
func TestResendAnswers202WhileSMTPIsDown(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 6100, nil).str("id")
	s.waitMail(t, id, mail.KindInvoiceIssued)
	quick := s.withAPI(t, func(d *api.Deps) { d.UpdateWait = time.Second })
	require.NoError(t, s.Mail.StopSMTP())
	t.Cleanup(func() { _ = s.Mail.StartSMTP() })

	send := func() (int, map[string]any) {
		req, err := http.NewRequest("POST", quick.API.URL+"/v1/invoices/"+id+"/send", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+s.Key)
		req.Header.Set("Idempotency-Key", "resend-202-"+id)
		res, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
		return res.StatusCode, out
	}
	began := time.Now()
	status, body := send()
	assert.Equal(t, http.StatusAccepted, status, "%v", body)
	assert.Equal(t, id, body["id"], "the answer is the invoice")
	assert.Less(t, time.Since(began), 10*time.Second)

	require.NoError(t, s.Mail.StartSMTP())
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, 2, s.issuedMails(id), "the first bill and the resent one")
	}, time.Minute, 200*time.Millisecond)
	// The same request again gets the resend's result, and sends nothing more.
	status, _ = send()
	assert.Equal(t, http.StatusOK, status)
	s.waitIdle(t, id, 0)
	assert.Equal(t, 2, s.issuedMails(id))
}
