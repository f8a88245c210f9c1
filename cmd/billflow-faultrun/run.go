package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

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

// Options size a fault run.
type Options struct {
	Invoices         int
	Payers           int
	KillEvery        time.Duration // 0: no worker is killed
	StripeFaultEvery time.Duration // 0: Stripe never fails
	ChaosFor         time.Duration // faults stop after this long (0: while payers run); the rest pay on a healthy stack
	RestartPostgres  bool
	// Cluster runs Temporal's own server binary with Postgres persistence
	// and visibility (in the same Postgres as billflow) instead of the
	// embedded SQLite server; RestartTemporal then SIGKILLs and restarts
	// it once, two thirds of the way in.
	Cluster         bool
	RestartTemporal bool
	TemporalServer  string // temporal-server binary; "" builds one (Cluster)
	SQLTool         string // temporal-sql-tool binary; "" builds one (Cluster)
	Binary          string // billflow binary; "" builds one
	Dir             string // "" makes a temporary directory
	Settle          time.Duration
	Log             io.Writer // progress lines; nil discards
}

const webhookSecret = "whsec_faultrun_sandbox"

// world is everything a run starts.
type world struct {
	o        Options
	dir      string
	pg       *devpg.Cluster
	db       *pgxpool.Pool
	temporal *devtemporal.Server  // embedded, or
	cluster  *devcluster.Temporal // Temporal's server binary
	frontend string
	tc       client.Client // the operator's own client (shared namespace)
	// practiceTC reads the practice's invoice histories, in its namespace.
	practiceTC client.Client
	sandbox    *stripesandbox.Sandbox
	mail       *mailcatcher.Catcher
	apis       []*devcluster.Proc
	apiURLs    []string
	workers    []*devcluster.Proc
	key        string // the practice's API key
	rr         atomic.Int64
	practice   string
	started    time.Time

	faults struct {
		workerKills        atomic.Int64
		killsWhileCharging atomic.Int64
		pgRestarts         atomic.Int64
		temporalRestarts   atomic.Int64
		stripe500          atomic.Int64
		stripeTimeoutAfter atomic.Int64
	}
}

func (w *world) logf(format string, args ...any) {
	if w.o.Log != nil {
		fmt.Fprintf(w.o.Log, "faultrun %6.1fs  %s\n", time.Since(w.started).Seconds(), fmt.Sprintf(format, args...))
	}
}

// Run starts the stack, runs the payers under faults, waits for the books to
// settle and checks them. The report is returned even when the check fails.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	if o.Invoices < 10 || o.Payers < 1 {
		return nil, errors.New("need at least 10 invoices and 1 payer")
	}
	if o.Settle <= 0 {
		o.Settle = 3 * time.Minute
	}
	w := &world{o: o, started: time.Now()}
	keep := o.Dir != ""
	if w.dir = o.Dir; w.dir == "" {
		if w.dir, err = os.MkdirTemp("", "billflow-faultrun-"); err != nil {
			return nil, err
		}
	}
	// Postgres runs as the unprivileged postgres user, which must reach it.
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(w.dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		w.close()
		if err == nil && !keep {
			_ = os.RemoveAll(w.dir)
		} else if err != nil {
			w.logf("logs kept in %s", w.dir)
		}
	}()
	if err := w.start(ctx); err != nil {
		return nil, err
	}
	var outs []*outcome
	rep, outs, err = w.exercise(ctx)
	if (err != nil || len(rep.Violations) > 0 || keep) && outs != nil {
		if herr := w.saveHistories(ctx, w.practiceTC, outs); herr != nil {
			w.logf("save histories: %v", herr)
		}
	}
	if err != nil {
		return rep, err
	}
	if len(rep.Violations) > 0 {
		return rep, fmt.Errorf("%d violations (first: %s)", len(rep.Violations), rep.Violations[0])
	}
	return rep, nil
}

func (w *world) start(ctx context.Context) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bin := w.o.Binary
	if bin == "" {
		w.logf("building ./cmd/billflow")
		var err error
		if bin, err = devcluster.BuildBinary(ctx, w.dir, "billflow", "./cmd/billflow"); err != nil {
			return err
		}
	}
	var err error
	w.pg, err = devpg.Start(ctx, devpg.Options{DataDir: filepath.Join(w.dir, "postgres"), Logger: quiet})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := store.MigrateURL(ctx, w.pg.URL()); err != nil {
		return err
	}
	sep := "?"
	if strings.Contains(w.pg.URL(), "?") {
		sep = "&"
	}
	st, err := store.Open(ctx, w.pg.URL()+sep+"pool_max_conns=4&pool_min_conns=0")
	if err != nil {
		return err
	}
	w.db = st.Pool
	if err := w.startTemporal(ctx, quiet); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	if w.mail, err = mailcatcher.Start("127.0.0.1:0", ""); err != nil {
		return err
	}
	ports := make([]int, 2)
	for i := range ports {
		if ports[i], err = devcluster.FreePort(); err != nil {
			return err
		}
		w.apiURLs = append(w.apiURLs, fmt.Sprintf("http://127.0.0.1:%d", ports[i]))
	}
	w.sandbox = stripesandbox.New(stripesandbox.Options{WebhookURL: w.apiURLs[0] + "/v1/webhooks/stripe", WebhookSecret: webhookSecret,
		BankSettleDelay: 500 * time.Millisecond, WebhookAttempts: 40, WebhookRetryDelay: 500 * time.Millisecond, Logger: quiet})
	sbURL, err := w.sandbox.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	_, smtpPort, err := net.SplitHostPort(w.mail.SMTPAddr())
	if err != nil {
		return err
	}
	env := map[string]string{
		"BILLFLOW_ENV": "development", "DATABASE_URL": w.pg.URL(), "TEMPORAL_ADDRESS": w.frontend,
		"TEMPORAL_NAMESPACE": "default", "STRIPE_SECRET_KEY": "sk_test_faultrun", "STRIPE_API_BASE": sbURL,
		"STRIPE_WEBHOOK_SECRET": webhookSecret, "STRIPE_TIMEOUT": "2s", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtpPort,
		"PUBLIC_BASE_URL": w.apiURLs[0], "TEMPORAL_ENCRYPTION_KEY": devkeys.EncryptionKeyHex,
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	if w.tc, err = app.Dial(ctx, cfg, quiet, nil); err != nil {
		return err
	}
	if err := app.RegisterSearchAttributes(ctx, w.tc, cfg.TemporalNamespace); err != nil {
		return err
	}
	// The practice is made as `billflow practice create` makes it: its
	// invoices run in its own namespace under its own data key.
	made := time.Now()
	p, key, err := app.CreatePractice(ctx, cfg, st, w.tc, store.NewPractice{Name: "Fault Run Therapy", Currency: "usd", Timezone: "UTC"})
	if err != nil {
		return err
	}
	w.logf("practice %s made with namespace %s in %s", p.ID, p.TemporalNamespace, time.Since(made).Round(time.Millisecond))
	w.key, w.practice = key, p.ID
	// Histories are read raw (never decoded), from the practice's namespace.
	if w.practiceTC, err = client.NewClientFromExisting(w.tc, client.Options{Namespace: p.TemporalNamespace}); err != nil {
		return err
	}
	base := os.Environ()
	envList := func(extra ...string) []string {
		out := append([]string{}, base...)
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return append(out, extra...)
	}
	for i := range 2 {
		w.workers = append(w.workers, devcluster.NewProc(fmt.Sprintf("worker-%d", i+1), bin, w.dir, envList(), "worker"))
		w.apis = append(w.apis, devcluster.NewProc(fmt.Sprintf("api-%d", i+1), bin, w.dir, envList("HTTP_ADDR=127.0.0.1:"+strconv.Itoa(ports[i])), "api"))
	}
	for _, p := range append(append([]*devcluster.Proc{}, w.workers...), w.apis...) {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for i, p := range w.apis {
		if err := devcluster.WaitReady(ctx, w.apiURLs[i]+"/readyz", p); err != nil {
			return err
		}
	}
	for _, p := range w.workers {
		if err := p.WaitLogged("Started Worker", 90*time.Second); err != nil {
			return err
		}
	}
	kind := "embedded (SQLite)"
	if w.cluster != nil {
		kind = "server binary (Postgres persistence and visibility)"
	}
	w.logf("stack up: 2 api, 2 workers, Postgres %s, Temporal %s %s, sandbox %s (in %s)", w.pg.URL(), kind, w.frontend, sbURL, w.dir)
	return nil
}

// startTemporal starts the embedded server, or Temporal's own server binary
// on the run's Postgres.
func (w *world) startTemporal(ctx context.Context, quiet *slog.Logger) error {
	if !w.o.Cluster {
		var err error
		if w.temporal, err = devtemporal.Start(ctx, devtemporal.Options{Logger: quiet}); err != nil {
			return err
		}
		w.frontend = w.temporal.FrontendAddress()
		return nil
	}
	srv, tool := w.o.TemporalServer, w.o.SQLTool
	var err error
	if srv == "" {
		w.logf("building Temporal's server")
		if srv, err = devcluster.BuildBinary(ctx, w.dir, "temporal-server", "go.temporal.io/server/cmd/server"); err != nil {
			return err
		}
	}
	if tool == "" {
		if tool, err = devcluster.BuildBinary(ctx, w.dir, "temporal-sql-tool", "go.temporal.io/server/cmd/tools/sql"); err != nil {
			return err
		}
	}
	u, err := url.Parse(w.pg.URL())
	if err != nil {
		return err
	}
	pw, _ := u.User.Password()
	w.cluster, err = devcluster.StartTemporal(ctx, devcluster.TemporalOptions{Dir: w.dir, ServerBin: srv, SQLToolBin: tool,
		PGHost: u.Hostname(), PGPort: w.pg.Port(), PGUser: u.User.Username(), PGPassword: pw})
	if err != nil {
		return err
	}
	w.frontend = w.cluster.Frontend
	return nil
}

func (w *world) close() {
	var wg sync.WaitGroup
	for _, p := range append(append([]*devcluster.Proc{}, w.apis...), w.workers...) {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop(10 * time.Second) }()
	}
	wg.Wait()
	if w.sandbox != nil {
		w.sandbox.Close()
	}
	if w.mail != nil {
		_ = w.mail.Close()
	}
	if w.practiceTC != nil {
		w.practiceTC.Close()
	}
	if w.tc != nil {
		w.tc.Close()
	}
	if w.cluster != nil {
		w.cluster.Stop(10 * time.Second)
	}
	if w.temporal != nil {
		_ = w.temporal.Stop()
	}
	if w.db != nil {
		w.db.Close()
	}
	if w.pg != nil {
		_ = w.pg.Stop()
	}
}

// chaos injects the faults until ctx ends: a worker SIGKILLed and started
// again, Stripe failing one request (a 500, or a timeout after it committed),
// and Postgres restarted once, a third of the way in.
func (w *world) chaos(ctx context.Context, pgAt, temporalAt <-chan struct{}) {
	var wg sync.WaitGroup
	if w.o.KillEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(jitter(w.o.KillEvery)):
				}
				// Mid-charge: wait (a while) for a charge to be in flight.
				charging := w.waitCharging(ctx, w.o.KillEvery)
				p := w.workers[i%len(w.workers)]
				p.Kill()
				w.faults.workerKills.Add(1)
				if charging {
					w.faults.killsWhileCharging.Add(1)
				}
				// Down long enough for its tasks to go to the other worker,
				// then up and polling again before the next kill.
				time.Sleep(jitter(time.Second))
				if err := p.Start(); err != nil {
					w.logf("restart %s: %v", p.Name(), err)
					continue
				}
				if err := p.WaitLogged("Started Worker", time.Minute); err != nil {
					w.logf("%v", err)
				}
			}
		}()
	}
	if w.o.StripeFaultEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(jitter(w.o.StripeFaultEvery)):
				}
				if w.sandbox.PendingFaults() > 0 {
					continue // one at a time: a quiet spell must not stack them up
				}
				if i%2 == 0 {
					w.sandbox.FailNext(1, stripesandbox.FaultTimeoutAfter)
					w.faults.stripeTimeoutAfter.Add(1)
				} else {
					w.sandbox.FailNext(1, stripesandbox.FaultServerError)
					w.faults.stripe500.Add(1)
				}
			}
		}()
	}
	// restartAt restarts one part once, when at is closed (the Temporal
	// server by SIGKILL, Postgres by a fast shutdown).
	restartAt := func(at <-chan struct{}, what string, restart func(context.Context) error, count *atomic.Int64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-at:
			}
			w.logf("restarting %s", what)
			if err := restart(context.WithoutCancel(ctx)); err != nil {
				w.logf("restart %s: %v", what, err)
				return
			}
			count.Add(1)
			w.logf("%s back", what)
		}()
	}
	if w.o.RestartTemporal && w.cluster != nil {
		restartAt(temporalAt, "the Temporal server", w.cluster.Restart, &w.faults.temporalRestarts)
	}
	if w.o.RestartPostgres {
		restartAt(pgAt, "Postgres", w.pg.Restart, &w.faults.pgRestarts)
	}
	wg.Wait()
	w.sandbox.ClearFaults()
	// Whatever was killed last runs again for the settling.
	for _, p := range w.workers {
		if err := p.Start(); err != nil {
			w.logf("restart %s: %v", p.Name(), err)
		}
	}
}

// waitCharging polls for a charge whose outcome billflow does not know yet,
// for at most d.
func (w *world) waitCharging(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		var n int
		if err := w.db.QueryRow(ctx, `SELECT count(*) FROM payment_attempts WHERE status='charging'`).Scan(&n); err == nil && n > 0 {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// jitter is d ± 50%.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}
