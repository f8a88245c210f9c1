package payments

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

func TestMapErrorKinds(t *testing.T) {
	withHeader := func(status int, typ stripe.ErrorType, code stripe.ErrorCode, shouldRetry string) error {
		e := &stripe.Error{Type: typ, Code: code, HTTPStatusCode: status, Msg: "m"}
		h := http.Header{}
		if shouldRetry != "" {
			h.Set("Stripe-Should-Retry", shouldRetry)
		}
		e.LastResponse = &stripe.APIResponse{Header: h, StatusCode: status}
		return e
	}
	cases := []struct {
		name string
		err  error
		want ErrorKind
	}{
		{"card", withHeader(402, stripe.ErrorTypeCard, stripe.ErrorCodeCardDeclined, ""), KindDeclined},
		{"invalid", withHeader(400, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeParameterUnknown, ""), KindInvalid},
		{"idempotency conflict", withHeader(400, stripe.ErrorTypeIdempotency, "", ""), KindInvalid},
		{"idempotency in use", withHeader(409, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeIdempotencyKeyInUse, ""), KindTransient},
		{"rate limit", withHeader(429, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeRateLimit, ""), KindTransient},
		{"server", withHeader(500, stripe.ErrorTypeAPI, "", ""), KindTransient},
		{"server says no retry", withHeader(500, stripe.ErrorTypeAPI, "", "false"), KindInvalid},
		{"400 says retry", withHeader(400, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeLockTimeout, "true"), KindTransient},
		{"network", errors.New("dial tcp: connection refused"), KindTransient},
	}
	for _, c := range cases {
		var pe *Error
		if !errors.As(mapError("op", c.err), &pe) {
			t.Fatalf("%s: not an *Error", c.name)
		}
		if pe.Kind != c.want {
			t.Errorf("%s: kind %s, want %s", c.name, pe.Kind, c.want)
		}
		if IsRetryable(pe) != (c.want == KindTransient) {
			t.Errorf("%s: IsRetryable = %v", c.name, IsRetryable(pe))
		}
		if !errors.Is(pe, c.err) {
			t.Errorf("%s: does not unwrap to the cause", c.name)
		}
	}
	if IsRetryable(errors.New("plain")) {
		t.Error("a plain error must not be retryable")
	}
}

func TestChargeResultStatuses(t *testing.T) {
	cases := map[stripe.PaymentIntentStatus]Status{
		stripe.PaymentIntentStatusSucceeded:             StatusSucceeded,
		stripe.PaymentIntentStatusProcessing:            StatusProcessing,
		stripe.PaymentIntentStatusRequiresAction:        StatusRequiresAction,
		stripe.PaymentIntentStatusRequiresPaymentMethod: StatusFailed,
		stripe.PaymentIntentStatusCanceled:              StatusFailed,
	}
	for in, want := range cases {
		pi := &stripe.PaymentIntent{ID: "pi_1", Status: in, NextAction: &stripe.PaymentIntentNextAction{RedirectToURL: &stripe.PaymentIntentNextActionRedirectToURL{URL: "https://3ds"}}}
		got := chargeResult(pi)
		if got.Status != want {
			t.Errorf("%s -> %s, want %s", in, got.Status, want)
		}
		if want == StatusRequiresAction && got.NextActionURL != "https://3ds" {
			t.Errorf("next action url %q", got.NextActionURL)
		}
		if want == StatusFailed && got.FailureCode == "" {
			t.Errorf("%s: failed without a code", in)
		}
	}
}

func TestVerifyWebhook(t *testing.T) {
	const secret = "whsec_test"
	payload, _ := json.Marshal(map[string]any{
		"id": "evt_1", "object": "event", "type": "payment_intent.payment_failed", "created": 1700000000,
		"api_version": "2019-01-01",
		"data": map[string]any{"object": map[string]any{
			"id": "pi_1", "object": "payment_intent", "amount": 18000, "currency": "usd", "status": "requires_payment_method",
			"latest_charge": "ch_1", "metadata": map[string]string{"payment_id": "pay_1"},
			"last_payment_error": map[string]any{"code": "insufficient_funds", "message": "no funds"},
		}},
	})
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
	ev, err := VerifyWebhook(payload, signed.Header, secret, 0)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if ev.ID != "evt_1" || ev.PaymentIntentID != "pi_1" || ev.ChargeID != "ch_1" || ev.Amount != 18000 ||
		ev.FailureCode != "insufficient_funds" || ev.Metadata["payment_id"] != "pay_1" {
		t.Errorf("event %+v", ev)
	}

	refund, _ := json.Marshal(map[string]any{
		"id": "evt_2", "object": "event", "type": "charge.refunded", "created": 1700000000,
		"data": map[string]any{"object": map[string]any{
			"id": "ch_1", "object": "charge", "amount": 18000, "amount_refunded": 5000, "payment_intent": "pi_1",
			"refunds": map[string]any{"data": []map[string]any{{"id": "re_1"}}},
		}},
	})
	s2 := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: refund, Secret: secret})
	ev, err = VerifyWebhook(refund, s2.Header, secret, time.Minute)
	if err != nil || ev.ChargeID != "ch_1" || ev.PaymentIntentID != "pi_1" || ev.RefundID != "re_1" || ev.AmountRefunded != 5000 {
		t.Fatalf("charge.refunded: %+v, %v", ev, err)
	}

	forged := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: "whsec_other"})
	stale := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: time.Now().Add(-time.Hour)})
	tampered := strings.Replace(string(payload), "18000", "1", 1)
	for name, c := range map[string]struct{ body, header string }{
		"unsigned": {string(payload), ""},
		"forged":   {string(payload), forged.Header},
		"stale":    {string(payload), stale.Header},
		"tampered": {tampered, signed.Header},
		"garbage":  {string(payload), "t=abc,v1=zz"},
	} {
		if _, err := VerifyWebhook([]byte(c.body), c.header, secret, 5*time.Minute); err == nil {
			t.Errorf("%s webhook accepted", name)
		}
	}
	if _, err := VerifyWebhook(payload, signed.Header, "", 0); err == nil {
		t.Error("empty secret accepted")
	}
}

// Concurrent calls keep their connections: a second burst as wide as the
// first opens none (with net/http's default of two idle connections per
// host, it would open eighteen of twenty).
func TestStripeKeepsConnectionsForConcurrentCalls(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // all twenty calls in flight at once
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"pi_1","object":"payment_intent","amount":5000,"currency":"usd","status":"succeeded"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	gw := NewStripe(StripeConfig{SecretKey: "sk_test_conns", APIBase: srv.URL})
	burst := func() {
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				res, err := gw.GetPaymentIntent(context.Background(), "pi_1")
				if assert.NoError(t, err) {
					assert.Equal(t, StatusSucceeded, res.Status)
				}
			})
		}
		wg.Wait()
	}
	burst()
	first := opened.Load()
	assert.Equal(t, int64(20), first)
	burst()
	assert.Equal(t, first, opened.Load(), "connections opened by the second burst")
}
