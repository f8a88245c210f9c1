// Command billflow-cluster (`make cluster`) runs billflow's production
// topology on this machine: Temporal's own server binary with Postgres
// persistence and Postgres visibility, two `billflow worker` processes and
// two `billflow api` replicas, all behind one Postgres, with the SMTP
// catcher and the Stripe sandbox standing in for the outside world. Unlike
// `make dev` (one process, embedded SQLite Temporal) every part is its own
// process, so it can be killed and restarted. A development tool, not shipped.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/billflow/billflow/app"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/internal/devcluster"
	"github.com/billflow/billflow/internal/devkeys"
	"github.com/billflow/billflow/internal/devpg"
	"github.com/billflow/billflow/internal/mailcatcher"
	"github.com/billflow/billflow/internal/stripesandbox"
	"github.com/billflow/billflow/store"
)

// Info is written to .data/cluster/cluster.json: billflow-load reads it
// with -dev, and pays through every API replica in api_urls.
type Info struct {
	APIURL            string   `json:"api_url"`
	APIURLs           []string `json:"api_urls"`
	APIKey            string   `json:"api_key"`
	PracticeID        string   `json:"practice_id"`
	DatabaseURL       string   `json:"database_url"`
	TemporalAddress   string   `json:"temporal_address"`
	TemporalNamespace string   `json:"temporal_namespace"` // the demo practice's own
	SharedNamespace   string   `json:"shared_namespace"`
	MailURL           string   `json:"mail_url"`
	StripeAPIBase     string   `json:"stripe_api_base"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "billflow-cluster:", err)
		os.Exit(1)
	}
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context) error {
	started := time.Now()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := filepath.Abs(getenv("BILLFLOW_CLUSTER_DIR", ".data/cluster"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_ = os.Chmod(filepath.Dir(dir), 0o755) // Postgres runs as the postgres user
	_ = os.Chmod(dir, 0o755)
	bin := getenv("BILLFLOW_BIN_DIR", "bin")
	pg, err := devpg.Start(ctx, devpg.Options{DataDir: filepath.Join(dir, "postgres"), Port: 54339, Logger: quiet})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer func() { _ = pg.Stop() }()
	u, err := url.Parse(pg.URL())
	if err != nil {
		return err
	}
	pw, _ := u.User.Password()
	tsrv, err := devcluster.StartTemporal(ctx, devcluster.TemporalOptions{Dir: dir, ServerBin: filepath.Join(bin, "temporal-server"),
		SQLToolBin: filepath.Join(bin, "temporal-sql-tool"), PGHost: u.Hostname(), PGPort: pg.Port(), PGUser: u.User.Username(), PGPassword: pw})
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	defer tsrv.Stop(15 * time.Second)

	catcher, err := mailcatcher.Start("127.0.0.1:1035", "127.0.0.1:8035")
	if err != nil {
		return fmt.Errorf("mail catcher: %w", err)
	}
	defer catcher.Close()
	apiURLs := []string{"http://127.0.0.1:8091", "http://127.0.0.1:8092"}
	sb := stripesandbox.New(stripesandbox.Options{WebhookURL: apiURLs[0] + "/v1/webhooks/stripe", WebhookSecret: devkeys.WebhookSecret, Logger: quiet})
	sbURL, err := sb.Start("127.0.0.1:12121")
	if err != nil {
		return fmt.Errorf("stripe sandbox: %w", err)
	}
	defer sb.Close()

	env := map[string]string{
		"DATABASE_URL": pg.URL(), "TEMPORAL_ADDRESS": tsrv.Frontend, "TEMPORAL_NAMESPACE": "default",
		"STRIPE_SECRET_KEY": "sk_test_billflow_sandbox", "STRIPE_API_BASE": sbURL, "STRIPE_WEBHOOK_SECRET": devkeys.WebhookSecret,
		"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "1035", "PUBLIC_BASE_URL": apiURLs[0],
		"TEMPORAL_ENCRYPTION_KEY": devkeys.EncryptionKeyHex,
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	if err := store.MigrateURL(ctx, pg.URL()); err != nil {
		return err
	}
	tc, err := app.Dial(ctx, cfg, quiet, nil)
	if err != nil {
		return err
	}
	defer tc.Close()
	if err := app.RegisterSearchAttributes(ctx, tc, cfg.TemporalNamespace); err != nil {
		return err
	}
	info := Info{APIURL: apiURLs[0], APIURLs: apiURLs, DatabaseURL: pg.URL(), TemporalAddress: tsrv.Frontend,
		SharedNamespace: cfg.TemporalNamespace, MailURL: catcher.HTTPURL(), StripeAPIBase: sbURL}
	st, err := store.Open(ctx, pg.URL())
	if err != nil {
		return err
	}
	demo, err := devcluster.SeedDemo(ctx, cfg, st, tc, filepath.Join(dir, "cluster.json"))
	st.Close()
	if err != nil {
		return err
	}
	info.PracticeID, info.APIKey, info.TemporalNamespace = demo.PracticeID, demo.APIKey, demo.Namespace

	base := os.Environ()
	for k, v := range env {
		base = append(base, k+"="+v)
	}
	var procs []*devcluster.Proc
	for i := range 2 {
		procs = append(procs, devcluster.NewProc(fmt.Sprintf("worker-%d", i+1), filepath.Join(bin, "billflow"), dir, base, "worker"))
	}
	for i, u := range apiURLs {
		env := append(append([]string{}, base...), "HTTP_ADDR="+u[len("http://"):])
		procs = append(procs, devcluster.NewProc(fmt.Sprintf("api-%d", i+1), filepath.Join(bin, "billflow"), dir, env, "api"))
	}
	defer func() {
		for _, p := range procs {
			p.Stop(50 * time.Second)
		}
	}()
	for _, p := range procs {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for i, u := range apiURLs {
		if err := devcluster.WaitReady(ctx, u+"/readyz", procs[2+i]); err != nil {
			return err
		}
	}
	raw, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "cluster.json"), append(raw, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Printf(`
billflow cluster is up (%.1fs): every part its own process

  API replicas     %s, %s
  Temporal         %s (Temporal's server binary; Postgres persistence and visibility)
                   the demo practice's namespace %q (shared: %q)
  Workers          2 (billflow worker)
  Mail viewer      %s
  Stripe sandbox   %s
  Postgres         %s (billflow, temporal, temporal_visibility)
  Logs             %s/*.log

  Demo API key     %s

  Written to %s; load it with ./bin/billflow-load pay -dev %s. Ctrl-C stops everything.
`, time.Since(started).Seconds(), apiURLs[0], apiURLs[1], tsrv.Frontend, info.TemporalNamespace, cfg.TemporalNamespace, catcher.HTTPURL(), sbURL, pg.URL(), dir, info.APIKey,
		filepath.Join(dir, "cluster.json"), filepath.Join(dir, "cluster.json"))
	<-ctx.Done()
	fmt.Println("\nbillflow-cluster: stopping")
	return nil
}
