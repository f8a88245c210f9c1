// Command billflow-load drives a running billflow (the dev stack by default,
// read from .data/dev.json) and reports numbers: requests per second and
// p50/p99 latency per route, lifecycles per second, and the reminder run's
// duration over many open invoices. It only talks to the addresses in
// dev.json (loopback in the dev stack) and every loop is bounded.
//
//	billflow-load scale -invoices 10000     open invoices, run reminder-run, sample reads meanwhile
//	billflow-load remind                    reminder-run over open invoices due today without a reminder
//	billflow-load reads -rates 250,500,1000 -duration 10s
//	billflow-load pay -payers 20 -count 200
//	billflow-load lifecycles -count 100 -concurrency 8
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/app"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/devkeys"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

type devInfo struct {
	DatabaseURL       string   `json:"database_url"`
	APIURL            string   `json:"api_url"`
	APIURLs           []string `json:"api_urls"` // API replicas to spread requests over (billflow-cluster)
	APIKey            string   `json:"api_key"`
	TemporalAddress   string   `json:"temporal_address"`
	TemporalNamespace string   `json:"temporal_namespace"` // the demo practice's
	SharedNamespace   string   `json:"shared_namespace"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: billflow-load scale|remind|reads|pay|lifecycles [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "billflow-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	devJSON := fs.String("dev", ".data/dev.json", "the dev stack's dev.json")
	invoices := fs.Int("invoices", 10000, "scale: invoices to open")
	conc := fs.Int("concurrency", 16, "scale, pay: concurrent creators; lifecycles: concurrent lifecycles")
	rates := fs.String("rates", "250,500,1000", "reads: requests per second to try, in order")
	duration := fs.Duration("duration", 10*time.Second, "reads: time at each rate")
	payers := fs.Int("payers", 20, "pay: concurrent payers")
	count := fs.Int("count", 200, "pay: invoices to pay; lifecycles: lifecycles to run")
	part := fs.Bool("partial", false, "pay: pay half of each invoice (a payment-received email) instead of all of it (a receipt PDF and email)")
	settle := fs.Duration("settle", 2*time.Second, "pay: idle time between the last invoice email and the first payment")
	ramp := fs.Duration("ramp", 200*time.Millisecond, "pay: time over which the payers start, evenly spaced (0: all at once)")
	pid := fs.String("pid", "", "scale: comma-separated PIDs whose peak memory (VmHWM) to report, e.g. billflow-dev's and an external worker's")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*devJSON)
	if err != nil {
		return fmt.Errorf("read %s (start `make dev` first): %w", *devJSON, err)
	}
	var d devInfo
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	db, err := pgxpool.New(ctx, d.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	l := &loader{d: d, db: db, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 256,
		// Below the API's 120 s IdleTimeout, so a connection idle through
		// the pay run's settle wait is not reused just as the server closes it.
		IdleConnTimeout: 60 * time.Second,
	}}}
	switch mode {
	case "scale":
		return l.scale(ctx, *invoices, *conc, *pid)
	case "reads":
		return l.reads(ctx, *rates, *duration)
	case "pay":
		return l.pay(ctx, *payers, *count, *conc, *part, *settle, *ramp)
	case "remind":
		return l.remind(ctx, *pid)
	case "lifecycles":
		return l.lifecycles(ctx, *count, *conc)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

type loader struct {
	d  devInfo
	hc *http.Client
	db *pgxpool.Pool // the dev stack's Postgres, to wait on what billflow records

	next atomic.Uint64 // round robin over d.APIURLs
}

func (l *loader) call(ctx context.Context, method, path string, body any) (map[string]any, int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	base := l.d.APIURL
	if n := len(l.d.APIURLs); n > 0 {
		// A cluster's replicas (billflow-cluster's api_urls), in turn.
		base = l.d.APIURLs[l.next.Add(1)%uint64(n)]
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+l.d.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out, resp.StatusCode, nil
}

func (l *loader) newClient(ctx context.Context, i int) (string, error) {
	out, code, err := l.call(ctx, "POST", "/v1/clients", map[string]any{"name": fmt.Sprintf("Load Client %d", i), "email": fmt.Sprintf("load%d@example.com", i)})
	if err != nil || code != 201 {
		return "", fmt.Errorf("create client: %d %v %v", code, err, out)
	}
	return out["id"].(string), nil
}

func (l *loader) newInvoice(ctx context.Context, clientID string, due time.Time, partial bool) (string, error) {
	body := map[string]any{"client_id": clientID, "due_date": due.Format(time.DateOnly),
		"items": []map[string]any{{"service_date": time.Now().Format(time.DateOnly), "description": "Session", "unit_amount": 12000}}}
	if partial {
		body["partial_payments"] = map[string]any{"enabled": true}
	}
	out, code, err := l.call(ctx, "POST", "/v1/invoices", body)
	if err != nil || code != 201 {
		return "", fmt.Errorf("create invoice: %d %v %v", code, err, out)
	}
	return out["id"].(string), nil
}

// stats collects latencies.
type stats struct {
	mu   sync.Mutex
	lat  []time.Duration
	errs int
}

func (s *stats) add(d time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		s.errs++
		return
	}
	s.lat = append(s.lat, d)
}

func (s *stats) pct(p float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lat) == 0 {
		return 0
	}
	l := slices.Clone(s.lat)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[min(len(l)-1, int(float64(len(l))*p))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// temporal dials the dev stack's Temporal with the demo practice's client:
// its namespace and its data key, as the worker reads them.
func (l *loader) temporal(ctx context.Context) (client.Client, error) {
	shared := l.d.SharedNamespace
	if shared == "" {
		shared = l.d.TemporalNamespace
	}
	cfg, err := config.Load(func(k string) string {
		switch k {
		case "TEMPORAL_ADDRESS":
			return l.d.TemporalAddress
		case "TEMPORAL_NAMESPACE":
			return shared
		case "TEMPORAL_ENCRYPTION_KEY":
			return os.Getenv("TEMPORAL_ENCRYPTION_KEY")
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	if cfg.EncryptionKey == nil {
		cfg.EncryptionKey = devKey()
	}
	tc, err := app.Dial(ctx, cfg, nil, nil)
	if err != nil {
		return nil, err
	}
	if l.d.TemporalNamespace == shared {
		return tc, nil
	}
	st, err := store.Open(ctx, l.d.DatabaseURL)
	if err != nil {
		tc.Close()
		return nil, err
	}
	tenants, err := app.Tenants(cfg, st, tc, slog.Default(), nil)
	if err != nil {
		tc.Close()
		st.Close()
		return nil, err
	}
	pc, err := tenants.ForNamespace(l.d.TemporalNamespace)
	if err != nil {
		tc.Close()
		st.Close()
		return nil, err
	}
	return &ownedClient{Client: pc, close: func() { tenants.Close(); tc.Close(); st.Close() }}, nil
}

// ownedClient closes what it was built on with it.
type ownedClient struct {
	client.Client
	close func()
}

func (c *ownedClient) Close() { c.close() }

// lifecycles runs n whole lifecycles, conc at a time: open an invoice, wait
// for its issue step (PDF + email), pay it in full, wait for the receipt
// (PDF + email). It reports lifecycles per second and per-lifecycle latency.
func (l *loader) lifecycles(ctx context.Context, n, conc int) error {
	db := l.db
	cl, err := l.newClient(ctx, 0)
	if err != nil {
		return err
	}
	// Progress is read from Postgres (the emails billflow recorded as sent),
	// not by querying workflows, so measuring adds little load.
	waitFor := func(id, kind string) error {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			var sent bool
			if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM emails WHERE invoice_id=$1 AND kind=$2 AND status='sent')`, id, kind).Scan(&sent); err == nil && sent {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("invoice %s: no %s email after 2 minutes", id, kind)
	}
	st := &stats{}
	var firstErr atomic.Value
	work := make(chan int)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				s := time.Now()
				err := func() error {
					id, err := l.newInvoice(ctx, cl, time.Now().AddDate(0, 0, 14), false)
					if err != nil {
						return err
					}
					if err := waitFor(id, "invoice_issued"); err != nil {
						return err
					}
					out, code, err := l.call(ctx, "POST", "/v1/invoices/"+id+"/payments", map[string]any{"amount": 12000, "payment_method": "pm_card_visa"})
					if err != nil || code != 200 {
						return fmt.Errorf("pay: %d %v %v", code, err, out)
					}
					return waitFor(id, "payment_received")
				}()
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
				}
				st.add(time.Since(s), err == nil)
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	el := time.Since(t0).Seconds()
	fmt.Printf("lifecycles (open → invoice PDF + email → pay in full → receipt PDF + email), %d at a time: %d in %.1fs = %.1f lifecycles/s; each p50 %s, p99 %s; %d errors\n",
		conc, len(st.lat), el, float64(len(st.lat))/el, ms(st.pct(.5)), ms(st.pct(.99)), st.errs)
	if e := firstErr.Load(); e != nil {
		fmt.Println("  first error:", e)
	}
	return nil
}

// scale opens n invoices due today, then runs reminder-run over them while
// sampling read latency, and reports the run's duration and peak memory.
func (l *loader) scale(ctx context.Context, n, conc int, pids string) error {
	start := time.Now()
	due := time.Now().UTC()
	var made atomic.Int64
	ids := make([]string, n)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	clients := max(1, n/10)
	clientIDs := make([]string, clients)
	for i := range clientIDs {
		id, err := l.newClient(ctx, i)
		if err != nil {
			return err
		}
		clientIDs[i] = id
	}
	work := make(chan int)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id, err := l.newInvoice(ctx, clientIDs[i%clients], due, false)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ids[i] = id
				if c := made.Add(1); c%1000 == 0 {
					fmt.Printf("  %d invoices opened (%.0f/s)\n", c, float64(c)/time.Since(start).Seconds())
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		fmt.Println("  first error:", e)
	}
	opened := time.Since(start)
	fmt.Printf("opened %d invoices (each an invoice workflow: PDF, email) in %s: %.1f lifecycles started/s\n", made.Load(), opened.Round(time.Second), float64(made.Load())/opened.Seconds())

	db := l.db
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == "" })
	// The issue step (PDF + email) of each invoice runs behind the API's
	// answer; wait for all of them so the reminder run is measured alone.
	for ctx.Err() == nil {
		var issued int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM emails WHERE kind='invoice_issued' AND status='sent' AND invoice_id = ANY($1)`, ids).Scan(&issued); err != nil {
			return err
		}
		if issued >= len(ids) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	all := time.Since(start)
	fmt.Printf("all %d invoices issued (PDF rendered, email sent) after %s: %.1f issued/s\n", len(ids), all.Round(time.Second), float64(len(ids))/all.Seconds())
	return l.remindRun(ctx, db, ids, due, pids)
}

// remind runs reminder-run over the open invoices due today that have no
// reminder yet (e.g. those a scale run opened).
func (l *loader) remind(ctx context.Context, pids string) error {
	db := l.db
	due := time.Now().UTC()
	rows, err := db.Query(ctx, `SELECT id FROM invoices i WHERE amount_due > 0 AND status IN ('open','partially_paid') AND due_date = $1::date
		AND NOT EXISTS (SELECT 1 FROM reminders_sent r WHERE r.invoice_id = i.id) ORDER BY id`, due.Format(time.DateOnly))
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return fmt.Errorf("no open invoices due today without a reminder; run scale first")
	}
	return l.remindRun(ctx, db, ids, due, pids)
}

// remindRun starts the reminder run over ids (all due today), samples API
// reads meanwhile, waits until every invoice's reminder is recorded, and
// reports the time, the read latency and the processes' peak memory.
func (l *loader) remindRun(ctx context.Context, db *pgxpool.Pool, ids []string, due time.Time, pids string) error {
	n := len(ids)
	tc, err := l.temporal(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()

	// Read latency while the run goes.
	reads := &stats{}
	stopReads := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopReads:
				return
			case <-t.C:
			}
			id := ids[i%len(ids)]
			if id == "" {
				continue
			}
			t0 := time.Now()
			_, code, err := l.call(ctx, "GET", "/v1/invoices/"+id, nil)
			reads.add(time.Since(t0), err == nil && code == 200)
		}
	}()
	runStart := time.Now()
	wr, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reminder-run-load-" + strconv.FormatInt(time.Now().Unix(), 10),
		TaskQueue: contract.TaskQueue}, workflows.ReminderRunWorkflow,
		// The day after: no reminder goes out on an invoice's issue day, and
		// these were issued today; the due-date step is still the one due.
		&contract.ReminderRunInput{Today: due.AddDate(0, 0, 1)})
	if err != nil {
		return err
	}
	var res contract.ReminderRunResult
	if err := wr.Get(ctx, &res); err != nil {
		return err
	}
	signalled := time.Since(runStart)
	fmt.Printf("reminder-run signalled %d invoice workflows in %s\n", res.Signalled, signalled.Round(time.Millisecond))
	// Wait for the reminders themselves (one email each) to be recorded.
	for ctx.Err() == nil {
		var done int
		if err := db.QueryRow(ctx, `SELECT count(DISTINCT invoice_id) FROM reminders_sent WHERE invoice_id = ANY($1)`, ids).Scan(&done); err != nil {
			return err
		}
		if done >= n {
			break
		}
		if time.Since(runStart) > 30*time.Minute {
			fmt.Printf("  gave up after 30 minutes with %d of %d reminders recorded\n", done, n)
			break
		}
		time.Sleep(time.Second)
	}
	close(stopReads)
	rwg.Wait()
	fmt.Printf("reminder-run over %d invoices: signalled in %s, last reminder recorded after %s\n", n, signalled.Round(time.Millisecond), time.Since(runStart).Round(time.Second))
	fmt.Printf("API GET /v1/invoices/{id} during the run: %d requests, p50 %s, p99 %s, %d errors\n", len(reads.lat), ms(reads.pct(.5)), ms(reads.pct(.99)), reads.errs)
	for _, p := range strings.Split(pids, ",") {
		if id, err := strconv.Atoi(strings.TrimSpace(p)); err == nil && id > 0 {
			fmt.Printf("peak memory (VmHWM) of pid %d (%s): %s, now (VmRSS) %s\n", id, procName(id), vmHWM(id, "VmHWM"), vmHWM(id, "VmRSS"))
		}
	}
	return nil
}

// procName is the process's command line, for the report.
func procName(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
}

// vmHWM reads one memory field (VmHWM: peak resident; VmRSS: now) of a process.
func vmHWM(pid int, field string) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, field+":") {
			return strings.TrimSpace(strings.TrimPrefix(line, field+":"))
		}
	}
	return "unknown"
}

// devKey is the dev stack's payload key.
func devKey() []byte {
	k, _ := hex.DecodeString(devkeys.EncryptionKeyHex)
	return k
}

// reads holds each rate for a while with an open-loop generator.
func (l *loader) reads(ctx context.Context, rates string, d time.Duration) error {
	db := l.db
	cl, err := l.newClient(ctx, 0)
	if err != nil {
		return err
	}
	inv, err := l.newInvoice(ctx, cl, time.Now().AddDate(0, 0, 14), false)
	if err != nil {
		return err
	}
	// The new invoice's issue step (on a fresh stack, the browser's first
	// start) would otherwise run during the first measurement.
	if err := waitEmails(ctx, db, []string{inv}, "invoice_issued", 1); err != nil {
		return err
	}
	routes := []struct{ name, path string }{
		{"GET /v1/invoices/{id}", "/v1/invoices/" + inv},
		{"GET /v1/clients/{id}", "/v1/clients/" + cl},
		{"GET /v1/clients/{id}/billing", "/v1/clients/" + cl + "/billing"},
	}
	// measure sends GETs to path at rate per second for d, open loop: a slow
	// response does not hold back the next request.
	measure := func(path string, rate int, d time.Duration) (*stats, float64) {
		st := &stats{}
		var wg sync.WaitGroup
		interval := time.Second / time.Duration(rate)
		t0 := time.Now()
		next := t0
		for time.Since(t0) < d && ctx.Err() == nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := time.Now()
				_, code, err := l.call(ctx, "GET", path, nil)
				st.add(time.Since(s), err == nil && code == 200)
			}()
			next = next.Add(interval)
			time.Sleep(time.Until(next))
		}
		wg.Wait()
		return st, time.Since(t0).Seconds()
	}
	fmt.Printf("%-32s %8s %10s %10s %10s %7s\n", "route", "rate", "achieved", "p50", "p99", "errors")
	for i, rs := range strings.Split(rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(rs))
		if err != nil || rate <= 0 {
			return fmt.Errorf("bad rate %q", rs)
		}
		if i == 0 {
			// Two unrecorded seconds open the connections the rate needs.
			for _, route := range routes {
				measure(route.path, rate, 2*time.Second/time.Duration(len(routes)))
			}
		}
		for _, route := range routes {
			st, el := measure(route.path, rate, d)
			fmt.Printf("%-32s %8d %10.0f %10s %10s %7d\n", route.name, rate, float64(len(st.lat))/el, ms(st.pct(.5)), ms(st.pct(.99)), st.errs)
		}
	}
	return nil
}

// pay opens count invoices, waits until they are issued, then pays them with
// payers concurrent payers (closed loop: each pays, then takes the next).
// The payers start ramp/payers apart, as people do, rather than in one
// synchronized wave; -ramp 0 starts them all at once.
func (l *loader) pay(ctx context.Context, payers, count, conc int, partial bool, settle, ramp time.Duration) error {
	db := l.db
	cl, err := l.newClient(ctx, 0)
	if err != nil {
		return err
	}
	ids := make([]string, count)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	next := atomic.Int64{}
	t0 := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < count && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				id, err := l.newInvoice(ctx, cl, time.Now().AddDate(0, 0, 14), partial)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	// Let the new invoices' issue step (PDF + email) finish first, so the
	// numbers are about paying, not rendering: wait until billflow has
	// recorded every invoice email as sent, then a little longer for the
	// workflow tasks that follow.
	fmt.Printf("opened %d invoices in %.1fs; waiting for their PDFs and emails\n", count, time.Since(t0).Seconds())
	if err := waitEmails(ctx, db, ids, "invoice_issued", count); err != nil {
		return err
	}
	fmt.Printf("all issued after %.1fs\n", time.Since(t0).Seconds())
	time.Sleep(settle)
	amount, kind := 12000, "full payments, each with a receipt PDF"
	if partial {
		amount, kind = 6000, "half payments, each with a payment-received email"
	}
	st, first := &stats{}, &stats{}
	work := make(chan string)
	t0 = time.Now()
	for p := 0; p < payers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(ramp * time.Duration(p) / time.Duration(payers))
			n := 0
			for id := range work {
				s := time.Now()
				out, code, err := l.call(ctx, "POST", "/v1/invoices/"+id+"/payments", map[string]any{"amount": amount, "payment_method": "pm_card_visa"})
				if err != nil || code != 200 {
					firstErr.CompareAndSwap(nil, fmt.Errorf("pay %s: %d %v %v", id, code, err, out))
				}
				d, ok := time.Since(s), err == nil && code == 200
				st.add(d, ok)
				if n++; n == 1 {
					first.add(d, ok)
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	el := time.Since(t0).Seconds()
	fmt.Printf("POST /v1/invoices/{id}/payments with %d concurrent payers (started over %s), %s: %d paid in %.1fs (%.1f payments/s), p50 %s, p95 %s, p99 %s, max %s, %d errors\n",
		payers, ramp, kind, len(st.lat), el, float64(len(st.lat))/el, ms(st.pct(.5)), ms(st.pct(.95)), ms(st.pct(.99)), ms(st.pct(1)), st.errs)
	fmt.Printf("  each payer's first payment: p50 %s, max %s\n", ms(first.pct(.5)), ms(first.pct(1)))
	if e := firstErr.Load(); e != nil {
		fmt.Println("  first error:", e)
	}
	// The receipts (or payment emails) are made after each payment's
	// response; wait for them, so the next measurement starts on an idle
	// stack and the time the backlog took is on record.
	if err := waitEmails(ctx, db, ids, "payment_received", len(st.lat)); err != nil {
		return err
	}
	what := "payment emails"
	if !partial {
		what = "receipt PDFs and emails"
	}
	fmt.Printf("  all %d %s sent %.1fs after the first payment\n", len(st.lat), what, time.Since(t0).Seconds())
	return nil
}

// waitEmails waits until billflow has recorded want emails of kind as sent
// for the invoices ids, allowing two minutes plus 100 ms per invoice.
func waitEmails(ctx context.Context, db *pgxpool.Pool, ids []string, kind string, want int) error {
	start := time.Now()
	deadline := start.Add(2*time.Minute + time.Duration(len(ids))*100*time.Millisecond)
	for {
		var sent int
		err := db.QueryRow(ctx, `SELECT count(*) FROM emails WHERE invoice_id = ANY($1) AND kind = $2 AND status = 'sent'`, ids, kind).Scan(&sent)
		if err != nil {
			return err
		}
		if sent >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d %s emails sent after %s", sent, want, kind, time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
