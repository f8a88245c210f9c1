// Package e2e runs billflow end to end on real parts: Postgres (pgtest), an
// in-process Temporal server (devtemporal), the Stripe sandbox, the worker
// and the API over HTTP.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/app"
	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/internal/devtemporal"
	"github.com/billflow/billflow/internal/mailcatcher"
	"github.com/billflow/billflow/internal/pgtest"
	"github.com/billflow/billflow/internal/stripesandbox"
	"github.com/billflow/billflow/metrics"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/tenancy"
	"github.com/billflow/billflow/worker"
)

const webhookSecret = "whsec_e2e_test"

// stack is one running billflow.
type stack struct {
	Store    *store.Store
	Temporal client.Client
	Sandbox  *stripesandbox.Sandbox
	API      *httptest.Server
	Worker   worker.Workers
	// Tenants and Practices: practice namespaces' clients and workers.
	Tenants   *tenancy.Clients
	Practices *worker.Practices
	Mail      *mailcatcher.Catcher
	Config    *config.Config
	Key       string // the demo practice's API key
	Practice  string
}

var (
	dbURL     string
	shared    *stack
	sharedErr error
	once      sync.Once
	temporal  *devtemporal.Server
)

func TestMain(m *testing.M) {
	pgtest.Main(m, func(u string) { dbURL = u }, pgtest.Setup(store.MigrateURL))
	if temporal != nil {
		_ = temporal.Stop()
	}
}

// getStack starts the shared stack once per package.
func getStack(t *testing.T) *stack {
	t.Helper()
	once.Do(func() { shared, sharedErr = startStack() })
	require.NoError(t, sharedErr)
	return shared
}

func startStack() (*stack, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("E2E_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var err error
	temporal, err = devtemporal.Start(ctx, devtemporal.Options{})
	if err != nil {
		return nil, fmt.Errorf("temporal: %w", err)
	}
	s := &stack{}
	// The API's URL is needed by the sandbox (webhooks) before the router exists.
	var router http.Handler
	s.API = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { router.ServeHTTP(w, r) }))
	s.Sandbox = stripesandbox.New(stripesandbox.Options{WebhookURL: s.API.URL + "/v1/webhooks/stripe", WebhookSecret: webhookSecret,
		BankSettleDelay: 500 * time.Millisecond, Logger: logger})
	sbURL, err := s.Sandbox.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Mail, err = mailcatcher.Start("127.0.0.1:0", "")
	if err != nil {
		return nil, err
	}
	env := map[string]string{"SMTP_PORT": portOf(s.Mail.SMTPAddr()), "DATABASE_URL": dbURL, "TEMPORAL_ADDRESS": temporal.FrontendAddress(), "STRIPE_SECRET_KEY": "sk_test_e2e",
		"STRIPE_API_BASE": sbURL, "STRIPE_WEBHOOK_SECRET": webhookSecret, "PUBLIC_BASE_URL": s.API.URL, "STRIPE_TIMEOUT": "2s",
		"TEMPORAL_ENCRYPTION_KEY": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}
	s.Config, err = config.Load(func(k string) string { return env[k] })
	if err != nil {
		return nil, err
	}
	if s.Store, err = store.Open(ctx, dbURL); err != nil {
		return nil, err
	}
	m := metrics.NewSDKMetrics()
	if s.Temporal, err = app.Dial(ctx, s.Config, logger, m); err != nil {
		return nil, err
	}
	gw := app.Gateway(s.Config)
	acts, _, err := app.Activities(context.Background(), s.Config, s.Store, gw, logger)
	if err != nil {
		return nil, err
	}
	if s.Tenants, err = app.Tenants(s.Config, s.Store, s.Temporal, logger, m); err != nil {
		return nil, err
	}
	acts.Temporal, acts.TemporalFor = s.Temporal, s.Tenants.ForNamespace
	if s.Worker, err = worker.New(s.Temporal, acts, worker.Options{}); err != nil {
		return nil, err
	}
	if err := s.Worker.Start(); err != nil {
		return nil, err
	}
	// Practices made with app.CreatePractice run in their own namespaces.
	s.Practices = worker.NewPractices(s.Tenants, acts, worker.Options{})
	go s.Practices.Run(context.Background())
	reg := metrics.NewRegistry()
	reg.MustRegister(m)
	pc, err := app.PayloadCodec(s.Config)
	if err != nil {
		return nil, err
	}
	router = api.Router(api.Deps{Store: s.Store, Temporal: s.Temporal, Cards: &cards.Cards{Store: s.Store, Gateway: gw}, Config: s.Config, Logger: logger,
		Registry: reg, Codec: pc, Tenants: s.Tenants})
	p, key, err := s.Store.CreatePractice(ctx, store.NewPractice{Name: "Calm Minds Therapy", Currency: "usd", Timezone: "America/New_York"})
	if err != nil {
		return nil, err
	}
	s.Key, s.Practice = key, p.ID
	return s, nil
}

// newPractice makes another practice with its own key.
func (s *stack) newPractice(t *testing.T, name string) string {
	_, key, err := s.Store.CreatePractice(context.Background(), store.NewPractice{Name: name, Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	return key
}

type resp struct {
	Status int
	Body   map[string]any
	Raw    []byte
	Header http.Header
}

func (r *resp) errCode() string {
	e, _ := r.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r *resp) str(k string) string { v, _ := r.Body[k].(string); return v }
func (r *resp) num(k string) int64  { v, _ := r.Body[k].(float64); return int64(v) }

// do sends a JSON request with a bearer key ("" for none) and extra headers.
func (s *stack) do(t *testing.T, method, path, key string, body any, hdr ...string) *resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.API.URL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	out := &resp{Status: res.StatusCode, Raw: raw, Header: res.Header}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// newClient and newInvoice create fixtures through the API.
func (s *stack) newClient(t *testing.T, key string) string {
	r := s.do(t, "POST", "/v1/clients", key, map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "date_of_birth": "1990-04-02"})
	require.Equal(t, 201, r.Status, string(r.Raw))
	return r.str("id")
}

func (s *stack) newInvoice(t *testing.T, key, clientID string, amount int64, extra map[string]any) *resp {
	// The practice's date, not UTC's: between midnight UTC and midnight in
	// New York a UTC service date is "tomorrow" for the practice, outside a
	// period that ends on the practice's today.
	today := practiceToday(t)
	body := map[string]any{"client_id": clientID, "due_date": day(today.AddDate(0, 0, 14)),
		"items": []map[string]any{{"service_date": day(today), "description": "Individual therapy, 53 min",
			"unit_amount": amount, "cpt_code": "90837", "diagnosis_codes": []string{"F41.1"}}}}
	for k, v := range extra {
		body[k] = v
	}
	r := s.do(t, "POST", "/v1/invoices", key, body)
	require.Equal(t, 201, r.Status, string(r.Raw))
	return r
}

func portOf(addr string) string {
	_, p, _ := strings.Cut(addr, ":")
	return p
}

// mailsFor returns the caught emails about one invoice (its ID starts their
// stable Message-ID), oldest first.
func (s *stack) mailsFor(invoiceID string) []mailcatcher.Stored {
	var out []mailcatcher.Stored
	msgs := s.Mail.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.HasPrefix(msgs[i].MessageID, "<"+invoiceID+".") {
			out = append(out, msgs[i])
		}
	}
	return out
}

// mailsByKind counts the caught emails of one kind about an invoice, in
// all and by Message-ID (a Message-ID seen twice is an email sent twice).
func (s *stack) mailsByKind(invoiceID, kind string) (ids map[string]int, n int) {
	ids = map[string]int{}
	for _, m := range s.mailsFor(invoiceID) {
		if kindOf(m) == kind {
			ids[m.MessageID]++
			n++
		}
	}
	return ids, n
}

// withAPI is the stack with a second API server of its own, on the same
// store, Temporal and sandbox, built from the stack's Deps as tweak changes
// them (a fault-injecting Temporal client, a shorter wait).
func (s *stack) withAPI(t *testing.T, tweak func(*api.Deps)) *stack {
	t.Helper()
	pc, err := app.PayloadCodec(s.Config)
	require.NoError(t, err)
	d := api.Deps{Store: s.Store, Temporal: s.Temporal, Cards: &cards.Cards{Store: s.Store, Gateway: app.Gateway(s.Config)}, Config: s.Config,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: metrics.NewRegistry(), Codec: pc, Tenants: s.Tenants}
	tweak(&d)
	srv := httptest.NewServer(api.Router(d))
	t.Cleanup(srv.Close)
	out := *s
	out.API = srv
	return &out
}

func kindOf(m mailcatcher.Stored) string {
	if v := m.Headers["X-Billflow-Kind"]; len(v) > 0 {
		return v[0]
	}
	return ""
}
