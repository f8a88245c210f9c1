// Package api is billflow's Gin HTTP API (JSON under /v1), the only package
// that imports Gin. It reads from Postgres and drives Temporal; it never
// imports activities.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
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

// ---- middleware ----

const ctxRequestID = "request_id"

func (h *handlers) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if id == "" || len(id) > 64 {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

// logRequests writes one JSON line per request: method, route, status,
// latency and request ID. Never bodies, names, emails or card details.
func (h *handlers) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	h.requests.WithLabelValues(c.Request.Method, route, fmt.Sprint(status)).Observe(time.Since(start).Seconds())
	h.Logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "http request",
		slog.String("request_id", c.GetString(ctxRequestID)), slog.String("method", c.Request.Method),
		slog.String("route", route), slog.Int("status", status), slog.Duration("latency", time.Since(start)))
}

func (h *handlers) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			h.Logger.Error("panic in handler", "request_id", c.GetString(ctxRequestID), "panic", fmt.Sprint(r))
			apiError(c, http.StatusInternalServerError, "api_error", "internal_error", "internal error", "")
		}
	}()
	c.Next()
}

// ---- errors ----

type errorBody struct {
	Type        string `json:"type"`
	Code        string `json:"code"`
	Message     string `json:"message"`
	Param       string `json:"param,omitempty"`
	DeclineCode string `json:"decline_code,omitempty"`
}

func apiError(c *gin.Context, status int, typ, code, msg, param string) {
	c.AbortWithStatusJSON(status, gin.H{"error": errorBody{Type: typ, Code: code, Message: msg, Param: param}})
}

func badRequest(c *gin.Context, code, msg, param string) {
	apiError(c, http.StatusBadRequest, "invalid_request_error", code, msg, param)
}

func notFound(c *gin.Context, what string) {
	apiError(c, http.StatusNotFound, "invalid_request_error", "resource_missing", "no such "+what, "")
}

// internal logs the cause and tells the client nothing of it.
func (h *handlers) internal(c *gin.Context, op string, err error) {
	h.Logger.Error(op, "request_id", c.GetString(ctxRequestID), "error", err.Error())
	apiError(c, http.StatusInternalServerError, "api_error", "internal_error", "internal error; try again", "")
}

func (h *handlers) unavailable(c *gin.Context, op string, err error) {
	h.Logger.Error(op, "request_id", c.GetString(ctxRequestID), "error", err.Error())
	apiError(c, http.StatusServiceUnavailable, "api_error", "service_unavailable", "the billing service is busy; try again", "")
}

// readBody reads the whole body, at most maxBody bytes: more is a 413, a
// broken connection a 400.
func readBody(c *gin.Context) ([]byte, bool) {
	if c.Request.Body == nil {
		return nil, true
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		apiError(c, http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large", "request body is larger than 1 MiB", "")
		return nil, false
	case err != nil:
		badRequest(c, "invalid_request", "the request body could not be read", "")
		return nil, false
	}
	return body, true
}

// bindJSON decodes a bounded body strictly: unknown fields and trailing data
// are errors that name the problem.
func bindJSON(c *gin.Context, dst any) bool {
	body, ok := readBody(c)
	if !ok {
		return false
	}
	return decodeJSON(c, body, dst)
}

// bindOptionalJSON is bindJSON for routes whose body may be left out: an
// empty body leaves dst as it is; anything else is decoded as strictly. It
// reads the body rather than trust Content-Length, which a chunked request
// does not send.
func bindOptionalJSON(c *gin.Context, dst any) bool {
	body, ok := readBody(c)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	return decodeJSON(c, body, dst)
}

func decodeJSON(c *gin.Context, body []byte, dst any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		msg, param := describeJSONError(err)
		badRequest(c, "invalid_json", msg, param)
		return false
	}
	if dec.More() {
		badRequest(c, "invalid_json", "request body has data after the JSON object", "")
		return false
	}
	if field, bad := nulField(reflect.ValueOf(dst), ""); bad {
		badRequest(c, "parameter_invalid", "text must not contain NUL (\\u0000) characters", field)
		return false
	}
	return true
}

// nulField finds a string in v holding a NUL, which Postgres cannot store:
// refused here, before anything is charged or written. It names the field
// as the JSON does.
func nulField(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", false
		}
		return nulField(v.Elem(), path)
	case reflect.String:
		return path, strings.ContainsRune(v.String(), 0)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name == "" {
				name = t.Field(i).Name
			}
			if name == "-" {
				continue
			}
			if path != "" {
				name = path + "." + name
			}
			if f, bad := nulField(v.Field(i), name); bad {
				return f, true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if f, bad := nulField(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); bad {
				return f, true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			k := fmt.Sprint(it.Key().Interface())
			if strings.ContainsRune(k, 0) {
				return path, true
			}
			if f, bad := nulField(it.Value(), path+"."+k); bad {
				return f, true
			}
		}
	}
	return "", false
}

func describeJSONError(err error) (string, string) {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset), ""
	case errors.As(err, &typ):
		return fmt.Sprintf("%s must be %s", typ.Field, jsonKind(typ.Type.Kind().String())), typ.Field
	case errors.Is(err, io.EOF):
		return "request body is empty; send a JSON object", ""
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fmt.Sprintf("unknown field %q", f), f
	}
	return "malformed JSON: " + err.Error(), ""
}

func jsonKind(k string) string {
	switch k {
	case "int64", "int", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return "a " + k
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
