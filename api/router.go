// Package api is billflow's Gin HTTP API (JSON under /v1), the only package
// that imports Gin. It reads from Postgres and drives Temporal; it never
// imports activities.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/tenancy"
)

// Deps are what the handlers need.
type Deps struct {
	Store    *store.Store
	Temporal client.Client
	// Cards saves, lists and removes clients' cards (the processor calls
	// live there and in the activities, never in a handler).
	Cards    *cards.Cards
	Config   *config.Config
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Now      func() time.Time
	Codec    converter.PayloadCodec // nil: payloads are not encrypted and /codec is not served
	// Tenants picks each practice's Temporal client (its own namespace and
	// data key) and codec; nil: every practice uses Temporal and Codec.
	Tenants *tenancy.Clients
	Limits  RateLimits // payment-attempt limits (card-testing defence)
	// UpdateWait bounds how long a request waits for its Update's result
	// (pay, refund, void, resend); default 25 s, under the server's write
	// timeout. Past it the work goes on in the invoice's workflow: a resend
	// answers 202 (its email follows), the others 503 still_processing, and
	// a retry with the same Idempotency-Key gets the result.
	UpdateWait time.Duration
}

type handlers struct {
	Deps
	requests *prometheus.HistogramVec
	limits   *paymentLimits
	// idempotencySwept is when this process last swept expired Idempotency-Keys (Unix ns).
	idempotencySwept atomic.Int64
}

// maxBody bounds every request body.
const maxBody = 1 << 20

// Router builds the engine apart from the http.Server so tests can wrap it.
func Router(d Deps) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &handlers{Deps: d, limits: newPaymentLimits(d.Limits)}
	h.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "billflow_http_request_duration_seconds", Help: "HTTP requests by route and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"method", "route", "status"})
	if d.Registry != nil {
		_ = d.Registry.Register(h.requests)
	}
	r := gin.New()
	r.ContextWithFallback = true
	// Gin believes X-Forwarded-For from every peer unless told otherwise, and
	// a spoofed header would give a card-testing script a fresh per-IP limit
	// on every request. Only configured proxies are believed; none by default.
	var proxies []string
	if d.Config != nil {
		proxies = d.Config.TrustedProxies
	}
	if err := r.SetTrustedProxies(proxies); err != nil {
		// config.Load validated them; a failure here is a programming error.
		panic(fmt.Sprintf("api: trusted proxies %v: %v", proxies, err))
	}
	r.Use(h.requestID, h.logRequests, h.recover)
	r.NoRoute(func(c *gin.Context) {
		apiError(c, http.StatusNotFound, "invalid_request_error", "route_not_found", "no such route", "")
	})
	r.NoMethod(func(c *gin.Context) {
		apiError(c, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "method not allowed", "")
	})
	r.HandleMethodNotAllowed = true

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", h.readyz)
	if d.Registry != nil {
		r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{})))
	}

	h.codecRoutes(r)

	v1 := r.Group("/v1")
	v1.GET("/openapi.yaml", serveOpenAPI)
	v1.POST("/webhooks/stripe", h.stripeWebhook)
	r.GET("/pay/:token", h.payPage)
	r.POST("/pay/:token", h.payPageSubmit)
	r.GET("/pay/:token/pdf", h.payPagePDF)

	// Every POST below honours Idempotency-Key (h.idempotency, after auth: the
	// key belongs to the caller). Not the webhook, which Stripe's event IDs
	// dedupe, nor the pay page, which has its own form nonce.

	// Practice API key only.
	p := v1.Group("", h.practiceAuth, h.idempotency)
	p.POST("/clients", h.createClient)
	p.GET("/clients/:id", h.getClient)
	p.POST("/clients/:id/portal-token", h.createPortalToken)
	p.POST("/invoices", h.createInvoice)
	p.POST("/invoices/:id/refunds", h.refundInvoice)
	p.POST("/invoices/:id/void", h.voidInvoice)
	p.POST("/invoices/:id/send", h.sendInvoice)

	// A practice API key, or a client portal token scoped to one client.
	pc := v1.Group("", h.practiceOrClientAuth, h.idempotency)
	pc.GET("/invoices", h.listInvoices)
	pc.GET("/invoices/:id", h.getInvoice)
	pc.POST("/invoices/:id/payments", h.payInvoice)
	pc.POST("/clients/:id/balance-payments", h.payBalance)
	pc.GET("/clients/:id/payment-methods", h.listPaymentMethods)
	pc.POST("/clients/:id/payment-methods", h.attachPaymentMethod)
	pc.DELETE("/clients/:id/payment-methods/:pm", h.detachPaymentMethod)
	pc.GET("/invoices/:id/pdf", h.getInvoicePDF)
	pc.GET("/documents/:id/pdf", h.getDocumentPDF)
	pc.POST("/clients/:id/statements", h.createStatement)
	pc.POST("/clients/:id/superbills", h.createSuperbill)
	pc.GET("/clients/:id/billing", h.getBilling)
	pc.GET("/clients/:id/account-history", h.getAccountHistory)

	// The client's Billing & Payments page: a portal token, kept in a cookie.
	h.portalRoutes(r)
	return r
}

func (h *handlers) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks := gin.H{}
	ok := true
	if err := h.Store.Ping(ctx); err != nil {
		checks["postgres"] = "unreachable"
		ok = false
	} else {
		checks["postgres"] = "ok"
	}
	if _, err := h.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"] = "unreachable"
		ok = false
	} else {
		checks["temporal"] = "ok"
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"ready": ok, "checks": checks})
}

// temporalFor is the Temporal client a practice's workflows run under: its
// own namespace's, or the shared one for a practice made before namespaces.
func (h *handlers) temporalFor(ctx context.Context, practiceID string) (client.Client, error) {
	if h.Tenants == nil {
		return h.Temporal, nil
	}
	ns, err := h.Tenants.PracticeNamespace(ctx, practiceID)
	if err != nil {
		return nil, err
	}
	if ns == "" {
		return h.Temporal, nil
	}
	return h.Tenants.ForNamespace(ns)
}
