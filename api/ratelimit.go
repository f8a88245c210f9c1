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

// paymentLimits are per pay link / invoice, per client and per IP.
type paymentLimits struct {
	invoice, client, ip *limiterSet
}

// RateLimits configures payment-attempt limits; zero values take defaults.
type RateLimits struct {
	PerInvoiceEvery time.Duration // default one attempt per 6 s, burst 10
	PerClientEvery  time.Duration // default one per 3 s, burst 20
	PerIPEvery      time.Duration // default one per second, burst 30
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
		invoice: newLimiterSet(or(c.PerInvoiceEvery, 6*time.Second), burst(10)),
		client:  newLimiterSet(or(c.PerClientEvery, 3*time.Second), burst(20)),
		ip:      newLimiterSet(or(c.PerIPEvery, time.Second), burst(30)),
	}
}

// allowPayment checks every limit that applies and answers 429 if one is
// exhausted. Keys that are "" are not limited. A practice's own API key is a
// trusted server, not a payer at a public page, and is not limited.
func (h *handlers) allowPayment(c *gin.Context, invoiceID, clientID string) bool {
	if p := principalOf(c); p.ClientID == "" && p.InvoiceID == "" && p.PracticeID != "" {
		return true
	}
	now := h.Now()
	checks := []struct {
		set *limiterSet
		key string
	}{{h.limits.invoice, invoiceID}, {h.limits.client, clientID}, {h.limits.ip, c.ClientIP()}}
	for _, ch := range checks {
		if ch.key == "" {
			continue
		}
		if ok, wait := ch.set.reserve(ch.key, now); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			c.Header("Retry-After", fmt.Sprint(secs))
			apiError(c, http.StatusTooManyRequests, "rate_limit_error", "too_many_payment_attempts",
				fmt.Sprintf("too many payment attempts; try again in %d seconds", secs), "")
			return false
		}
	}
	return true
}
