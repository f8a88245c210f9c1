// Package app wires billflow's processes from a Config: the API server, the
// worker and the Temporal setup. cmd/billflow, the dev stack and the
// integration tests all start billflow through it, so they run the same code.
package app

import (
	"context"
	"errors"
	"fmt"
	sdkworker "go.temporal.io/sdk/worker"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/metrics"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/pdf"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/temporalclient"
	"github.com/billflow/billflow/tenancy"
	"github.com/billflow/billflow/worker"
)

// ValidatePractice checks what `billflow practice create` was given.
func ValidatePractice(in store.NewPractice) (store.NewPractice, error) {
	in.Name = strings.TrimSpace(in.Name)
	in.Currency = strings.ToLower(strings.TrimSpace(in.Currency))
	if in.Name == "" || len(in.Name) > 200 {
		return in, errors.New("--name is required (1-200 characters)")
	}
	if in.Currency == "" {
		in.Currency = "usd"
	}
	if !money.Supported(in.Currency) {
		return in, fmt.Errorf("--currency %q is not a currency Stripe supports", in.Currency)
	}
	if in.Timezone == "" {
		in.Timezone = "UTC"
	}
	if _, err := time.LoadLocation(in.Timezone); err != nil {
		return in, fmt.Errorf("--timezone %q is not an IANA time zone such as America/New_York", in.Timezone)
	}
	return in, nil
}

// Gateway builds the Stripe gateway from configuration.
func Gateway(cfg *config.Config) payments.Gateway {
	return payments.NewStripe(payments.StripeConfig{SecretKey: cfg.StripeSecretKey, APIBase: cfg.StripeAPIBase, Timeout: cfg.StripeTimeout})
}

// Dial connects to Temporal with billflow's credentials, converter and metrics.
func Dial(ctx context.Context, cfg *config.Config, logger *slog.Logger, m *metrics.SDKMetrics) (client.Client, error) {
	tlsConf, err := cfg.TemporalTLSConfig()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	o := temporalclient.Options{Address: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, Logger: logger,
		TLS: tlsConf, APIKey: cfg.TemporalAPIKey}
	if c, err := PayloadCodec(cfg); err != nil {
		return nil, err
	} else if c != nil {
		// Strict: with a key set, input nobody encrypted with it (written
		// by whoever reached the frontend without the key) is refused,
		// never acted on.
		o.DataConverter = c.StrictDataConverter()
	}
	if m != nil {
		o.Metrics = m.Handler()
	}
	return temporalclient.Dial(ctx, o)
}

// PayloadCodec is the AES-256-GCM codec when TEMPORAL_ENCRYPTION_KEY is set, else nil.
func PayloadCodec(cfg *config.Config) (*codec.Codec, error) {
	if cfg.EncryptionKey == nil {
		return nil, nil
	}
	return codec.New(cfg.EncryptionKey, cfg.EncryptionOldKeys...)
}

// Activities builds the one Activities value the worker registers, with a
// long-lived Chromium for PDFs and the SMTP mailer. close releases Chromium.
func Activities(ctx context.Context, cfg *config.Config, st *store.Store, gw payments.Gateway, logger *slog.Logger) (acts *activities.Activities, close func(), err error) {
	mailer, err := mail.New(mail.Config{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
		TLS: cfg.SMTPTLS, From: cfg.MailFrom})
	if err != nil {
		return nil, nil, fmt.Errorf("config: mail: %w", err)
	}
	renderer, err := pdf.New(ctx, pdf.Options{ChromiumPath: cfg.ChromiumPath, Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("start chromium (CHROMIUM_PATH=%q): %w", cfg.ChromiumPath, err)
	}
	return &activities.Activities{Store: st, Gateway: gw, Logger: logger, PublicBaseURL: cfg.PublicBaseURL,
		PayLinkSecret: cfg.PayLinkSecret, Renderer: renderer, Mailer: mailer, MailDomain: "billflow"}, func() { _ = renderer.Close() }, nil
}

// APIServer returns the http.Server with read, write and idle timeouts.
func APIServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
}

// Serve runs srv until ctx ends, then shuts it down gracefully.
func Serve(ctx context.Context, srv *http.Server, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("http listening", "addr", srv.Addr)
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// RunAPI serves the API until ctx ends.
func RunAPI(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	logger.Info("starting api", "config", cfg)
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := metrics.NewRegistry()
	m := metrics.NewSDKMetrics()
	reg.MustRegister(m)
	tc, err := Dial(ctx, cfg, logger, m)
	if err != nil {
		return err
	}
	defer tc.Close()
	pc, err := PayloadCodec(cfg)
	if err != nil {
		return err
	}
	tenants, err := Tenants(cfg, st, tc, logger, m)
	if err != nil {
		return err
	}
	defer tenants.Close()
	router := api.Router(api.Deps{Store: st, Temporal: tc, Cards: &cards.Cards{Store: st, Gateway: Gateway(cfg)}, Config: cfg, Logger: logger,
		Registry: reg, Codec: pc, Tenants: tenants})
	return Serve(ctx, APIServer(cfg.HTTPAddr, router), logger)
}

// RunWorker runs the worker until ctx ends.
func RunWorker(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	logger.Info("starting worker", "config", cfg)
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := metrics.NewRegistry()
	m := metrics.NewSDKMetrics()
	reg.MustRegister(m)
	tc, err := Dial(ctx, cfg, logger, m)
	if err != nil {
		return err
	}
	defer tc.Close()
	acts, closeActs, err := Activities(ctx, cfg, st, Gateway(cfg), logger)
	if err != nil {
		return err
	}
	defer closeActs()
	tenants, err := Tenants(cfg, st, tc, logger, m)
	if err != nil {
		return err
	}
	defer tenants.Close()
	acts.Temporal, acts.TemporalFor = tc, tenants.ForNamespace
	// The sticky cache bounds the worker's memory: workflows beyond it are
	// evicted and replayed from history when they next have work, so memory
	// does not grow with the number of open invoices.
	sdkworker.SetStickyWorkflowCacheSize(cfg.WorkerCacheSize)
	return worker.Run(ctx, tc, acts, worker.Options{Schedules: worker.ScheduleOptions{ReminderHour: cfg.ReminderHour}}, tenants)
}

// SearchAttributes are billflow's custom search attributes.
var SearchAttributes = tenancy.SearchAttributes

// SetupTemporal registers the search attributes on a real cluster, and
// registers (or finishes registering) every practice's namespace,
// idempotently. Practices are read from DATABASE_URL, so on a new install it
// runs after migrate; without DATABASE_URL only the shared namespace is set up.
func SetupTemporal(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	tc, err := Dial(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	defer tc.Close()
	if err := RegisterSearchAttributes(ctx, tc, cfg.TemporalNamespace); err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		logger.Warn("DATABASE_URL not set: practice namespaces not set up")
		return nil
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	return tenancy.SetupNamespaces(ctx, st, tc)
}

// RegisterSearchAttributes adds whichever of billflow's attributes are missing.
func RegisterSearchAttributes(ctx context.Context, tc client.Client, namespace string) error {
	return tenancy.RegisterSearchAttributes(ctx, tc, namespace)
}

// Tenants builds the per-practice Temporal clients over tc's connection,
// with the data-key keyring when TEMPORAL_ENCRYPTION_KEY is set.
func Tenants(cfg *config.Config, st *store.Store, tc client.Client, logger *slog.Logger, m *metrics.SDKMetrics) (*tenancy.Clients, error) {
	master, err := PayloadCodec(cfg)
	if err != nil {
		return nil, err
	}
	t := &tenancy.Clients{Base: tc, Store: st,
		Template: client.Options{Logger: sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk"))}}
	if m != nil {
		t.Template.MetricsHandler = m.Handler()
	}
	if master != nil {
		t.Keyring = codec.NewKeyring(master, &tenancy.Source{Store: st, Master: master, Logger: logger})
		t.Keyring.Logger = logger
	}
	return t, nil
}

// CreatePractice makes a practice with its own namespace and data key: the
// one way `billflow practice create`, the dev stack, make cluster and the
// fault run make theirs.
func CreatePractice(ctx context.Context, cfg *config.Config, st *store.Store, tc client.Client, in store.NewPractice) (*store.Practice, string, error) {
	in, err := ValidatePractice(in)
	if err != nil {
		return nil, "", err
	}
	master, err := PayloadCodec(cfg)
	if err != nil {
		return nil, "", err
	}
	return tenancy.CreatePractice(ctx, st, tc, master, in)
}
