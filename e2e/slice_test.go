package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/billflow/billflow/contract"
)

func TestPayInFullWithVisa(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	inv := s.newInvoice(t, s.Key, cl, 18000, nil)
	id := inv.str("id")
	assert.Equal(t, "open", inv.str("status"))
	assert.Equal(t, int64(18000), inv.num("amount_due"))
	assert.Equal(t, "invoice-"+id, inv.str("workflow_id"))

	pay := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 18000, "payment_method": "pm_card_visa",
		"payer_name": "Ada Lovelace", "billing_zip": "10001"}, "Idempotency-Key", "pay-"+id)
	require.Equal(t, 200, pay.Status, string(pay.Raw))
	payment := pay.Body["payment"].(map[string]any)
	assert.Equal(t, "succeeded", payment["status"])
	invoice := pay.Body["invoice"].(map[string]any)
	assert.Equal(t, "paid", invoice["status"])

	got := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	require.Equal(t, 200, got.Status)
	assert.Equal(t, "paid", got.str("status"))
	assert.Equal(t, int64(0), got.num("amount_due"))
	assert.Equal(t, int64(18000), got.num("amount_paid"))
	pays := got.Body["payments"].([]any)
	require.Len(t, pays, 1)
	assert.Equal(t, "visa", pays[0].(map[string]any)["brand"])
	assert.Equal(t, "4242", pays[0].(map[string]any)["last4"])

	// The same request again (a client retry) returns the first answer and charges nothing new.
	before := s.Sandbox.CountPaymentIntents()
	again := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 18000, "payment_method": "pm_card_visa",
		"payer_name": "Ada Lovelace", "billing_zip": "10001"}, "Idempotency-Key", "pay-"+id)
	require.Equal(t, 200, again.Status, string(again.Raw))
	assert.Equal(t, payment["id"], again.Body["payment"].(map[string]any)["id"])
	assert.Equal(t, before, s.Sandbox.CountPaymentIntents())

	// The ledger balances to the invoice's amount due.
	bal, err := s.Store.LedgerBalance(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, int64(0), bal)

	// Visible in Temporal: a visibility query on the custom search attribute finds it.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		res, err := s.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`InvoiceStatus="paid" AND WorkflowId=%q`, contract.InvoiceWorkflowID(id))})
		if !assert.NoError(c, err) {
			return
		}
		assert.Len(c, res.Executions, 1)
	}, 20*time.Second, 200*time.Millisecond)

	// The client got the invoice email with its Pay Invoice link and PDF, then the receipt.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		msgs := s.mailsFor(id)
		if !assert.Len(c, msgs, 2) {
			return
		}
		assert.Equal(c, "invoice_issued", kindOf(msgs[0]))
		assert.Contains(c, msgs[0].Text, s.API.URL+"/pay/")
		assert.Contains(c, msgs[0].HTML, "Pay Invoice")
		if assert.Len(c, msgs[0].Attachments, 1) {
			assert.Equal(c, "application/pdf", msgs[0].Attachments[0].ContentType)
		}
		assert.Equal(c, "payment_received", kindOf(msgs[1]))
		if assert.Len(c, msgs[1].Attachments, 1) {
			assert.Contains(c, msgs[1].Attachments[0].Filename, "Receipt")
		}
	}, 30*time.Second, 200*time.Millisecond)

	// The state Query agrees.
	v, err := s.Temporal.QueryWorkflow(context.Background(), contract.InvoiceWorkflowID(id), "", contract.StateQuery)
	require.NoError(t, err)
	var st contract.InvoiceState
	require.NoError(t, v.Get(&st))
	assert.Equal(t, "paid", string(st.Status))
	assert.NotNil(t, st.ClosesAt)
}

func TestDeclinedCardChangesNothing(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 9000, "payment_method": "pm_card_chargeDeclined"})
	require.Equal(t, 402, r.Status, string(r.Raw))
	assert.Equal(t, "card_declined", r.errCode())
	assert.Equal(t, "generic_decline", r.Body["error"].(map[string]any)["decline_code"])
	assert.NotEmpty(t, r.Body["error"].(map[string]any)["message"])
	got := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	assert.Equal(t, "open", got.str("status"))
	assert.Equal(t, int64(9000), got.num("amount_due"))
	assert.Empty(t, got.Body["payments"])
}

func TestAuthAndIsolation(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 5000, nil).str("id")

	r := s.do(t, "GET", "/v1/invoices/"+id, "", nil)
	assert.Equal(t, 401, r.Status)
	assert.Equal(t, "missing_api_key", r.errCode())
	r = s.do(t, "GET", "/v1/invoices/"+id, "bf_sk_wrongwrongwrong", nil)
	assert.Equal(t, 401, r.Status)
	assert.Equal(t, "invalid_api_key", r.errCode())

	other := s.newPractice(t, "Other Practice")
	for _, path := range []string{"/v1/invoices/" + id, "/v1/clients/" + cl} {
		r = s.do(t, "GET", path, other, nil)
		assert.Equal(t, 404, r.Status, path)
		assert.Equal(t, "resource_missing", r.errCode())
	}
	r = s.do(t, "POST", "/v1/invoices/"+id+"/payments", other, map[string]any{"amount": 5000, "payment_method": "pm_card_visa"})
	assert.Equal(t, 404, r.Status)
	r = s.do(t, "POST", "/v1/invoices", other, map[string]any{"client_id": cl, "due_date": "2030-01-01",
		"items": []map[string]any{{"service_date": "2026-11-01", "description": "x", "unit_amount": 5000}}})
	assert.Equal(t, 400, r.Status)
	// Still unpaid: nothing the other practice did touched it.
	assert.Equal(t, "open", s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).str("status"))
}

func TestBadInputIsRejectedWithoutChange(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 10000, nil).str("id")
	cases := []struct {
		name, path string
		body       any
		status     int
		param      string
	}{
		{"malformed json", "/v1/clients", `{"name":`, 400, ""},
		{"unknown field", "/v1/clients", map[string]any{"name": "A", "email": "a@example.com", "nickname": "x"}, 400, "nickname"},
		{"bad email", "/v1/clients", map[string]any{"name": "A", "email": "nope"}, 400, "email"},
		{"negative amount", "/v1/invoices/" + id + "/payments", map[string]any{"amount": -5, "payment_method": "pm_card_visa"}, 400, "amount"},
		{"float amount", "/v1/invoices/" + id + "/payments", `{"amount": 10.5, "payment_method": "pm_card_visa"}`, 400, "amount"},
		{"over due", "/v1/invoices/" + id + "/payments", map[string]any{"amount": 10001, "payment_method": "pm_card_visa"}, 400, "amount"},
		{"partial not enabled", "/v1/invoices/" + id + "/payments", map[string]any{"amount": 5000, "payment_method": "pm_card_visa"}, 400, "amount"},
		{"wrong currency", "/v1/invoices", map[string]any{"client_id": cl, "currency": "zzz", "due_date": "2030-01-01",
			"items": []map[string]any{{"service_date": "2026-11-01", "description": "x", "unit_amount": 5000}}}, 400, "currency"},
		{"no items", "/v1/invoices", map[string]any{"client_id": cl, "due_date": "2030-01-01", "items": []any{}}, 400, "items"},
		{"below stripe minimum", "/v1/invoices", map[string]any{"client_id": cl, "due_date": "2030-01-01",
			"items": []map[string]any{{"service_date": "2026-11-01", "description": "x", "unit_amount": 10}}}, 400, "items"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(t, "POST", c.path, s.Key, c.body)
			require.Equal(t, c.status, r.Status, string(r.Raw))
			e := r.Body["error"].(map[string]any)
			assert.NotEmpty(t, e["message"])
			assert.NotEmpty(t, e["type"])
			if c.param != "" {
				assert.Equal(t, c.param, e["param"])
			}
		})
	}
	got := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	assert.Equal(t, "open", got.str("status"))
	assert.Equal(t, int64(10000), got.num("amount_due"))
	assert.Equal(t, 0, s.countPayments(t, id))
}

func (s *stack) countPayments(t *testing.T, invoiceID string) int {
	var n int
	require.NoError(t, s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM payments WHERE invoice_id=$1`, invoiceID).Scan(&n))
	return n
}

func TestHealthReadyMetrics(t *testing.T) {
	s := getStack(t)
	assert.Equal(t, 200, s.do(t, "GET", "/healthz", "", nil).Status)
	r := s.do(t, "GET", "/readyz", "", nil)
	assert.Equal(t, 200, r.Status, string(r.Raw))
	m := s.do(t, "GET", "/metrics", "", nil)
	assert.Equal(t, 200, m.Status)
	assert.Contains(t, string(m.Raw), "billflow_http_request_duration_seconds")
	assert.Contains(t, string(m.Raw), "temporal_", "Temporal SDK metrics are exported")
}
