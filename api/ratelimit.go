package api

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// Payment-attempt limits against card testing: a stolen-card script tries
// many cards quickly against one link, one client or from one address.
// Each key gets a token bucket; a refused attempt is 429 with Retry-After.
type limiterSet struct {
	mu      sync.Mutex
	every   time.Duration
	burst   int
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiterSet(every time.Duration, burst int) *limiterSet {
	return &limiterSet{every: every, burst: burst, buckets: map[string]*bucket{}}
}

// reserve takes a token for key, or says how long until one is free.
func (l *limiterSet) reserve(key string, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if !found {
		if len(l.buckets) > 100_000 {
			l.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops buckets idle long enough to be full again.
func (l *limiterSet) sweep(now time.Time) {
	idle := l.every * time.Duration(l.burst)
	for k, b := range l.buckets {
		if now.Sub(b.seen) > idle {
			delete(l.buckets, k)
		}
	}
}

// paymentLimits are per pay link / invoice, per client and per IP, plus the
// limits on saving a card (a SetupIntent tests a card as well as a charge
// does) and on rendering documents (each render is a Chromium page).
type paymentLimits struct {
	invoice, client, ip    *limiterSet
	attachClient, attachIP *limiterSet
	renderClient, renderIP *limiterSet
}

// RateLimits configures payment-attempt limits; zero values take defaults.
type RateLimits struct {
	PerInvoiceEvery time.Duration // default one attempt per 6 s, burst 10
	PerClientEvery  time.Duration // default one per 3 s, burst 20
	PerIPEvery      time.Duration // default one per second, burst 30
	AttachEvery     time.Duration // saved cards: default one per 30 s per client (burst 5), per 10 s per IP (burst 10)
	RenderEvery     time.Duration // documents: default one per 2 s per client (burst 10), per second per IP (burst 20)
	Burst           int           // 0: the defaults above
}

func newPaymentLimits(c RateLimits) *paymentLimits {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	burst := func(def int) int {
		if c.Burst > 0 {
			return c.Burst
		}
		return def
	}
	return &paymentLimits{
		invoice:      newLimiterSet(or(c.PerInvoiceEvery, 6*time.Second), burst(10)),
		client:       newLimiterSet(or(c.PerClientEvery, 3*time.Second), burst(20)),
		ip:           newLimiterSet(or(c.PerIPEvery, time.Second), burst(30)),
		attachClient: newLimiterSet(or(c.AttachEvery, 30*time.Second), burst(5)),
		attachIP:     newLimiterSet(or(c.AttachEvery/3, 10*time.Second), burst(10)),
		renderClient: newLimiterSet(or(c.RenderEvery, 2*time.Second), burst(10)),
		renderIP:     newLimiterSet(or(c.RenderEvery/2, time.Second), burst(20)),
	}
}

type limitCheck struct {
	set *limiterSet
	key string
}

// limited takes a token from every check (a key that is "" is not limited)
// and says, for the first that is exhausted, how many seconds until retry.
func (h *handlers) limited(checks ...limitCheck) (retryAfter int, limited bool) {
	if h.limits == nil {
		return 0, false
	}
	now := h.Now()
	for _, ch := range checks {
		if ch.set == nil || ch.key == "" {
			continue
		}
		if ok, wait := ch.set.reserve(ch.key, now); !ok {
			return max(1, int(math.Ceil(wait.Seconds()))), true
		}
	}
	return 0, false
}

// tooMany answers 429 with Retry-After.
func tooMany(c *gin.Context, retryAfter int, code, what string) {
	c.Header("Retry-After", fmt.Sprint(retryAfter))
	apiError(c, http.StatusTooManyRequests, "rate_limit_error", code,
		fmt.Sprintf("too many %s; try again in %d seconds", what, retryAfter), "")
}

// trustedServer is a practice's own API key: its server, not a payer at a
// public page, and not limited.
func trustedServer(c *gin.Context) bool {
	p := principalOf(c)
	return p.ClientID == "" && p.InvoiceID == "" && p.PracticeID != ""
}

// allowPayment checks every limit that applies and answers 429 if one is
// exhausted. Keys that are "" are not limited.
func (h *handlers) allowPayment(c *gin.Context, invoiceID, clientID string) bool {
	if trustedServer(c) {
		return true
	}
	if retry, lim := h.pageLimited(c, invoiceID, clientID); lim {
		tooMany(c, retry, "too_many_payment_attempts", "payment attempts")
		return false
	}
	return true
}

// pageLimited is the payment-attempt limit (per invoice, per client, per IP)
// for any route or page that charges.
func (h *handlers) pageLimited(c *gin.Context, invoiceID, clientID string) (int, bool) {
	l := h.limits
	if l == nil {
		return 0, false
	}
	return h.limited(limitCheck{l.invoice, invoiceID}, limitCheck{l.client, clientID}, limitCheck{l.ip, c.ClientIP()})
}

// attachLimited limits saving cards per client and per IP.
func (h *handlers) attachLimited(c *gin.Context, clientID string) (int, bool) {
	l := h.limits
	if l == nil || trustedServer(c) {
		return 0, false
	}
	return h.limited(limitCheck{l.attachClient, clientID}, limitCheck{l.attachIP, c.ClientIP()})
}

// renderLimited limits document renders (each holds a Chromium page) per
// client and per IP. A practice's own server is not limited.
func (h *handlers) renderLimited(c *gin.Context, clientID string) (int, bool) {
	l := h.limits
	if l == nil || trustedServer(c) {
		return 0, false
	}
	return h.limited(limitCheck{l.renderClient, clientID}, limitCheck{l.renderIP, c.ClientIP()})
}
