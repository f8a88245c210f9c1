package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/api"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/stripesandbox"
)

// intentsFor lists the sandbox PaymentIntents made for one invoice.
func (s *stack) intentsFor(invoiceID string) []stripesandbox.PaymentIntent {
	var out []stripesandbox.PaymentIntent
	for _, pi := range s.Sandbox.PaymentIntents() {
		if pi.Metadata["invoice_id"] == invoiceID {
			out = append(out, pi)
		}
	}
	return out
}

func (s *stack) waitStatus(t *testing.T, invoiceID, want string) *resp {
	t.Helper()
	var last *resp
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		last = s.do(t, "GET", "/v1/invoices/"+invoiceID, s.Key, nil)
		assert.Equal(c, want, last.str("status"))
	}, 20*time.Second, 100*time.Millisecond)
	return last
}

func TestBankDebitProcessingThenPaidByWebhook(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 12000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 12000, "payment_method": "pm_usBankAccount"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "processing", r.Body["payment"].(map[string]any)["status"])
	assert.Equal(t, "processing", r.Body["invoice"].(map[string]any)["status"])
	got := s.waitStatus(t, id, "paid")
	assert.Equal(t, int64(0), got.num("amount_due"))
	assert.Equal(t, int64(12000), got.num("amount_paid"))
}

func TestBankDebitFailureReopensAmount(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 12000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 12000, "payment_method": "pm_usBankAccount_insufficientFunds"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "processing", r.Body["invoice"].(map[string]any)["status"])
	got := s.waitStatus(t, id, "open")
	assert.Equal(t, int64(12000), got.num("amount_due"))
	pays := got.Body["payments"].([]any)
	require.Len(t, pays, 1)
	assert.Equal(t, "failed", pays[0].(map[string]any)["status"])
	// The client is told, once, with a link to pay the balance another way.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var failed []string
		for _, m := range s.mailsFor(id) {
			if kindOf(m) == "payment_failed" {
				failed = append(failed, m.Text)
			}
		}
		if assert.Len(c, failed, 1) {
			assert.Contains(c, failed[0], "did not go through")
			assert.Contains(c, failed[0], "$120.00")
			assert.Contains(c, failed[0], "/pay/")
		}
	}, 20*time.Second, 100*time.Millisecond)
}

func TestSaveCardThenPayWithSavedCard(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	first := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+first+"/payments", s.Key, map[string]any{"amount": 9000, "payment_method": "pm_card_visa",
		"save_card": true, "payer_name": "Ada Lovelace", "billing_zip": "10001"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	list := s.do(t, "GET", "/v1/clients/"+cl+"/payment-methods", s.Key, nil)
	require.Equal(t, 200, list.Status)
	data := list.Body["data"].([]any)
	require.Len(t, data, 1)
	pm := data[0].(map[string]any)
	assert.Equal(t, "visa", pm["brand"])
	assert.Equal(t, "4242", pm["last4"])
	assert.Equal(t, "Ada Lovelace", pm["cardholder_name"])
	assert.Equal(t, "10001", pm["billing_zip"])
	assert.NotContains(t, string(list.Raw), "4242424242424242")

	second := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	r = s.do(t, "POST", "/v1/invoices/"+second+"/payments", s.Key, map[string]any{"amount": 9000, "saved_payment_method_id": pm["id"]})
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "paid", r.Body["invoice"].(map[string]any)["status"])
	pis := s.intentsFor(second)
	require.Len(t, pis, 1)
	assert.NotEmpty(t, pis[0].Customer, "a saved card is charged on the client's customer")

	// Another client's saved card is not usable.
	other := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 9000, nil).str("id")
	r = s.do(t, "POST", "/v1/invoices/"+other+"/payments", s.Key, map[string]any{"amount": 9000, "saved_payment_method_id": pm["id"]})
	assert.Equal(t, 400, r.Status)

	// Remove it (a practice key always may).
	del := s.do(t, "DELETE", "/v1/clients/"+cl+"/payment-methods/"+pm["id"].(string), s.Key, nil)
	require.Equal(t, 200, del.Status, string(del.Raw))
	assert.Empty(t, s.do(t, "GET", "/v1/clients/"+cl+"/payment-methods", s.Key, nil).Body["data"])
}

func TestThreeDSecureRequiresActionThenPaid(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 15000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 15000, "payment_method": "pm_card_authenticationRequired"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	p := r.Body["payment"].(map[string]any)
	assert.Equal(t, "requires_action", p["status"])
	next := p["next_action"].(map[string]any)["redirect_to_url"].(map[string]any)["url"].(string)
	assert.Contains(t, next, "/sandbox/3ds/")
	assert.Equal(t, "open", s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).str("status"))
	pis := s.intentsFor(id)
	require.Len(t, pis, 1)
	// The payer completes the challenge (what the 3-D Secure page does).
	require.NoError(t, s.Sandbox.CompleteAction(pis[0].ID, true))
	s.waitStatus(t, id, "paid")
}

// The payer leaves 3-D Secure unfinished and pays with another card: the
// waiting PaymentIntent is canceled first, so finishing it later cannot pay
// twice, and it is recorded as failed without a "payment failed" email.
func TestUnfinishedThreeDSecureIsReplacedByALaterPayment(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 15000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 15000, "payment_method": "pm_card_authenticationRequired"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	first := r.Body["payment"].(map[string]any)
	require.Equal(t, "requires_action", first["status"])

	again := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 15000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, again.Status, string(again.Raw))
	assert.Equal(t, "succeeded", again.Body["payment"].(map[string]any)["status"])
	s.waitStatus(t, id, "paid")

	pis := s.intentsFor(id)
	require.Len(t, pis, 2)
	var waiting string
	for _, pi := range pis {
		if pi.Metadata["payment_id"] == first["id"] {
			waiting = pi.ID
			assert.Equal(t, "canceled", pi.Status)
		}
	}
	require.NotEmpty(t, waiting)
	assert.Error(t, s.Sandbox.CompleteAction(waiting, true), "the replaced payment can no longer be authenticated")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		p, err := s.Store.GetPayment(context.Background(), first["id"].(string))
		if assert.NoError(c, err) {
			assert.Equal(c, "failed", string(p.Status))
		}
	}, 20*time.Second, 100*time.Millisecond)
	inv := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	assert.Equal(t, float64(15000), inv.Body["amount_paid"])
	s.waitIdle(t, id, 2)
	for _, m := range s.mailsFor(id) {
		assert.NotEqual(t, "payment_failed", kindOf(m), "no failure email for a replaced payment")
	}
}

// A balance payment replaces an invoice payment left waiting for 3-D Secure.
func TestBalancePaymentReplacesUnfinishedThreeDSecure(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	a := s.newInvoice(t, s.Key, cl, 7000, nil).str("id")
	b := s.newInvoice(t, s.Key, cl, 3000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+a+"/payments", s.Key, map[string]any{"amount": 7000, "payment_method": "pm_card_authenticationRequired"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	waiting := s.intentsFor(a)
	require.Len(t, waiting, 1)

	bp := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"amount": 10000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, bp.Status, string(bp.Raw))
	assert.Equal(t, "succeeded", bp.str("status"))
	s.waitStatus(t, a, "paid")
	s.waitStatus(t, b, "paid")
	for _, pi := range s.Sandbox.PaymentIntents() {
		if pi.ID == waiting[0].ID {
			assert.Equal(t, "canceled", pi.Status)
		}
	}
	assert.Error(t, s.Sandbox.CompleteAction(waiting[0].ID, true))
	assert.Equal(t, float64(7000), s.do(t, "GET", "/v1/invoices/"+a, s.Key, nil).Body["amount_paid"])
}

func TestRefundsPartialAndTooLarge(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 20000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 20000, "payment_method": "pm_card_mastercard"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	pid := r.Body["payment"].(map[string]any)["id"].(string)

	ref := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", s.Key, map[string]any{"amount": 5000, "payment_id": pid, "reason": "requested_by_customer"})
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	assert.Equal(t, "partially_refunded", ref.Body["invoice"].(map[string]any)["status"])
	assert.Equal(t, float64(5000), ref.Body["invoice"].(map[string]any)["amount_refunded"])

	big := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", s.Key, map[string]any{"amount": 15001, "payment_id": pid})
	require.Equal(t, 400, big.Status, string(big.Raw))
	assert.Contains(t, big.Body["error"].(map[string]any)["message"], "left")

	rest := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", s.Key, map[string]any{"amount": 15000})
	require.Equal(t, 200, rest.Status, string(rest.Raw))
	assert.Equal(t, "refunded", rest.Body["invoice"].(map[string]any)["status"])
	assert.Equal(t, float64(0), rest.Body["invoice"].(map[string]any)["amount_due"])
	bal, err := s.Store.LedgerBalance(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, int64(0), bal)
}

// The charge's HTTP call reaches the processor, which charges and then never
// answers: the activity fails after the Stripe call and before the ledger
// write, and is retried. One PaymentIntent, one payment row.
func TestChargeRunsTwiceChargesOnce(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 18000, nil).str("id")
	s.Sandbox.FailNext(1, stripesandbox.FaultTimeoutAfter)
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 18000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "paid", r.Body["invoice"].(map[string]any)["status"])
	assert.Len(t, s.intentsFor(id), 1)
	assert.Equal(t, 1, s.countPayments(t, id))
	bal, err := s.Store.LedgerBalance(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, int64(0), bal)
}

func TestRefundRunsTwiceRefundsOnce(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 18000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 18000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	s.Sandbox.FailNext(1, stripesandbox.FaultTimeoutAfter)
	ref := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", s.Key, map[string]any{"amount": 3000})
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	pi := s.intentsFor(id)[0].ID
	n := 0
	for _, rf := range s.Sandbox.Refunds() {
		if rf.PaymentIntent == pi {
			n++
		}
	}
	assert.Equal(t, 1, n, "one refund at the processor")
	var rows int
	require.NoError(t, s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM refunds WHERE invoice_id=$1`, id).Scan(&rows))
	assert.Equal(t, 1, rows)
	assert.Equal(t, int64(3000), s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).num("amount_refunded"))
}

func (s *stack) postWebhook(t *testing.T, payload []byte, sig string) *resp {
	req, err := http.NewRequest("POST", s.API.URL+"/v1/webhooks/stripe", bytes.NewReader(payload))
	require.NoError(t, err)
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	return &resp{Status: res.StatusCode}
}

func TestWebhookSignatureAndDedup(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 7000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 7000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, r.Status)
	pi := s.intentsFor(id)[0].ID
	payload := []byte(fmt.Sprintf(`{"id":"evt_dup_%s","object":"event","api_version":"2023-10-16","created":%d,"type":"payment_intent.succeeded",
"data":{"object":{"id":%q,"object":"payment_intent","amount":7000,"currency":"usd","status":"succeeded","metadata":{"invoice_id":%q}}}}`,
		id, time.Now().Unix(), pi, id))
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: webhookSecret})
	assert.Equal(t, 200, s.postWebhook(t, payload, signed.Header).Status)
	var seen int
	require.NoError(t, s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE id=$1`, "evt_dup_"+id).Scan(&seen))
	assert.Equal(t, 1, seen)
	// The payment's outcome was already recorded, so the invoice's workflow
	// is not woken for it (a payment still in 3-D Secure is: see
	// TestThreeDSecureRequiresActionThenPaid).
	for _, e := range s.history(t, contract.InvoiceWorkflowID(id)).Events {
		assert.NotEqual(t, contract.PaymentEventSignal, e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName(), "event %d", e.GetEventId())
	}
	// Delivered twice: applied once (the second is acknowledged as a duplicate).
	again := s.postWebhook(t, payload, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: webhookSecret}).Header)
	assert.Equal(t, 200, again.Status)
	assert.Equal(t, 1, s.countPayments(t, id))
	assert.Equal(t, int64(7000), s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).num("amount_paid"))

	// Unsigned, forged and stale signatures are refused and change nothing.
	forged := []byte(`{"id":"evt_forged","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_x"}}}`)
	assert.Equal(t, 400, s.postWebhook(t, forged, "").Status)
	assert.Equal(t, 400, s.postWebhook(t, forged, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: forged, Secret: "whsec_wrong"}).Header).Status)
	stale := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: forged, Secret: webhookSecret, Timestamp: time.Now().Add(-time.Hour)})
	assert.Equal(t, 400, s.postWebhook(t, forged, stale.Header).Status)
	require.NoError(t, s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE id='evt_forged'`).Scan(&seen))
	assert.Equal(t, 0, seen)
}

func TestZeroDecimalCurrency(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	r := s.do(t, "POST", "/v1/invoices", s.Key, map[string]any{"client_id": cl, "currency": "jpy", "due_date": time.Now().AddDate(0, 0, 7).Format(time.DateOnly),
		"items": []map[string]any{{"service_date": time.Now().Format(time.DateOnly), "description": "Consultation", "unit_amount": 12000}}})
	require.Equal(t, 201, r.Status, string(r.Raw))
	id := r.str("id")
	pay := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 12000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, pay.Status, string(pay.Raw))
	pis := s.intentsFor(id)
	require.Len(t, pis, 1)
	assert.Equal(t, int64(12000), pis[0].Amount)
	assert.Equal(t, "jpy", pis[0].Currency)
}

func TestRefundOnPartlyPaidInvoiceThenPayTheRest(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 10000, map[string]any{"partial_payments": map[string]any{"enabled": true}}).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 6000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	ref := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", s.Key, map[string]any{"amount": 1000, "reason": "session ran short"})
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	got := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	assert.Equal(t, "partially_paid", got.str("status"))
	assert.Equal(t, int64(4000), got.num("amount_due"))
	rest := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 4000, "payment_method": "pm_card_mastercard"})
	require.Equal(t, 200, rest.Status, string(rest.Raw))
	got = s.waitStatus(t, id, "partially_refunded")
	assert.Equal(t, int64(0), got.num("amount_due"))
	assert.Equal(t, int64(10000), got.num("amount_paid"))
	assert.Equal(t, int64(1000), got.num("amount_refunded"))
}

// failingSignals is the stack's Temporal client with its next n signals
// refused, as when the frontend is briefly unreachable (fault injection).
type failingSignals struct {
	client.Client
	n atomic.Int32
}

func (f *failingSignals) SignalWorkflow(ctx context.Context, workflowID, runID, name string, arg any) error {
	if f.n.Add(-1) >= 0 {
		return serviceerror.NewUnavailable("injected: temporal frontend unavailable")
	}
	return f.Client.SignalWorkflow(ctx, workflowID, runID, name, arg)
}

// A webhook is marked processed only once its workflow has it: when the
// delivery fails the answer is 503 and nothing is marked, so Stripe's retry
// delivers it (marked first, the retry was acknowledged as a duplicate and
// the event lost).
func TestWebhookMarkedOnlyAfterDelivery(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 8000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 8000, "payment_method": "pm_card_authenticationRequired"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "requires_action", r.Body["payment"].(map[string]any)["status"])
	pi := s.intentsFor(id)[0].ID

	tc := &failingSignals{Client: s.Temporal}
	tc.n.Store(1)
	faulty := s.withAPI(t, func(d *api.Deps) { d.Temporal = tc })
	evID := "evt_after_delivery_" + id
	payload := []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,"type":"payment_intent.succeeded",
"data":{"object":{"id":%q,"object":"payment_intent","amount":8000,"currency":"usd","status":"succeeded","metadata":{"invoice_id":%q}}}}`,
		evID, time.Now().Unix(), pi, id))
	post := func() int {
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: webhookSecret})
		return faulty.postWebhook(t, payload, signed.Header).Status
	}
	marked := func() int {
		var n int
		require.NoError(t, s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE id=$1`, evID).Scan(&n))
		return n
	}
	assert.Equal(t, 503, post(), "the delivery failed: Stripe is told to retry")
	assert.Zero(t, marked(), "an undelivered event is not marked processed")
	assert.Equal(t, 200, post(), "Stripe's retry is delivered")
	assert.Equal(t, 1, marked())
	delivered := 0
	for _, e := range s.history(t, contract.InvoiceWorkflowID(id)).Events {
		if e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == contract.PaymentEventSignal {
			delivered++
		}
	}
	assert.Equal(t, 1, delivered, "the invoice's workflow got the event once")
}
