// Command billflow-dev is the one-command dev stack (`make dev`): an embedded
// Temporal server with its UI, a local Postgres, migrations, the worker, the
// API, an SMTP catcher with a viewer and, without STRIPE_SECRET_KEY, the
// Stripe sandbox. It is a development tool: the production binary
// (cmd/billflow) contains none of these servers.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	sdkworker "go.temporal.io/sdk/worker"
	"golang.org/x/sync/errgroup"

	"github.com/billflow/billflow/app"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/internal/devcluster"
	"github.com/billflow/billflow/internal/devkeys"
	"github.com/billflow/billflow/internal/devpg"
	"github.com/billflow/billflow/internal/devtemporal"
	"github.com/billflow/billflow/internal/mailcatcher"
	"github.com/billflow/billflow/internal/stripesandbox"
	"github.com/billflow/billflow/store"
)

// DevInfo is written to .data/dev.json for scripts and people.
type DevInfo struct {
	APIURL          string `json:"api_url"`
	APIKey          string `json:"api_key"`
	PracticeID      string `json:"practice_id"`
	DatabaseURL     string `json:"database_url"`
	TemporalAddress string `json:"temporal_address"`
	// TemporalNamespace is the demo practice's own namespace, where its
	// invoices run; SharedNamespace holds practices made before namespaces
	// and nothing of the demo's.
	TemporalNamespace string `json:"temporal_namespace"`
	SharedNamespace   string `json:"shared_namespace"`
	TemporalUIURL     string `json:"temporal_ui_url"`
	// PracticeUIURL opens the demo practice's namespace in the Temporal UI.
	PracticeUIURL string `json:"practice_ui_url"`
	MailURL       string `json:"mail_url"`
	StripeAPIBase string `json:"stripe_api_base"`
}

const (
	devWebhookSecret = devkeys.WebhookSecret
	devEncryptionKey = devkeys.EncryptionKeyHex
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger); err != nil {
		fmt.Fprintln(os.Stderr, "billflow-dev:", err)
		os.Exit(1)
	}
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, logger *slog.Logger) error {
	started := time.Now()
	if addr := os.Getenv("BILLFLOW_DEV_PPROF"); addr != "" {
		// Profiling for load runs, e.g. BILLFLOW_DEV_PPROF=127.0.0.1:6060; off by default.
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	dataDir, err := filepath.Abs(getenv("BILLFLOW_DATA_DIR", ".data"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	catcher, err := mailcatcher.Start(getenv("BILLFLOW_DEV_SMTP_ADDR", "127.0.0.1:1025"), getenv("BILLFLOW_DEV_MAIL_ADDR", "127.0.0.1:8025"))
	if err != nil {
		return fmt.Errorf("mail catcher: %w", err)
	}
	cleanups = append(cleanups, func() { _ = catcher.Close() })

	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		pg, err := devpg.Start(ctx, devpg.Options{DataDir: filepath.Join(dataDir, "postgres"), Port: 54329, Logger: logger})
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		cleanups = append(cleanups, func() {
			if err := pg.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "stop postgres:", err)
			}
		})
		dbURL = pg.URL()
	}

	apiAddr := getenv("HTTP_ADDR", "127.0.0.1:8080")
	apiURL := "http://" + apiAddr
	// The SDK keeps one sticky workflow cache per process, sized when the
	// first worker is created. Here that is one of the embedded server's
	// own workers, so without this the worker's WORKER_CACHE_SIZE would be
	// ignored for the SDK's default of 10,000 workflows, and memory would
	// grow with every open invoice.
	cacheSize, err := config.WorkerCacheSize(os.Getenv)
	if err != nil {
		return err
	}
	sdkworker.SetStickyWorkflowCacheSize(cacheSize)
	ts, err := devtemporal.Start(ctx, devtemporal.Options{DBFile: filepath.Join(dataDir, "temporal.db"), FrontendPort: 7233,
		UIPort: 8233, Namespace: getenv("TEMPORAL_NAMESPACE", "default"), UICodecEndpoint: apiURL + "/codec", Logger: logger})
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	cleanups = append(cleanups, func() { _ = ts.Stop() })

	env := map[string]string{
		"DATABASE_URL": dbURL, "TEMPORAL_ADDRESS": ts.FrontendAddress(), "TEMPORAL_NAMESPACE": ts.Namespace(),
		"SMTP_HOST": "127.0.0.1", "SMTP_PORT": portOf(catcher.SMTPAddr()), "SMTP_TLS": "none",
		"PUBLIC_BASE_URL": apiURL, "HTTP_ADDR": apiAddr, "TEMPORAL_ENCRYPTION_KEY": devEncryptionKey,
		"STRIPE_WEBHOOK_SECRET": devWebhookSecret,
	}
	if os.Getenv("STRIPE_SECRET_KEY") == "" {
		sb := stripesandbox.New(stripesandbox.Options{WebhookURL: apiURL + "/v1/webhooks/stripe", WebhookSecret: devWebhookSecret, Logger: logger})
		base, err := sb.Start(getenv("BILLFLOW_DEV_STRIPE_ADDR", "127.0.0.1:12111"))
		if err != nil {
			return fmt.Errorf("stripe sandbox: %w", err)
		}
		cleanups = append(cleanups, sb.Close)
		env["STRIPE_SECRET_KEY"] = "sk_test_billflow_sandbox"
		env["STRIPE_API_BASE"] = base
	}
	cfg, err := config.Load(func(k string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return env[k]
	})
	if err != nil {
		return err
	}

	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return err
	}
	info := DevInfo{APIURL: apiURL, DatabaseURL: cfg.DatabaseURL, TemporalAddress: cfg.TemporalAddress,
		SharedNamespace: cfg.TemporalNamespace, TemporalUIURL: ts.UIURL(), MailURL: catcher.HTTPURL(), StripeAPIBase: cfg.StripeAPIBase}
	seedStarted := time.Now()
	tc, err := app.Dial(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	demo, err := devcluster.SeedDemo(ctx, cfg, st, tc, filepath.Join(dataDir, "dev.json"))
	tc.Close()
	if err != nil {
		return err
	}
	logger.Info("demo practice ready", "namespace", demo.Namespace, "seconds", time.Since(seedStarted).Seconds())
	info.PracticeID, info.APIKey, info.TemporalNamespace = demo.PracticeID, demo.APIKey, demo.Namespace
	info.PracticeUIURL = info.TemporalUIURL + "/namespaces/" + url.PathEscape(demo.Namespace) + "/workflows"

	appLogger := slog.New(slog.NewJSONHandler(openLog(filepath.Join(dataDir, "billflow.log")), nil))
	g, gctx := errgroup.WithContext(ctx)
	// BILLFLOW_DEV_WORKER=external leaves the worker out, for running
	// `env $(cat .data/worker.env) ./bin/billflow worker` as its own process
	// (to measure it apart from the Temporal server, or to run several).
	workerEnv := filepath.Join(dataDir, "worker.env")
	if err := writeEnv(workerEnv, env); err != nil {
		return err
	}
	external := os.Getenv("BILLFLOW_DEV_WORKER") == "external"
	if !external {
		g.Go(func() error { return app.RunWorker(gctx, cfg, appLogger.With("process", "worker")) })
	}
	g.Go(func() error { return app.RunAPI(gctx, cfg, appLogger.With("process", "api")) })
	readyErr := make(chan error, 1)
	go func() {
		err := waitReady(gctx, apiURL+"/readyz")
		readyErr <- err
	}()
	if err := <-readyErr; err == nil {
		if err := writeJSON(filepath.Join(dataDir, "dev.json"), info); err != nil {
			return err
		}
		fmt.Printf(`
billflow dev stack is up (%.1fs)

  API              %s        (API key below; try %s/readyz)
  Temporal UI      %s
                   the demo practice's namespace: %s
  Temporal         %s  namespace %q (shared: %q)
  Mail viewer      %s        (SMTP %s)
  Stripe sandbox   %s
  Postgres         %s
  Logs             %s

  Demo practice    %s
  Demo API key     %s

  Written to %s. Ctrl-C stops everything.
`, time.Since(started).Seconds(), apiURL, apiURL, info.TemporalUIURL, info.PracticeUIURL, info.TemporalAddress, info.TemporalNamespace, info.SharedNamespace,
			info.MailURL, catcher.SMTPAddr(), orNone(info.StripeAPIBase), info.DatabaseURL, filepath.Join(dataDir, "billflow.log"),
			info.PracticeID, info.APIKey, filepath.Join(dataDir, "dev.json"))
	}
	if external {
		fmt.Printf("  Worker           external: env $(cat %s) ./bin/billflow worker\n", workerEnv)
	}
	err = g.Wait()
	fmt.Println("\nbillflow-dev: stopping")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// writeEnv writes the stack's settings as KEY=VALUE lines (values here
// never contain spaces) for processes started beside the dev stack.
func writeEnv(path string, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func orNone(s string) string {
	if s == "" {
		return "(off: STRIPE_SECRET_KEY is set)"
	}
	return s
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}

func openLog(path string) *os.File {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return os.Stderr
	}
	return f
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o600)
}

// waitReady polls the API's readiness until it answers 200.
func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("api at %s not ready after 2 minutes", url)
}
