// Command billflow-faultrun proves that faults lose no money: it runs the
// production binary (`billflow api` twice, `billflow worker` twice, as their
// own processes) against a local Postgres, an embedded Temporal server, the
// Stripe sandbox and an SMTP catcher, pays invoices from concurrent payers
// while it SIGKILLs workers mid-charge, restarts Postgres and makes Stripe
// time out after committing, and tries the attacks of issue 20 (NUL and
// oversized names, void during 3-D Secure, concurrent refunds of one shared
// PaymentIntent). Then it counts every charge at the sandbox against the
// ledger: every captured cent recorded once, nothing charged twice, every
// email sent once. It is a development tool; only loopback is used.
//
//	billflow-faultrun -invoices 200 -payers 16
//
// It exits 1 with the list of violations when the books do not balance.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var o Options
	flag.IntVar(&o.Invoices, "invoices", 120, "invoices to pay under faults")
	flag.IntVar(&o.Payers, "payers", 12, "concurrent payers")
	flag.DurationVar(&o.KillEvery, "kill-every", 6*time.Second, "SIGKILL one worker (waiting for a charge in flight) this often while payers run")
	flag.DurationVar(&o.ChaosFor, "chaos-for", 2*time.Minute, "stop the faults after this long; the remaining invoices are paid on a healthy stack (0: faults while payers run)")
	flag.DurationVar(&o.StripeFaultEvery, "stripe-fault-every", 1500*time.Millisecond, "make one Stripe request fail (a 500, or a timeout after Stripe committed) this often")
	flag.BoolVar(&o.RestartPostgres, "restart-postgres", true, "restart Postgres once while payers run")
	flag.BoolVar(&o.Cluster, "cluster", true, "run Temporal's own server binary with Postgres persistence and visibility (false: the embedded SQLite server of make dev)")
	flag.BoolVar(&o.RestartTemporal, "restart-temporal", true, "with -cluster: SIGKILL and restart the Temporal server once while payers run")
	flag.StringVar(&o.TemporalServer, "temporal-server", "", "with -cluster: Temporal's server binary (default: build go.temporal.io/server/cmd/server)")
	flag.StringVar(&o.SQLTool, "temporal-sql-tool", "", "with -cluster: Temporal's SQL schema tool (default: build go.temporal.io/server/cmd/tools/sql)")
	flag.StringVar(&o.Binary, "billflow", "", "the billflow binary (default: build ./cmd/billflow)")
	flag.StringVar(&o.Dir, "dir", "", "working directory for Postgres, logs and the binary (default: a new temporary one, removed after a clean run)")
	flag.DurationVar(&o.Settle, "settle", 3*time.Minute, "how long to wait, after the faults stop, for every payment, refund and email to be recorded")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Log = os.Stderr
	rep, err := Run(ctx, o)
	if rep != nil {
		rep.Print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "billflow-faultrun:", err)
		os.Exit(1)
	}
}
