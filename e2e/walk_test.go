package e2e

// The lifecycle walked as a new user would (issue 17 item 3): each test pins
// one place where what the API, the emails, the pay page or the Temporal UI
// said differed from DESIGN.md.

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/payments"
)

// summaries are the activity and timer summaries of an invoice's workflow,
// as the Temporal UI's timeline shows them.
func (s *stack) summaries(t *testing.T, invoiceID string) []string {
	t.Helper()
	var out []string
	for _, ev := range s.history(t, contract.InvoiceWorkflowID(invoiceID)).Events {
		if p := ev.GetUserMetadata().GetSummary(); p != nil {
			var sum string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(p, &sum))
			out = append(out, sum)
		}
	}
	return out
}

// signalHandled says whether the invoice's workflow took in a signal named
// name: a workflow task completed after it arrived, and the handler (which
// never blocks before deciding) ran in it.
func (s *stack) signalHandled(t *testing.T, invoiceID, name string) bool {
	seen := false
	for _, ev := range s.history(t, contract.InvoiceWorkflowID(invoiceID)).Events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			seen = seen || ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == name
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			if seen {
				return true
			}
		}
	}
	return false
}

func body(m map[string]any, k string) map[string]any { v, _ := m[k].(map[string]any); return v }

// The timeline names the card with its last four digits, for a new card and
// a saved one, and the payment confirmation names its amount.
func TestWalkChargeSummariesNameCardAndAmount(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 20000, map[string]any{"partial_payments": map[string]any{"enabled": true, "minimum_amount": 5000}}).str("id")
	s.pay(t, s.Key, id, 8000, map[string]any{"payment_method": "pm_card_visa", "save_card": true})
	pms := s.do(t, "GET", "/v1/clients/"+cl+"/payment-methods", s.Key, nil)
	require.Equal(t, 200, pms.Status, string(pms.Raw))
	data, _ := pms.Body["data"].([]any)
	require.Len(t, data, 1, string(pms.Raw))
	saved := data[0].(map[string]any)["id"].(string)
	s.waitIdle(t, id, 1)
	s.pay(t, s.Key, id, 12000, map[string]any{"payment_method": "", "saved_payment_method_id": saved})
	s.waitIdle(t, id, 2)

	sums := s.summaries(t, id)
	assert.Contains(t, sums, "Charge $80.00 to Visa •••• 4242", "a new card: %q", sums)
	assert.Contains(t, sums, "Charge $120.00 to Visa •••• 4242", "a saved card: %q", sums)
	assert.Contains(t, sums, "Email payment confirmation $80.00", "%q", sums)
	assert.Contains(t, sums, "Render receipt and email it: $120.00 paid", "%q", sums)
}

// countingGateway counts the processor lookups of payment methods.
type countingGateway struct {
	payments.Gateway
	lookups atomic.Int32
}

func (g *countingGateway) GetPaymentMethod(ctx context.Context, pm string) (*payments.Method, error) {
	g.lookups.Add(1)
	return g.Gateway.GetPaymentMethod(ctx, pm)
}

// Stripe's test IDs are named from their known brand and last four; the
// processor is not asked.
func TestWalkTestCardLabelsWithoutProcessorCall(t *testing.T) {
	s := getStack(t)
	gw := &countingGateway{}
	api2 := s.withAPI(t, func(d *api.Deps) {
		gw.Gateway = d.Cards.Gateway
		d.Cards = &cards.Cards{Store: d.Cards.Store, Gateway: gw}
	})
	id := api2.newInvoice(t, s.Key, api2.newClient(t, s.Key), 9000, nil).str("id")
	api2.pay(t, s.Key, id, 9000, map[string]any{"payment_method": "pm_card_amex"})
	s.waitIdle(t, id, 1)
	assert.Contains(t, s.summaries(t, id), "Charge $90.00 to American Express •••• 8431")
	assert.Zero(t, gw.lookups.Load(), "a test ID needs no processor lookup")
}

// No reminder goes out on the day the invoice was issued (its email just went
// out), even when a policy step already fell due; it goes the day after.
func TestWalkNoReminderOnIssueDay(t *testing.T) {
	s := getStack(t)
	issue := practiceToday(t)
	inv := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 9000, map[string]any{"due_date": day(issue.AddDate(0, 0, 2))})
	id := inv.str("id")
	require.Equal(t, day(issue), inv.str("issue_date"))
	s.waitMail(t, id, "invoice_issued")

	s.runReminders(t, issue)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, s.signalHandled(t, id, contract.ReminderSignal), "the issue-day run's signal was handled")
	}, 20*time.Second, 200*time.Millisecond)
	s.waitIdle(t, id, 0) // a reminder owed would be sent by now
	_, n := s.mailsByKind(id, "reminder")
	assert.Zero(t, n, "no reminder on the issue day")
	sent, err := s.Store.RemindersSent(context.Background(), id)
	require.NoError(t, err)
	assert.Empty(t, sent)

	s.runReminders(t, issue.AddDate(0, 0, 1))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, n := s.mailsByKind(id, "reminder")
		assert.Equal(c, 1, n, "the reminder goes out the day after")
	}, 20*time.Second, 200*time.Millisecond)
	assert.Contains(t, s.summaries(t, id), "Email reminder 1 of 4: $90.00 due", "the timeline names the balance chased")
}

// A voided invoice's pay link says the invoice was voided.
func TestWalkVoidedPayLinkSaysVoided(t *testing.T) {
	s := getStack(t)
	inv := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 9000, nil)
	link := s.payLinkFromMail(t, inv.str("id"))
	v := s.do(t, "POST", "/v1/invoices/"+inv.str("id")+"/void", s.Key, nil)
	require.Equal(t, 200, v.Status, string(v.Raw))
	p := s.getPage(t, link)
	assert.Equal(t, 410, p.Status)
	assert.Contains(t, p.Body, "This invoice was voided")
	assert.Contains(t, p.Body, inv.str("number"))
	assert.NotContains(t, p.Body, "expired")
}

// The invoice email states the partial-payment terms when they apply.
func TestWalkInvoiceEmailStatesPartialTerms(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	partial := s.newInvoice(t, s.Key, cl, 30000, map[string]any{"partial_payments": map[string]any{"enabled": true,
		"minimum_amount": 7500, "max_installments": 3}}).str("id")
	plain := s.newInvoice(t, s.Key, cl, 30000, nil).str("id")
	s.waitMail(t, partial, "invoice_issued")
	s.waitMail(t, plain, "invoice_issued")
	for _, m := range s.mailsFor(partial) {
		if kindOf(m) == "invoice_issued" {
			assert.Contains(t, strings.Join(strings.Fields(m.Text), " "), "up to 3 payments of at least $75.00 each")
			assert.Contains(t, m.HTML, "up to 3 payments of at least $75.00 each")
		}
	}
	for _, m := range s.mailsFor(plain) {
		assert.NotContains(t, m.Text, "payments of at least")
	}
}

// GET /v1/invoices/{id} carries a working pay_url while there is a balance.
func TestWalkInvoicePayURL(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 9000, nil).str("id")
	got := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	u := got.str("pay_url")
	require.True(t, strings.HasPrefix(u, s.API.URL+"/pay/"), "pay_url %q", u)
	assert.Equal(t, u, s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).str("pay_url"), "the same link on every read")
	p := s.getPage(t, u)
	require.Equal(t, 200, p.Status, p.Body)
	assert.Contains(t, p.Body, "Pay $90.00")

	s.pay(t, s.Key, id, 9000, nil)
	_, has := s.waitStatus(t, id, "paid").Body["pay_url"]
	assert.False(t, has, "nothing to pay, no pay_url")
}

// The account history shows each session's invoice status.
func TestWalkAccountHistorySessionStatus(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	paid := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	open := s.newInvoice(t, s.Key, cl, 7000, nil).str("id")
	s.pay(t, s.Key, paid, 9000, nil)
	h := s.do(t, "GET", "/v1/clients/"+cl+"/account-history", s.Key, nil)
	require.Equal(t, 200, h.Status, string(h.Raw))
	status := map[string]string{}
	for _, e := range h.Body["data"].([]any) {
		e := e.(map[string]any)
		if e["type"] == "session" {
			status[e["invoice_id"].(string)], _ = e["invoice_status"].(string)
		}
	}
	assert.Equal(t, map[string]string{paid: "paid", open: "open"}, status)

	// The portal's account history says it too, beside each session.
	home := s.portalReq(t, "GET", "/portal", s.portalToken(t, s.Key, cl), nil)
	require.Equal(t, 200, home.Status, home.Body)
	assert.Contains(t, home.Body, `<span class="invoice-status">· Paid</span>`)
	assert.Contains(t, home.Body, `<span class="invoice-status">· Open</span>`)
}

// 3-D Secure started through the API returns where to send the payer and
// where they come back: the invoice's pay page, which shows the outcome.
func TestWalkThreeDSecureThroughAPIReturnsToPayPage(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 15000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 15000, "payment_method": "pm_card_authenticationRequired"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	redirect := body(body(body(r.Body, "payment"), "next_action"), "redirect_to_url")
	next, _ := redirect["url"].(string)
	back, _ := redirect["return_url"].(string)
	require.Contains(t, next, "/sandbox/3ds/")
	require.True(t, strings.HasPrefix(back, s.API.URL+"/pay/"), "return_url %q", back)

	landing := authenticate3DS(t, next, back)
	s.waitStatus(t, id, "paid")
	p := s.getPage(t, landing)
	require.Equal(t, 200, p.Status, p.Body)
	assert.Contains(t, p.Body, "was authenticated and received")
}

// A fully refunded invoice's workflow completes (nothing is left to refund)
// after its refund notice, and its pay link says refunded, not paid.
func TestWalkFullyRefundedInvoiceCompletes(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 9000, nil).str("id")
	link := s.payLinkFromMail(t, id)
	s.pay(t, s.Key, id, 9000, nil)
	s.waitIdle(t, id, 1)
	ref := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", s.Key, map[string]any{"amount": 9000})
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	assert.Equal(t, "refunded", body(ref.Body, "invoice")["status"])
	s.waitCompleted(t, contract.InvoiceWorkflowID(id), 20*time.Second)
	_, n := s.mailsByKind(id, "refund_notice")
	assert.Equal(t, 1, n, "the refund notice went out before it completed")

	p := s.getPage(t, link)
	require.Equal(t, 200, p.Status)
	assert.Contains(t, p.Body, "refunded in full")
	assert.NotContains(t, p.Body, "paid in full")
}

// A partially refunded invoice's pay link still says paid, and how much came back.
func TestWalkPartiallyRefundedPayLink(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 9000, nil).str("id")
	link := s.payLinkFromMail(t, id)
	s.pay(t, s.Key, id, 9000, nil)
	ref := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", s.Key, map[string]any{"amount": 2000})
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	p := s.getPage(t, link)
	require.Equal(t, 200, p.Status)
	assert.Contains(t, p.Body, "paid in full. $20.00 of it was refunded")
}

// A balance payment's one email attaches the receipt of every invoice it paid.
func TestWalkBalancePaymentEmailAttachesReceipts(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	a := s.newInvoice(t, s.Key, cl, 6000, nil)
	b := s.newInvoice(t, s.Key, cl, 4000, nil)
	bp := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, map[string]any{"amount": 10000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, bp.Status, string(bp.Raw))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var names []string
		for _, id := range []string{a.str("id"), b.str("id")} {
			for _, m := range s.mailsFor(id) {
				if kindOf(m) == "balance_payment_receipt" {
					assert.Contains(c, m.Text, "receipts are attached")
					for _, at := range m.Attachments {
						assert.Equal(c, "application/pdf", at.ContentType)
						names = append(names, at.Filename)
					}
				}
			}
		}
		assert.ElementsMatch(c, []string{"Receipt " + a.str("number") + ".pdf", "Receipt " + b.str("number") + ".pdf"}, names)
	}, 60*time.Second, 200*time.Millisecond)
}

// A refund naming a payment the invoice does not have answers 400 naming
// payment_id, and refunds nothing.
func TestWalkRefundUnknownPaymentID(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	other := s.newInvoice(t, s.Key, cl, 5000, nil).str("id")
	s.pay(t, s.Key, id, 9000, nil)
	otherPay := body(s.pay(t, s.Key, other, 5000, nil).Body, "payment")["id"].(string)
	before := len(s.Sandbox.Refunds())
	for _, pid := range []string{"pay_nope", otherPay} {
		r := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", s.Key, map[string]any{"amount": 1000, "payment_id": pid})
		assert.Equal(t, 400, r.Status, string(r.Raw))
		e := body(r.Body, "error")
		assert.Equal(t, "payment_id", e["param"], string(r.Raw))
		assert.Contains(t, e["message"], pid)
	}
	assert.Equal(t, "paid", s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).str("status"))
	assert.Len(t, s.Sandbox.Refunds(), before, "nothing was refunded")
}
