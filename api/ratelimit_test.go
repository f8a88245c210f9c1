package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func TestLimiterSetBurstThenRetryAfter(t *testing.T) {
	l := newLimiterSet(time.Second, 3)
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < 3; i++ {
		if ok, _ := l.reserve("ip", now); !ok {
			t.Fatalf("attempt %d refused within the burst", i+1)
		}
	}
	ok, wait := l.reserve("ip", now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("4th attempt: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.reserve("other-ip", now); !ok {
		t.Fatal("keys are independent")
	}
	if ok, _ := l.reserve("ip", now.Add(time.Second)); !ok {
		t.Fatal("a token comes back after the interval")
	}
}

func TestAllowPaymentAnswers429(t *testing.T) {
	gin.SetMode(gin.TestMode)
	clock := time.Unix(1_700_000_000, 0)
	h := &handlers{Deps: Deps{Now: func() time.Time { return clock }},
		limits: newPaymentLimits(RateLimits{PerInvoiceEvery: time.Minute, PerClientEvery: time.Minute, PerIPEvery: time.Minute, Burst: 2})}
	attempt := func(p principal) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/pay/x", nil)
		c.Request.RemoteAddr = "198.51.100.7:5555"
		c.Set(ctxPrincipal, p)
		if h.allowPayment(c, "inv_1", "cli_1") {
			c.Status(http.StatusOK)
		}
		return w
	}
	payLink := principal{PracticeID: "prac_1", InvoiceID: "inv_1"}
	for i := 0; i < 2; i++ {
		if w := attempt(payLink); w.Code != http.StatusOK {
			t.Fatalf("attempt %d: %d", i+1, w.Code)
		}
	}
	w := attempt(payLink)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("3rd attempt: %d retry-after=%q body=%s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	// A practice's own key (its server) is not limited.
	if w := attempt(principal{PracticeID: "prac_1"}); w.Code != http.StatusOK {
		t.Fatalf("practice key limited: %d", w.Code)
	}
	clock = clock.Add(time.Minute)
	if w := attempt(payLink); w.Code != http.StatusOK {
		t.Fatalf("after waiting: %d", w.Code)
	}
}
