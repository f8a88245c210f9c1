package stripesandbox_test

// Behaviour tests: billflow's real payments.Stripe gateway (stripe-go v76)
// pointed at the sandbox over HTTP.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/billflow/billflow/internal/stripesandbox"
	"github.com/billflow/billflow/payments"
	"github.com/stripe/stripe-go/v76"
)

const whsec = "whsec_sandbox_test"

// receiver is a webhook endpoint that verifies every delivery with
// payments.VerifyWebhook, as billflow's API does.
type receiver struct {
	mu       sync.Mutex
	events   []*payments.Event
	rejected int
	failNext int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.failNext > 0 {
		rc.failNext--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	ev, err := payments.VerifyWebhook(body, r.Header.Get("Stripe-Signature"), whsec, time.Minute)
	if err != nil {
		rc.rejected++
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.events = append(rc.events, ev)
}

func (rc *receiver) find(typ, objectID string) *payments.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, e := range rc.events {
		if e.Type == typ && (e.PaymentIntentID == objectID || e.ChargeID == objectID) {
			return e
		}
	}
	return nil
}

type env struct {
	sb   *stripesandbox.Sandbox
	gw   *payments.Stripe
	base string
	rc   *receiver
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	sb := stripesandbox.New(stripesandbox.Options{
		WebhookURL: hook.URL, WebhookSecret: whsec, BankSettleDelay: 150 * time.Millisecond,
		WebhookRetryDelay: 20 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	base, err := sb.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	gw := payments.NewStripe(payments.StripeConfig{SecretKey: "sk_test_sandbox", APIBase: base, Timeout: 700 * time.Millisecond})
	return &env{sb: sb, gw: gw, base: base, rc: rc}
}

func (e *env) customer(t *testing.T) string {
	t.Helper()
	id, err := e.gw.CreateCustomer(context.Background(), payments.CustomerRequest{IdempotencyKey: "cus-" + t.Name(), ClientID: "cli_1", PracticeID: "prac_1", Email: "c@example.com", Name: "C"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func charge(pm, key string) payments.ChargeRequest {
	return payments.ChargeRequest{IdempotencyKey: key, Amount: 9000, Currency: "usd", PaymentMethodID: pm,
		Description: "INV-0042", Metadata: map[string]string{"payment_id": key, "invoice_id": "inv_1"}}
}

func wantKind(t *testing.T, err error, kind payments.ErrorKind, code string) *payments.Error {
	t.Helper()
	var pe *payments.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *payments.Error %s", err, kind)
	}
	if pe.Kind != kind || (code != "" && pe.Code != code) {
		t.Fatalf("err = %v, want kind %s code %q", err, kind, code)
	}
	return pe
}

func TestCardsSucceed(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ pm, brand, last4 string }{
		{"pm_card_visa", "visa", "4242"}, {"pm_card_mastercard", "mastercard", "4444"}, {"pm_card_amex", "amex", "8431"},
	} {
		res, err := e.gw.Charge(context.Background(), charge(c.pm, "pay_"+c.brand))
		if err != nil {
			t.Fatalf("%s: %v", c.pm, err)
		}
		m := res.Method
		if res.Status != payments.StatusSucceeded || res.ChargeID == "" || !strings.HasPrefix(res.PaymentIntentID, "pi_") {
			t.Errorf("%s: %+v", c.pm, res)
		}
		if m.Brand != c.brand || m.Last4 != c.last4 || m.ExpMonth != 12 || m.ExpYear != 2034 || m.Type != "card" {
			t.Errorf("%s: method %+v", c.pm, m)
		}
		if !strings.HasPrefix(m.ID, "pm_") || m.ID == c.pm {
			t.Errorf("%s: expected a fresh pm_ id, got %q", c.pm, m.ID)
		}
		if ev := e.rc.find("payment_intent.succeeded", res.PaymentIntentID); ev == nil {
			eventually(t, "payment_intent.succeeded for "+c.pm, func() bool { return e.rc.find("payment_intent.succeeded", res.PaymentIntentID) != nil })
		}
	}
	if n := e.sb.CountPaymentIntents(); n != 3 {
		t.Errorf("%d payment intents, want 3", n)
	}
}

func TestDeclines(t *testing.T) {
	e := newEnv(t)
	cus := e.customer(t)
	cases := []struct{ pm, code, decline string }{
		{"pm_card_chargeDeclined", "card_declined", "generic_decline"},
		{"pm_card_visa_chargeDeclined", "card_declined", "generic_decline"},
		{"pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"},
		{"pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"},
		{"pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"},
		{"pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"},
	}
	for _, c := range cases {
		res, err := e.gw.Charge(context.Background(), charge(c.pm, "pay_"+c.pm))
		if err != nil {
			t.Fatalf("%s: a decline must be a result, not an error: %v", c.pm, err)
		}
		if res.Status != payments.StatusFailed || res.FailureCode != c.code || res.DeclineCode != c.decline || res.FailureMessage == "" || res.PaymentIntentID == "" {
			t.Errorf("%s: %+v", c.pm, res)
		}
		eventually(t, "payment_failed webhook", func() bool { return e.rc.find("payment_intent.payment_failed", res.PaymentIntentID) != nil })
		// These cards cannot be saved either.
		_, err = e.gw.AttachPaymentMethod(context.Background(), c.pm, cus, "attach-"+c.pm)
		pe := wantKind(t, err, payments.KindDeclined, c.code)
		if pe.HTTPStatus != http.StatusPaymentRequired || pe.DeclineCode != c.decline {
			t.Errorf("%s attach: %+v", c.pm, pe)
		}
		if payments.IsRetryable(err) {
			t.Errorf("%s: decline marked retryable", c.pm)
		}
	}
	for _, pi := range e.sb.PaymentIntents() {
		if pi.Status != "requires_payment_method" {
			t.Errorf("%s status %s", pi.ID, pi.Status)
		}
	}
}

func TestSaveCardThenChargeOffSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cus := e.customer(t)
	req := charge("pm_card_visa", "pay_save")
	req.CustomerID, req.SaveCard, req.PayerName, req.BillingZIP = cus, true, "Pat Payer", "94107"
	res, err := e.gw.Charge(ctx, req)
	if err != nil || res.Status != payments.StatusSucceeded {
		t.Fatalf("save charge: %+v %v", res, err)
	}
	saved := res.Method.ID
	if res.Method.CardholderName != "Pat Payer" || res.Method.BillingZIP != "94107" {
		t.Errorf("method %+v", res.Method)
	}
	second := payments.ChargeRequest{IdempotencyKey: "pay_offsession", Amount: 4000, Currency: "usd", CustomerID: cus,
		PaymentMethodID: saved, OffSession: true, Metadata: map[string]string{"payment_id": "pay_offsession"}}
	res2, err := e.gw.Charge(ctx, second)
	if err != nil || res2.Status != payments.StatusSucceeded || res2.Method.ID != saved || res2.Method.Last4 != "4242" {
		t.Fatalf("off-session charge: %+v %v", res2, err)
	}
	// A saved card needs its customer.
	second.IdempotencyKey, second.CustomerID = "pay_nocustomer", ""
	_, err = e.gw.Charge(ctx, second)
	wantKind(t, err, payments.KindInvalid, "")

	// A card used once without saving is consumed, as at Stripe.
	once, err := e.gw.Charge(ctx, charge("pm_card_visa", "pay_once"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.gw.AttachPaymentMethod(ctx, once.Method.ID, cus, "attach-consumed")
	wantKind(t, err, payments.KindInvalid, "")

	// Attach, read and detach; a detached method cannot be charged.
	m, err := e.gw.AttachPaymentMethod(ctx, "pm_card_mastercard", cus, "attach-mc")
	if err != nil || !strings.HasPrefix(m.ID, "pm_") || m.ID == "pm_card_mastercard" || m.Brand != "mastercard" {
		t.Fatalf("attach: %+v %v", m, err)
	}
	again, err := e.gw.AttachPaymentMethod(ctx, "pm_card_mastercard", cus, "attach-mc")
	if err != nil || again.ID != m.ID {
		t.Fatalf("attach replay gave %+v %v, want %s", again, err, m.ID)
	}
	got, err := e.gw.GetPaymentMethod(ctx, m.ID)
	if err != nil || got.Last4 != "4444" || got.ExpYear != 2034 {
		t.Fatalf("get: %+v %v", got, err)
	}
	if err := e.gw.DetachPaymentMethod(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.DetachPaymentMethod(ctx, m.ID); err == nil {
		t.Error("second detach succeeded")
	}
	_, err = e.gw.Charge(ctx, payments.ChargeRequest{IdempotencyKey: "pay_detached", Amount: 1000, Currency: "usd", CustomerID: cus, PaymentMethodID: m.ID, OffSession: true})
	wantKind(t, err, payments.KindInvalid, "")
	_, err = e.gw.GetPaymentMethod(ctx, "pm_nope")
	if !payments.IsNotFound(err) {
		t.Errorf("unknown method: %v", err)
	}
}

func TestCustomerFailSavesThenDeclines(t *testing.T) {
	e := newEnv(t)
	cus := e.customer(t)
	m, err := e.gw.AttachPaymentMethod(context.Background(), "pm_card_chargeCustomerFail", cus, "attach-cf")
	if err != nil {
		t.Fatalf("pm_card_chargeCustomerFail must save: %v", err)
	}
	res, err := e.gw.Charge(context.Background(), payments.ChargeRequest{IdempotencyKey: "pay_cf", Amount: 5000, Currency: "usd",
		CustomerID: cus, PaymentMethodID: m.ID, OffSession: true})
	if err != nil || res.Status != payments.StatusFailed || res.FailureCode != "card_declined" {
		t.Fatalf("charge: %+v %v", res, err)
	}
}

func TestThreeDSecure(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req := charge("pm_card_authenticationRequired", "pay_3ds")
	req.ReturnURL = "https://billflow.example/pay/return"
	res, err := e.gw.Charge(ctx, req)
	if err != nil || res.Status != payments.StatusRequiresAction || res.ClientSecret == "" {
		t.Fatalf("3ds charge: %+v %v", res, err)
	}
	if !strings.HasPrefix(res.NextActionURL, e.base+"/sandbox/3ds/"+res.PaymentIntentID) {
		t.Fatalf("next action url %q", res.NextActionURL)
	}
	// The payer's browser finishes it; the sandbox sends it back to return_url.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page, err := noRedirect.Get(res.NextActionURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(body), "not Stripe") || !strings.Contains(string(body), "Complete authentication") {
		t.Errorf("3ds page: %s", body)
	}
	done, err := noRedirect.PostForm(res.NextActionURL+"?result=success", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	done.Body.Close()
	if loc := done.Header.Get("Location"); done.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, req.ReturnURL) || !strings.Contains(loc, res.PaymentIntentID) {
		t.Errorf("after 3ds: %d %q", done.StatusCode, loc)
	}
	after, err := e.gw.GetPaymentIntent(ctx, res.PaymentIntentID)
	if err != nil || after.Status != payments.StatusSucceeded || after.ChargeID == "" || after.Method.Last4 != "3184" {
		t.Fatalf("after success: %+v %v", after, err)
	}
	eventually(t, "succeeded webhook", func() bool { return e.rc.find("payment_intent.succeeded", res.PaymentIntentID) != nil })
	if err := e.sb.CompleteAction(res.PaymentIntentID, true); err == nil {
		t.Error("completing a finished intent again succeeded")
	}

	// Failed authentication.
	res2, err := e.gw.Charge(ctx, charge("pm_card_authenticationRequired", "pay_3ds_fail"))
	if err != nil || res2.Status != payments.StatusRequiresAction {
		t.Fatal(res2, err)
	}
	if err := e.sb.CompleteAction(res2.PaymentIntentID, false); err != nil {
		t.Fatal(err)
	}
	failed, err := e.gw.GetPaymentIntent(ctx, res2.PaymentIntentID)
	if err != nil || failed.Status != payments.StatusFailed || failed.FailureCode != "payment_intent_authentication_failure" {
		t.Fatalf("after failure: %+v %v", failed, err)
	}

	// Off-session, there is nobody to authenticate: declined.
	cus := e.customer(t)
	m, err := e.gw.AttachPaymentMethod(ctx, "pm_card_authenticationRequired", cus, "attach-3ds")
	if err != nil {
		t.Fatal(err)
	}
	off, err := e.gw.Charge(ctx, payments.ChargeRequest{IdempotencyKey: "pay_3ds_off", Amount: 1000, Currency: "usd", CustomerID: cus, PaymentMethodID: m.ID, OffSession: true})
	if err != nil || off.Status != payments.StatusFailed || off.FailureCode != "authentication_required" {
		t.Fatalf("off-session 3ds: %+v %v", off, err)
	}
}

func TestBankDebitSettlesWithSignedWebhook(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cus := e.customer(t)
	cases := []struct {
		pm, event, code string
		status          payments.Status
	}{
		{"pm_usBankAccount", "payment_intent.succeeded", "", payments.StatusSucceeded},
		{"pm_usBankAccount_success", "payment_intent.succeeded", "", payments.StatusSucceeded},
		{"pm_usBankAccount_insufficientFunds", "payment_intent.payment_failed", "insufficient_funds", payments.StatusFailed},
		{"pm_usBankAccount_accountClosed", "payment_intent.payment_failed", "account_closed", payments.StatusFailed},
	}
	for _, c := range cases {
		req := charge(c.pm, "pay_"+c.pm)
		req.Amount, req.CustomerID, req.SaveCard = 18000, cus, true
		res, err := e.gw.Charge(ctx, req)
		if err != nil || res.Status != payments.StatusProcessing || res.Method.Type != "us_bank_account" || res.Method.BankName == "" {
			t.Fatalf("%s: %+v %v", c.pm, res, err)
		}
		eventually(t, c.event+" for "+c.pm, func() bool { return e.rc.find(c.event, res.PaymentIntentID) != nil })
		ev := e.rc.find(c.event, res.PaymentIntentID)
		if ev.Amount != 18000 || ev.Metadata["payment_id"] != "pay_"+c.pm || ev.FailureCode != c.code || !strings.HasPrefix(ev.ID, "evt_") {
			t.Errorf("%s: event %+v", c.pm, ev)
		}
		if e.rc.find("payment_intent.processing", res.PaymentIntentID) == nil {
			t.Errorf("%s: no processing event", c.pm)
		}
		after, err := e.gw.GetPaymentIntent(ctx, res.PaymentIntentID)
		if err != nil || after.Status != c.status || after.FailureCode != c.code {
			t.Errorf("%s after settle: %+v %v", c.pm, after, err)
		}
	}
	// Bank debits must be listed explicitly, with a mandate: the raw request
	// without payment_method_types is refused.
	status, body := rawPost(t, e.base, "/v1/payment_intents", "", url.Values{"amount": {"1000"}, "currency": {"usd"}, "payment_method": {"pm_usBankAccount"}, "confirm": {"true"}})
	if status != http.StatusBadRequest || !strings.Contains(body, "not allowed") {
		t.Errorf("bank without types: %d %s", status, body)
	}
	e.rc.mu.Lock()
	rejected := e.rc.rejected
	e.rc.mu.Unlock()
	if rejected != 0 {
		t.Errorf("%d webhook deliveries failed verification", rejected)
	}
}

func rawPost(t *testing.T, base, path, key string, form url.Values) (int, string) {
	t.Helper()
	status, body, _ := rawPostH(t, base, path, key, form)
	return status, body
}

func rawPostH(t *testing.T, base, path, key string, form url.Values) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Authorization", "Bearer sk_test_raw")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first, err := e.gw.Charge(ctx, charge("pm_card_visa", "pay_idem"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.gw.Charge(ctx, charge("pm_card_visa", "pay_idem"))
	if err != nil || again.PaymentIntentID != first.PaymentIntentID || again.Method.ID != first.Method.ID {
		t.Fatalf("replay gave %+v %v, want %s", again, err, first.PaymentIntentID)
	}
	// A decline replays as the same decline.
	d1, _ := e.gw.Charge(ctx, charge("pm_card_chargeDeclined", "pay_idem_decl"))
	d2, err := e.gw.Charge(ctx, charge("pm_card_chargeDeclined", "pay_idem_decl"))
	if err != nil || d2.Status != payments.StatusFailed || d2.PaymentIntentID != d1.PaymentIntentID {
		t.Fatalf("decline replay: %+v %v", d2, err)
	}
	if n := e.sb.CountPaymentIntents(); n != 2 {
		t.Errorf("%d payment intents, want 2", n)
	}
	// Same key, different parameters.
	other := charge("pm_card_visa", "pay_idem")
	other.Amount = 9100
	_, err = e.gw.Charge(ctx, other)
	pe := wantKind(t, err, payments.KindInvalid, "")
	var se *stripe.Error
	if pe.HTTPStatus != http.StatusBadRequest || !errors.As(err, &se) || se.Type != stripe.ErrorTypeIdempotency {
		t.Errorf("conflict: %+v", pe)
	}
	// The replay is marked as Stripe marks it.
	form := url.Values{"amount": {"5000"}, "currency": {"usd"}}
	s1, b1, h1 := rawPostH(t, e.base, "/v1/payment_intents", "raw-key", form)
	s2, b2, h2 := rawPostH(t, e.base, "/v1/payment_intents", "raw-key", form)
	if s1 != 200 || s2 != 200 || b1 != b2 || h1.Get("Idempotent-Replayed") != "" || h2.Get("Idempotent-Replayed") != "true" {
		t.Errorf("raw replay: %d %d replayed=%q/%q", s1, s2, h1.Get("Idempotent-Replayed"), h2.Get("Idempotent-Replayed"))
	}
	if n := e.sb.CountPaymentIntents(); n != 3 {
		t.Errorf("%d payment intents, want 3", n)
	}
	// A request that failed validation is not stored: fixing it with the
	// same key works.
	s3, _ := rawPost(t, e.base, "/v1/payment_intents", "fix-key", url.Values{"amount": {"-1"}, "currency": {"usd"}})
	s4, _ := rawPost(t, e.base, "/v1/payment_intents", "fix-key", url.Values{"amount": {"100"}, "currency": {"usd"}})
	if s3 != 400 || s4 != 200 {
		t.Errorf("validation then fix: %d %d", s3, s4)
	}
}

func TestFailNext(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	e.sb.FailNext(1, stripesandbox.FaultServerError)
	_, err := e.gw.Charge(ctx, charge("pm_card_visa", "pay_500"))
	if pe := wantKind(t, err, payments.KindTransient, ""); pe.HTTPStatus != 500 || !payments.IsRetryable(err) {
		t.Errorf("500: %+v", pe)
	}
	if n := e.sb.CountPaymentIntents(); n != 0 {
		t.Fatalf("500 created %d intents", n)
	}
	if res, err := e.gw.Charge(ctx, charge("pm_card_visa", "pay_500")); err != nil || res.Status != payments.StatusSucceeded {
		t.Fatalf("retry after 500: %+v %v", res, err)
	}

	e.sb.FailNext(1, stripesandbox.FaultTimeout)
	_, err = e.gw.Charge(ctx, charge("pm_card_visa", "pay_timeout"))
	wantKind(t, err, payments.KindTransient, "")
	if n := e.sb.CountPaymentIntents(); n != 1 {
		t.Fatalf("timeout created an intent: %d", n)
	}
	if found, err := e.gw.FindPaymentIntent(ctx, "pay_timeout"); err != nil || found != nil {
		t.Fatalf("find after plain timeout: %+v %v", found, err)
	}

	// The unknown outcome: the charge happened but the answer was lost.
	e.sb.FailNext(1, stripesandbox.FaultTimeoutAfter)
	_, err = e.gw.Charge(ctx, charge("pm_card_visa", "pay_lost"))
	wantKind(t, err, payments.KindTransient, "")
	if n := e.sb.CountPaymentIntents(); n != 2 {
		t.Fatalf("timeout_after: %d intents, want 2", n)
	}
	found, err := e.gw.FindPaymentIntent(ctx, "pay_lost")
	if err != nil || found == nil || found.Status != payments.StatusSucceeded || found.Method.Last4 != "4242" {
		t.Fatalf("find after lost answer: %+v %v", found, err)
	}
	retried, err := e.gw.Charge(ctx, charge("pm_card_visa", "pay_lost"))
	if err != nil || retried.PaymentIntentID != found.PaymentIntentID {
		t.Fatalf("retry with the same key: %+v %v", retried, err)
	}
	if n := e.sb.CountPaymentIntents(); n != 2 {
		t.Fatalf("retry charged again: %d intents", n)
	}

	// Faults wait for requests; pending ones can be counted and dropped.
	e.sb.FailNext(2, stripesandbox.FaultServerError)
	if n := e.sb.PendingFaults(); n != 2 {
		t.Fatalf("PendingFaults = %d, want 2", n)
	}
	e.sb.ClearFaults()
	if n := e.sb.PendingFaults(); n != 0 {
		t.Fatalf("PendingFaults after ClearFaults = %d", n)
	}
	if _, err := e.gw.GetPaymentIntent(ctx, found.PaymentIntentID); err != nil {
		t.Fatalf("a cleared fault still failed a request: %v", err)
	}

	// Over HTTP, for other processes.
	resp, err := http.Post(e.base+"/sandbox/fail-next?n=1&mode=500", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("fail-next endpoint: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := e.gw.GetPaymentIntent(ctx, found.PaymentIntentID); !payments.IsRetryable(err) {
		t.Errorf("fault over HTTP not applied: %v", err)
	}
}

func TestRefunds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req := charge("pm_card_visa", "pay_ref")
	req.Amount = 10000
	paid, err := e.gw.Charge(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := e.gw.Refund(ctx, payments.RefundRequest{IdempotencyKey: "ref_1", PaymentIntentID: paid.PaymentIntentID, Amount: 3000, Reason: "requested_by_customer", Metadata: map[string]string{"refund_id": "ref_1"}})
	if err != nil || r1.Status != "succeeded" || r1.Amount != 3000 || !strings.HasPrefix(r1.RefundID, "re_") {
		t.Fatalf("partial refund: %+v %v", r1, err)
	}
	again, err := e.gw.Refund(ctx, payments.RefundRequest{IdempotencyKey: "ref_1", PaymentIntentID: paid.PaymentIntentID, Amount: 3000, Reason: "requested_by_customer", Metadata: map[string]string{"refund_id": "ref_1"}})
	if err != nil || again.RefundID != r1.RefundID {
		t.Fatalf("refund replay: %+v %v", again, err)
	}
	if n := len(e.sb.Refunds()); n != 1 {
		t.Fatalf("%d refunds after replay", n)
	}
	_, err = e.gw.Refund(ctx, payments.RefundRequest{IdempotencyKey: "ref_2", PaymentIntentID: paid.PaymentIntentID, Amount: 8000})
	if pe := wantKind(t, err, payments.KindInvalid, "amount_too_large"); pe.HTTPStatus != 400 || !strings.Contains(pe.Message, "$70.00") {
		t.Errorf("over-refund: %+v", pe)
	}
	rest, err := e.gw.Refund(ctx, payments.RefundRequest{IdempotencyKey: "ref_3", PaymentIntentID: paid.PaymentIntentID})
	if err != nil || rest.Amount != 7000 {
		t.Fatalf("refund the rest: %+v %v", rest, err)
	}
	_, err = e.gw.Refund(ctx, payments.RefundRequest{IdempotencyKey: "ref_4", PaymentIntentID: paid.PaymentIntentID, Amount: 1})
	wantKind(t, err, payments.KindInvalid, "charge_already_refunded")
	if pis := e.sb.PaymentIntents(); pis[0].AmountRefunded != 10000 {
		t.Errorf("amount refunded %d", pis[0].AmountRefunded)
	}
	eventually(t, "two charge.refunded events", func() bool {
		e.rc.mu.Lock()
		defer e.rc.mu.Unlock()
		n := 0
		for _, ev := range e.rc.events {
			if ev.Type == "charge.refunded" && ev.PaymentIntentID == paid.PaymentIntentID && ev.ChargeID == paid.ChargeID && ev.RefundID != "" {
				n++
			}
		}
		return n == 2
	})

	// A processing bank debit has nothing to refund yet; a decline never will.
	bankReq := charge("pm_usBankAccount", "pay_ref_bank")
	bankReq.Amount = 2000
	bankPaid, err := e.gw.Charge(ctx, bankReq)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.gw.Refund(ctx, payments.RefundRequest{IdempotencyKey: "ref_bank", PaymentIntentID: bankPaid.PaymentIntentID})
	wantKind(t, err, payments.KindInvalid, "charge_not_refundable")
	_, err = e.gw.Refund(ctx, payments.RefundRequest{IdempotencyKey: "ref_missing", PaymentIntentID: "pi_missing"})
	wantKind(t, err, payments.KindInvalid, "resource_missing")
}

func TestRequestValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	status, body := rawPost(t, e.base, "/v1/payment_intents", "", url.Values{"amount": {"1000"}, "currency": {"usd"}, "diagnosis": {"F41.1"}})
	if status != 400 || !strings.Contains(body, "parameter_unknown") {
		t.Errorf("unknown param: %d %s", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+"/v1/payment_intents/pi_x", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("no key: %v %v", resp, err)
	}
	live := payments.NewStripe(payments.StripeConfig{SecretKey: "sk_live_nope", APIBase: e.base})
	if _, err := live.CreateCustomer(ctx, payments.CustomerRequest{}); err == nil {
		t.Error("live key accepted")
	}
	small := charge("pm_card_visa", "pay_small")
	small.Amount = 10
	_, err := e.gw.Charge(ctx, small)
	wantKind(t, err, payments.KindInvalid, "amount_too_small")
	_, err = e.gw.Charge(ctx, charge("pm_card_bogus", "pay_bogus"))
	wantKind(t, err, payments.KindInvalid, "resource_missing")
	_, err = e.gw.GetPaymentIntent(ctx, "pi_missing")
	if !payments.IsNotFound(err) || payments.IsRetryable(err) {
		t.Errorf("missing intent: %v", err)
	}
	yen := payments.ChargeRequest{IdempotencyKey: "pay_jpy", Amount: 12000, Currency: "jpy", PaymentMethodID: "pm_card_visa"}
	if res, err := e.gw.Charge(ctx, yen); err != nil || res.Amount != 12000 || res.Currency != "jpy" {
		t.Errorf("jpy: %+v %v", res, err)
	}
	if found, err := e.gw.FindPaymentIntent(ctx, "pay_never"); err != nil || found != nil {
		t.Errorf("find none: %+v %v", found, err)
	}
	if n := e.sb.CountPaymentIntents(); n != 1 {
		t.Errorf("%d intents after rejected requests, want 1", n)
	}
}

func TestWebhookRetriedWhileReceiverDown(t *testing.T) {
	e := newEnv(t)
	e.rc.mu.Lock()
	e.rc.failNext = 2
	e.rc.mu.Unlock()
	res, err := e.gw.Charge(context.Background(), charge("pm_card_visa", "pay_hook"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery after retries", func() bool { return e.rc.find("payment_intent.succeeded", res.PaymentIntentID) != nil })
	var got *stripesandbox.Event
	for _, ev := range e.sb.Events() {
		if ev.Type == "payment_intent.succeeded" && ev.ObjectID == res.PaymentIntentID {
			got = &ev
		}
	}
	if got == nil || !got.Delivered || got.Attempts != 3 {
		t.Errorf("event delivery: %+v", got)
	}
}

func TestStartLogsThatItIsNotStripe(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	sb := stripesandbox.New(stripesandbox.Options{Logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))})
	defer sb.Close()
	if _, err := sb.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "NOT Stripe") {
		t.Errorf("start-up log: %q", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A later payment replaces one still waiting for 3-D Secure: the waiting
// intent is canceled and can no longer be finished; one that already
// succeeded is left as it is.
func TestCancelPaymentIntent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	res, err := e.gw.Charge(ctx, charge("pm_card_authenticationRequired", "pay_cancel"))
	if err != nil || res.Status != payments.StatusRequiresAction {
		t.Fatal(res, err)
	}
	got, err := e.gw.CancelPaymentIntent(ctx, res.PaymentIntentID)
	if err != nil || got.Status != payments.StatusFailed || got.FailureCode != "payment_intent_canceled" || got.NextActionURL != "" {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	eventually(t, "canceled webhook", func() bool { return e.rc.find("payment_intent.canceled", res.PaymentIntentID) != nil })
	if err := e.sb.CompleteAction(res.PaymentIntentID, true); err == nil {
		t.Error("a canceled intent was authenticated")
	}
	again, err := e.gw.CancelPaymentIntent(ctx, res.PaymentIntentID)
	if err != nil || again.Status != payments.StatusFailed {
		t.Fatalf("cancel again: %+v %v", again, err)
	}

	paid, err := e.gw.Charge(ctx, charge("pm_card_visa", "pay_cancel_paid"))
	if err != nil || paid.Status != payments.StatusSucceeded {
		t.Fatal(paid, err)
	}
	kept, err := e.gw.CancelPaymentIntent(ctx, paid.PaymentIntentID)
	if err != nil || kept.Status != payments.StatusSucceeded {
		t.Fatalf("cancel of a succeeded intent: %+v %v", kept, err)
	}
	if _, err := e.gw.CancelPaymentIntent(ctx, "pi_missing"); err == nil {
		t.Error("canceled an intent that does not exist")
	}
}
