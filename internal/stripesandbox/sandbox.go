// Package stripesandbox is a local, in-memory server that speaks Stripe's
// wire format for exactly the endpoints billflow's payments gateway calls.
// stripe-go reaches it through STRIPE_API_BASE. It honours Stripe's
// documented test PaymentMethod IDs, idempotency keys and signed webhooks, so
// the dev stack and end-to-end tests exercise billflow's real payment path
// without a network or a Stripe account.
//
// It is a development and test tool. It moves no money, is not Stripe, and
// refuses live keys; production talks to api.stripe.com.
//
// Endpoints: POST /v1/customers, GET /v1/customers/{id},
// POST /v1/payment_intents, GET /v1/payment_intents/{id},
// GET /v1/payment_intents/search, POST /v1/payment_intents/{id}/cancel,
// POST /v1/refunds, GET /v1/refunds/{id},
// GET /v1/payment_methods/{id}, POST /v1/payment_methods/{id}/attach,
// POST /v1/payment_methods/{id}/detach. Controls (not Stripe):
// GET|POST /sandbox/3ds/{pi}?result=success|failure finishes 3-D Secure and
// POST /sandbox/fail-next?n=1&mode=500|timeout|timeout_after injects faults.
//
// Test PaymentMethod IDs such as pm_card_visa are templates, as at Stripe:
// each use in a PaymentIntent or an attach makes a new pm_… object, and that
// new ID is what a PaymentIntent reports and what a customer has saved.
package stripesandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Options configures a Sandbox.
type Options struct {
	// WebhookURL receives signed events (billflow's /v1/webhooks/stripe);
	// empty means events are only recorded.
	WebhookURL string
	// WebhookSecret signs them (STRIPE_WEBHOOK_SECRET).
	WebhookSecret string
	// BankSettleDelay is how long a bank debit stays processing; default 3s.
	BankSettleDelay time.Duration
	// WebhookAttempts bounds delivery attempts per event; default 6.
	WebhookAttempts int
	// WebhookRetryDelay is the first retry's delay, doubled each time up to
	// 5s; default 250ms.
	WebhookRetryDelay time.Duration
	// PublicURL is the sandbox's base URL as a browser sees it, for the 3-D
	// Secure page link; default derived from each request's Host.
	PublicURL string
	// Logger gets the start-up warning and webhook delivery failures;
	// default slog.Default().
	Logger *slog.Logger
}

// Fault modes for FailNext.
const (
	// FaultServerError answers 500 api_error with Stripe-Should-Retry: true.
	FaultServerError = "500"
	// FaultTimeout never answers and does nothing: the client times out.
	FaultTimeout = "timeout"
	// FaultTimeoutAfter performs the request (and stores its idempotent
	// result) and then never answers: an unknown outcome.
	FaultTimeoutAfter = "timeout_after"
)

// Sandbox is the in-memory Stripe stand-in. All methods are safe for
// concurrent use.
type Sandbox struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	customers map[string]*customer
	methods   map[string]*paymentMethod
	intents   map[string]*paymentIntent
	intentSeq []string
	charges   map[string]*charge
	refunds   map[string]*refund
	refundSeq []string
	idem      map[string]*idemEntry
	faults    []string
	// dropWebhooks: events are recorded but never sent (DropWebhooks).
	dropWebhooks bool
	events       []*event
	queue        []*event
	timers       map[*time.Timer]struct{}

	wake      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	logOnce   sync.Once
	workers   sync.WaitGroup
	server    *http.Server
	client    *http.Client
}

// New makes a Sandbox and starts its webhook sender. Close stops it.
func New(opts Options) *Sandbox {
	if opts.BankSettleDelay <= 0 {
		opts.BankSettleDelay = 3 * time.Second
	}
	if opts.WebhookAttempts <= 0 {
		opts.WebhookAttempts = 6
	}
	if opts.WebhookRetryDelay <= 0 {
		opts.WebhookRetryDelay = 250 * time.Millisecond
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	s := &Sandbox{
		opts:      opts,
		log:       lg.With("component", "stripesandbox"),
		customers: map[string]*customer{},
		methods:   map[string]*paymentMethod{},
		intents:   map[string]*paymentIntent{},
		charges:   map[string]*charge{},
		refunds:   map[string]*refund{},
		idem:      map[string]*idemEntry{},
		timers:    map[*time.Timer]struct{}{},
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		client:    &http.Client{Timeout: 10 * time.Second},
	}
	s.workers.Add(1)
	go s.deliverLoop()
	return s
}

func (s *Sandbox) announce(where string) {
	s.logOnce.Do(func() {
		s.log.Warn("Stripe SANDBOX: a billflow dev/test tool, NOT Stripe; no money moves, live keys are refused",
			"url", where, "webhook_url", s.opts.WebhookURL)
	})
}

// Handler serves the Stripe endpoints and the /sandbox controls.
func (s *Sandbox) Handler() http.Handler {
	s.announce("(mounted handler)")
	return http.HandlerFunc(s.serveHTTP)
}

// Start listens on addr (e.g. "127.0.0.1:0") and returns the base URL to
// use as STRIPE_API_BASE.
func (s *Sandbox) Start(addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("stripe sandbox listen %s: %w", addr, err)
	}
	base := "http://" + l.Addr().String()
	s.mu.Lock()
	s.server = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	srv := s.server
	s.mu.Unlock()
	s.announce(base)
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("stripe sandbox server stopped", "err", err)
		}
	}()
	return base, nil
}

// Close stops the server, pending bank settlements, hung requests and the
// webhook sender. Undelivered events are dropped.
func (s *Sandbox) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		for t := range s.timers {
			t.Stop()
		}
		srv := s.server
		s.mu.Unlock()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
		}
		s.workers.Wait()
	})
}

// FailNext makes the next n Stripe API requests fail with mode:
// FaultServerError, FaultTimeout or FaultTimeoutAfter.
func (s *Sandbox) FailNext(n int, mode string) {
	switch mode {
	case FaultServerError, FaultTimeout, FaultTimeoutAfter:
	default:
		panic(fmt.Sprintf("stripesandbox: unknown fault mode %q", mode))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.faults = append(s.faults, mode)
	}
}

// PendingFaults is how many injected faults no request has met yet.
func (s *Sandbox) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// ClearFaults drops the injected faults no request has met yet.
func (s *Sandbox) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// PaymentIntent is a read-only view of a sandbox PaymentIntent, for tests.
type PaymentIntent struct {
	ID             string
	Status         string
	Amount         int64
	Currency       string
	Customer       string
	PaymentMethod  string
	IdempotencyKey string
	Metadata       map[string]string
	AmountRefunded int64
	ReturnURL      string
}

// Refund is a read-only view of a sandbox Refund, for tests.
type Refund struct {
	ID             string
	PaymentIntent  string
	Charge         string
	Status         string
	Reason         string
	Amount         int64
	IdempotencyKey string
	Metadata       map[string]string
}

// Event is a read-only view of an event and its delivery, for tests.
type Event struct {
	ID        string
	Type      string
	ObjectID  string
	Delivered bool
	Attempts  int
}

// PaymentIntents lists every PaymentIntent created, oldest first.
func (s *Sandbox) PaymentIntents() []PaymentIntent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PaymentIntent, 0, len(s.intentSeq))
	for _, id := range s.intentSeq {
		pi := s.intents[id]
		v := PaymentIntent{ID: pi.ID, Status: pi.Status, Amount: pi.Amount, Currency: pi.Currency, Customer: pi.Customer,
			PaymentMethod: pi.PaymentMethod, IdempotencyKey: pi.IdempotencyKey, Metadata: copyMap(pi.Metadata), ReturnURL: pi.ReturnURL}
		if ch := s.charges[pi.LatestCharge]; ch != nil {
			v.AmountRefunded = ch.AmountRefunded
		}
		out = append(out, v)
	}
	return out
}

// CountPaymentIntents is len(PaymentIntents()).
func (s *Sandbox) CountPaymentIntents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.intentSeq)
}

// Refunds lists every refund created, oldest first.
func (s *Sandbox) Refunds() []Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Refund, 0, len(s.refundSeq))
	for _, id := range s.refundSeq {
		r := s.refunds[id]
		out = append(out, Refund{ID: r.ID, PaymentIntent: r.PaymentIntent, Charge: r.Charge, Status: r.Status,
			Reason: r.Reason, Amount: r.Amount, IdempotencyKey: r.IdempotencyKey, Metadata: copyMap(r.Metadata)})
	}
	return out
}

// Events lists every event emitted, oldest first, with delivery state.
func (s *Sandbox) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, 0, len(s.events))
	for _, e := range s.events {
		out = append(out, Event{ID: e.ID, Type: e.Type, ObjectID: e.ObjectID, Delivered: e.delivered, Attempts: e.attempts})
	}
	return out
}

// idemEntry is a stored result for an idempotency key.
type idemEntry struct {
	signature string
	status    int
	body      []byte
}

// response is what an endpoint produced.
type response struct {
	status int
	body   any
}

func (s *Sandbox) serveHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newID("req_")
	w.Header().Set("Request-Id", reqID)
	if strings.HasPrefix(r.URL.Path, "/sandbox/") {
		s.serveControl(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		writeJSON(w, http.StatusNotFound, errBody(invalid("", "", fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path))))
		return
	}
	if resp := checkAuth(r); resp != nil {
		writeJSON(w, resp.status, resp.body)
		return
	}
	var form url.Values
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			form, err = url.ParseQuery(string(body))
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errBody(invalid("", "", "Invalid request body: "+err.Error())))
			return
		}
	} else {
		form = r.URL.Query()
	}

	fault := s.takeFault()
	switch fault {
	case FaultServerError:
		w.Header().Set("Stripe-Should-Retry", "true")
		writeJSON(w, http.StatusInternalServerError, errBody(&apiError{Type: "api_error", Message: "An unknown error occurred (injected by the Stripe sandbox)."}))
		return
	case FaultTimeout:
		s.hang(r)
	}

	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	status, body, replayed := s.execute(r, form, key)
	if fault == FaultTimeoutAfter {
		s.hang(r)
	}
	if key != "" && r.Method == http.MethodPost {
		w.Header().Set("Idempotency-Key", key)
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
	}
	w.Header().Set("Stripe-Version", r.Header.Get("Stripe-Version"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// execute runs one API request under the state lock, applying Stripe's
// idempotency rules: a stored result is replayed for the same key and
// parameters, a different request with the same key is an idempotency_error,
// and only requests that began executing (2xx and 402) are stored.
func (s *Sandbox) execute(r *http.Request, form url.Values, key string) (int, []byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	useKey := key != "" && r.Method == http.MethodPost
	sig := r.Method + " " + r.URL.Path + "?" + form.Encode()
	if useKey {
		if e, ok := s.idem[key]; ok {
			if e.signature != sig {
				b, _ := json.Marshal(errBody(&apiError{Type: "idempotency_error",
					Message: fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", key)}))
				return http.StatusBadRequest, b, false
			}
			return e.status, e.body, true
		}
	}
	resp := s.route(r, form, key)
	b, err := json.Marshal(resp.body)
	if err != nil {
		b, _ = json.Marshal(errBody(&apiError{Type: "api_error", Message: "sandbox encoding error"}))
		resp.status = http.StatusInternalServerError
	}
	if useKey && (resp.status < 300 || resp.status == http.StatusPaymentRequired) {
		s.idem[key] = &idemEntry{signature: sig, status: resp.status, body: b}
	}
	return resp.status, b, false
}

func (s *Sandbox) takeFault() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return ""
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	return f
}

// hang holds a request until the client gives up, then drops the
// connection so the client sees a network error, never a response.
func (s *Sandbox) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.done:
	case <-time.After(5 * time.Minute):
	}
	panic(http.ErrAbortHandler)
}

func checkAuth(r *http.Request) *response {
	key := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		key = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	} else if u, _, ok := r.BasicAuth(); ok {
		key = u
	}
	if key == "" {
		return &response{http.StatusUnauthorized, errBody(invalid("", "", "You did not provide an API key. Provide it in the Authorization header (Authorization: Bearer YOUR_SECRET_KEY)."))}
	}
	if strings.Contains(key, "_live_") {
		return &response{http.StatusUnauthorized, errBody(invalid("", "", "The Stripe sandbox refuses live keys: it is a dev/test tool, not Stripe."))}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// route dispatches a Stripe API request; the state lock is held.
func (s *Sandbox) route(r *http.Request, form url.Values, key string) response {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1/"), "/"), "/")
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case len(parts) == 1 && parts[0] == "customers" && post:
		return s.createCustomer(form)
	case len(parts) == 2 && parts[0] == "customers" && get:
		return s.getCustomer(parts[1], form)
	case len(parts) == 1 && parts[0] == "payment_intents" && post:
		return s.createPaymentIntent(r, form, key)
	case len(parts) == 2 && parts[0] == "payment_intents" && parts[1] == "search" && get:
		return s.searchPaymentIntents(form)
	case len(parts) == 3 && parts[0] == "payment_intents" && parts[2] == "cancel" && post:
		return s.cancelPaymentIntent(parts[1], form)
	case len(parts) == 2 && parts[0] == "payment_intents" && get:
		return s.getPaymentIntent(parts[1], form)
	case len(parts) == 1 && parts[0] == "refunds" && post:
		return s.createRefund(form, key)
	case len(parts) == 2 && parts[0] == "refunds" && get:
		return s.getRefund(parts[1], form)
	case len(parts) == 2 && parts[0] == "payment_methods" && get:
		return s.getPaymentMethod(parts[1], form)
	case len(parts) == 3 && parts[0] == "payment_methods" && parts[2] == "attach" && post:
		return s.attachPaymentMethod(parts[1], form)
	case len(parts) == 3 && parts[0] == "payment_methods" && parts[2] == "detach" && post:
		return s.detachPaymentMethod(parts[1], form)
	}
	return response{http.StatusNotFound, errBody(invalid("", "", fmt.Sprintf("Unrecognized request URL (%s: %s). The Stripe sandbox implements only the endpoints billflow calls.", r.Method, r.URL.Path)))}
}

// serveControl serves the sandbox's own (non-Stripe) endpoints.
func (s *Sandbox) serveControl(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/sandbox/3ds/"):
		s.serve3DS(w, r)
	case r.URL.Path == "/sandbox/fail-next" && r.Method == http.MethodPost:
		n := 1
		if v := r.URL.Query().Get("n"); v != "" {
			if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 0 {
				http.Error(w, "n must be a non-negative integer", http.StatusBadRequest)
				return
			}
		}
		mode := r.URL.Query().Get("mode")
		switch mode {
		case FaultServerError, FaultTimeout, FaultTimeoutAfter:
		default:
			http.Error(w, "mode must be 500, timeout or timeout_after", http.StatusBadRequest)
			return
		}
		s.FailNext(n, mode)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (s *Sandbox) baseURL(r *http.Request) string {
	if s.opts.PublicURL != "" {
		return strings.TrimRight(s.opts.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID makes a Stripe-looking ID: prefix plus 24 random characters.
func newID(prefix string) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return prefix + string(b)
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
