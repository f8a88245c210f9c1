package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/internal/stripesandbox"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/store"
)

// TestMoneyRecordedAnswersWhileSMTPIsDown: with the mail server stopped, a
// balance payment and a refund after the invoice's workflow closed answer
// at once with the recorded result (they wait for the money, not for their
// emails); once SMTP is back each email goes out exactly once, and the same
// requests again get the same answers without charging or refunding again.
func TestMoneyRecordedAnswersWhileSMTPIsDown(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()

	// Balance: two invoices of one client.
	cl := s.newClient(t, s.Key)
	older := s.newInvoice(t, s.Key, cl, 7000, nil).str("id")
	newer := s.newInvoice(t, s.Key, cl, 4500, nil).str("id")
	s.waitMail(t, older, mail.KindInvoiceIssued)
	s.waitMail(t, newer, mail.KindInvoiceIssued)

	// Refund after close: a practice whose lifecycle ends right after payment.
	closed, key := s.closedPaidInvoice(t, 9000)

	require.NoError(t, s.Mail.StopSMTP())
	t.Cleanup(func() { _ = s.Mail.StartSMTP() })

	pis := s.Sandbox.CountPaymentIntents()
	balanceBody := map[string]any{"amount": 11500, "payment_method": "pm_card_visa"}
	began := time.Now()
	bp := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, balanceBody, "Idempotency-Key", "smtp-down-balance-"+cl)
	balanceTook := time.Since(began)
	require.Equal(t, http.StatusOK, bp.Status, string(bp.Raw))
	assert.Equal(t, "succeeded", bp.str("status"))
	assert.Len(t, bp.Body["allocations"], 2)
	assert.Less(t, balanceTook, 5*time.Second, "a balance payment waited on its receipt email")
	assert.Equal(t, pis+1, s.Sandbox.CountPaymentIntents())
	for _, id := range []string{older, newer} {
		inv, err := s.Store.GetInvoiceRow(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, store.StatusPaid, inv.Status, "recorded when the request answered")
	}

	refundBody := map[string]any{"amount": 9000, "reason": "duplicate"}
	began = time.Now()
	r := s.do(t, "POST", "/v1/invoices/"+closed+"/refunds", key, refundBody, "Idempotency-Key", "smtp-down-refund-"+closed)
	refundTook := time.Since(began)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	assert.Equal(t, "refunded", r.Body["invoice"].(map[string]any)["status"])
	assert.Less(t, refundTook, 5*time.Second, "a refund after close waited on its notice email")
	t.Logf("with SMTP down: balance payment answered in %s, refund after close in %s", balanceTook.Round(time.Millisecond), refundTook.Round(time.Millisecond))

	_, n := s.mailsByKind(older, string(mail.KindBalancePaymentReceipt))
	assert.Zero(t, n, "no receipt while SMTP is down")
	require.NoError(t, s.Mail.StartSMTP())
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, n := s.mailsByKind(older, string(mail.KindBalancePaymentReceipt))
		assert.Equal(c, 1, n, "one balance receipt")
		_, n = s.mailsByKind(closed, string(mail.KindRefundNotice))
		assert.Equal(c, 1, n, "one refund notice")
	}, time.Minute, 200*time.Millisecond)

	// The same requests again: the same answers, nothing charged or refunded again, no more email.
	again := s.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, balanceBody, "Idempotency-Key", "smtp-down-balance-"+cl)
	require.Equal(t, http.StatusOK, again.Status, string(again.Raw))
	assert.Equal(t, bp.str("id"), again.str("id"))
	assert.Equal(t, pis+1, s.Sandbox.CountPaymentIntents())
	r2 := s.do(t, "POST", "/v1/invoices/"+closed+"/refunds", key, refundBody, "Idempotency-Key", "smtp-down-refund-"+closed)
	require.Equal(t, http.StatusOK, r2.Status, string(r2.Raw))
	assert.Equal(t, r.Body["refund"].(map[string]any)["id"], r2.Body["refund"].(map[string]any)["id"])
	assert.Len(t, s.do(t, "GET", "/v1/invoices/"+closed, key, nil).Body["refunds"], 1)
	assert.Never(t, func() bool {
		_, b := s.mailsByKind(older, string(mail.KindBalancePaymentReceipt))
		_, r := s.mailsByKind(closed, string(mail.KindRefundNotice))
		return b != 1 || r != 1
	}, time.Second, 100*time.Millisecond)
}

// TestBalancePaymentStillProcessingThenResult: a balance payment whose
// charge takes longer than the request may wait answers 503
// still_processing with Retry-After; the same request again (same
// Idempotency-Key) gets the recorded payment, charged once.
func TestBalancePaymentStillProcessingThenResult(t *testing.T) {
	s := getStack(t)
	quick := s.withAPI(t, func(d *api.Deps) { d.UpdateWait = time.Second })
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 6400, nil).str("id")
	pis := s.Sandbox.CountPaymentIntents()
	// Stripe does not answer the first request (the charge): the activity
	// waits out the processor timeout (2 s), looks the charge up, and charges.
	s.Sandbox.FailNext(1, stripesandbox.FaultTimeout)
	t.Cleanup(s.Sandbox.ClearFaults)
	body := map[string]any{"amount": 6400, "payment_method": "pm_card_visa"}
	began := time.Now()
	first := quick.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, body, "Idempotency-Key", "slow-balance-"+cl)
	assert.Less(t, time.Since(began), 5*time.Second)
	require.Equal(t, http.StatusServiceUnavailable, first.Status, string(first.Raw))
	assert.Equal(t, "still_processing", first.errCode())
	var second *resp
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		second = quick.do(t, "POST", "/v1/clients/"+cl+"/balance-payments", s.Key, body, "Idempotency-Key", "slow-balance-"+cl)
		assert.Equal(c, http.StatusOK, second.Status, string(second.Raw))
	}, 30*time.Second, time.Second)
	assert.Equal(t, "succeeded", second.str("status"))
	assert.Equal(t, pis+1, s.Sandbox.CountPaymentIntents(), "charged once")
	s.waitStatus(t, id, "paid")
}

// TestPayPageStillProcessingThenPaid: the hosted pay page waits for its
// payment at most UpdateWait too; past it the payer reads that the payment
// is still being processed (503, Retry-After), and the same form again
// shows it paid, charged once.
func TestPayPageStillProcessingThenPaid(t *testing.T) {
	s := getStack(t)
	quick := s.withAPI(t, func(d *api.Deps) { d.UpdateWait = time.Second })
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 5300, nil).str("id")
	link := quick.API.URL + strings.TrimPrefix(s.payLinkFromMail(t, id), s.API.URL)
	body := withCard(formFields(t, s.getPage(t, link).Body), "pm_card_visa")
	pis := s.Sandbox.CountPaymentIntents()
	s.Sandbox.FailNext(1, stripesandbox.FaultTimeout)
	t.Cleanup(s.Sandbox.ClearFaults)
	began := time.Now()
	p := s.postPage(t, link, body)
	assert.Less(t, time.Since(began), 5*time.Second)
	require.Equal(t, http.StatusServiceUnavailable, p.Status, p.Body)
	assert.Equal(t, "5", p.Header.Get("Retry-After"))
	assert.Contains(t, p.Body, "still being processed")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		p = s.postPage(t, link, body)
		assert.Equal(c, http.StatusOK, p.Status)
	}, 30*time.Second, time.Second)
	assert.Contains(t, p.Body, "Payment received — thank you")
	assert.Equal(t, pis+1, s.Sandbox.CountPaymentIntents(), "charged once")
	assert.Equal(t, 1, s.countPayments(t, id))
}

// TestPortalPayNowStillProcessingThenPaid: the portal's Pay Now waits for
// the balance payment at most UpdateWait; past it the client reads that it
// is still being processed (503), and the same form again lands on the
// paid balance, charged once.
func TestPortalPayNowStillProcessingThenPaid(t *testing.T) {
	s := getStack(t)
	quick := s.withAPI(t, func(d *api.Deps) { d.UpdateWait = time.Second })
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 6600, nil).str("id")
	tok := s.portalToken(t, s.Key, cl)
	home := quick.portalReq(t, "GET", "/portal", tok, nil)
	require.Equal(t, http.StatusOK, home.Status, home.Body)
	csrf := csrfRe.FindStringSubmatch(home.Body)
	require.Len(t, csrf, 2)
	form := url.Values{"csrf": {csrf[1]}, "nonce": {strings.Repeat("c", 32)}, "amount_choice": {"full"}, "full_amount": {"6600"},
		"method": {"new"}, "test_card": {"pm_card_visa"}, "cardholder_name": {"Ada"}, "billing_zip": {"10001"}}
	pis := s.Sandbox.CountPaymentIntents()
	s.Sandbox.FailNext(1, stripesandbox.FaultTimeout)
	t.Cleanup(s.Sandbox.ClearFaults)
	began := time.Now()
	p := quick.portalReq(t, "POST", "/portal/pay", tok, form)
	assert.Less(t, time.Since(began), 5*time.Second)
	require.Equal(t, http.StatusServiceUnavailable, p.Status, p.Body)
	assert.Contains(t, p.Body, "still being processed")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		p = quick.portalReq(t, "POST", "/portal/pay", tok, form)
		assert.Equal(c, http.StatusSeeOther, p.Status)
	}, 30*time.Second, time.Second)
	assert.Contains(t, p.Header.Get("Location"), "/portal?paid=")
	assert.Equal(t, pis+1, s.Sandbox.CountPaymentIntents(), "charged once")
	s.waitStatus(t, id, "paid")
}
