package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/config"
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

// Gin believes X-Forwarded-For from any peer by default, so a card-testing
// script could name a new address on every request and never meet the
// per-IP limit. Only configured proxies are believed.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	clientIP := func(cfg *config.Config) string {
		r := Router(Deps{Config: cfg})
		r.GET("/test/ip", func(c *gin.Context) { c.String(http.StatusOK, c.ClientIP()) })
		req := httptest.NewRequest(http.MethodGet, "/test/ip", nil)
		req.RemoteAddr = "198.51.100.7:5555"
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Real-IP", "203.0.113.10")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w.Body.String()
	}
	if got := clientIP(&config.Config{}); got != "198.51.100.7" {
		t.Fatalf("no trusted proxies: client IP %q, want the peer's", got)
	}
	if got := clientIP(&config.Config{TrustedProxies: []string{"10.0.0.0/8"}}); got != "198.51.100.7" {
		t.Fatalf("peer is not a trusted proxy: client IP %q, want the peer's", got)
	}
	if got := clientIP(&config.Config{TrustedProxies: []string{"198.51.100.0/24"}}); got != "203.0.113.9" {
		t.Fatalf("behind a trusted proxy: client IP %q, want the forwarded one", got)
	}
}

func TestAttachAndRenderLimits(t *testing.T) {
	gin.SetMode(gin.TestMode)
	clock := time.Unix(1_700_000_000, 0)
	h := &handlers{Deps: Deps{Now: func() time.Time { return clock }},
		limits: newPaymentLimits(RateLimits{AttachEvery: time.Minute, RenderEvery: time.Minute, Burst: 2})}
	ctx := func(p principal, ip string) *gin.Context {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPost, "/v1/clients/cli_1/payment-methods", nil)
		c.Request.RemoteAddr = ip + ":5555"
		c.Set(ctxPrincipal, p)
		return c
	}
	portal := principal{PracticeID: "prac_1", ClientID: "cli_1"}
	for name, limit := range map[string]func(*gin.Context) (int, bool){
		"attach": func(c *gin.Context) (int, bool) { return h.attachLimited(c, "cli_1") },
		"render": func(c *gin.Context) (int, bool) { return h.renderLimited(c, "cli_1") },
	} {
		for i := 0; i < 2; i++ {
			if _, lim := limit(ctx(portal, "198.51.100.7")); lim {
				t.Fatalf("%s %d limited within the burst", name, i+1)
			}
		}
		retry, lim := limit(ctx(portal, "198.51.100.8"))
		if !lim || retry < 1 {
			t.Fatalf("%s: a third for the same client from another address: limited=%v retry=%d", name, lim, retry)
		}
		for i := 0; i < 5; i++ {
			if _, lim := limit(ctx(principal{PracticeID: "prac_1"}, "198.51.100.7")); lim {
				t.Fatalf("%s: the practice's own server is limited", name)
			}
		}
	}
	clock = clock.Add(time.Minute)
	if _, lim := h.attachLimited(ctx(portal, "198.51.100.9"), "cli_1"); lim {
		t.Fatal("attach: a token comes back after the interval")
	}
}

func TestJSONWithNULRefused(t *testing.T) {
	gin.SetMode(gin.TestMode)
	type item struct {
		Description string `json:"description"`
	}
	type req struct {
		Name  string            `json:"name"`
		Items []item            `json:"items"`
		Meta  map[string]string `json:"metadata"`
		Note  *string           `json:"note"`
	}
	for body, param := range map[string]string{
		`{"name":"Ada\u0000Lovelace"}`:                                            "name",
		`{"name":"Ada","items":[{"description":"ok"},{"description":"a\u0000"}]}`: "items[1].description",
		`{"metadata":{"k":"v\u0000"}}`:                                            "metadata.k",
		`{"note":"\u0000"}`:                                                       "note",
	} {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		var r req
		if decodeJSON(c, []byte(body), &r) {
			t.Fatalf("%s: accepted", body)
		}
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"param":"`+param+`"`) ||
			!strings.Contains(w.Body.String(), "NUL") {
			t.Fatalf("%s: %d %s, want 400 naming %s", body, w.Code, w.Body, param)
		}
	}
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	var r req
	if !decodeJSON(c, []byte(`{"name":"Ada Lovelace","items":[{"description":"Initial consult, 60 min"}]}`), &r) {
		t.Fatal("plain text refused")
	}
}
