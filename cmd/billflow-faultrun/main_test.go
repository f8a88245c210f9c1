package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// The fault run at a size `make test` affords, on the production topology
// (Temporal's server binary on Postgres, two workers, two API replicas): 40
// invoices from 8 payers while workers are SIGKILLed, Postgres and the
// Temporal server restart once and Stripe fails requests, with every attack
// of issue 20. `make faultrun` runs it larger.
func TestFaultRunLosesNoMoney(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postgres, the Temporal server and four billflow processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := Run(ctx, Options{Invoices: 40, Payers: 8, KillEvery: 5 * time.Second,
		StripeFaultEvery: 1500 * time.Millisecond, ChaosFor: 75 * time.Second, RestartPostgres: true,
		Cluster: true, RestartTemporal: true, Settle: 3 * time.Minute, Log: os.Stderr})
	if rep != nil {
		rep.Print(&log)
		t.Log(log.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	// The run must have been a fault run: faults were injected while
	// charges were in flight, and money moved.
	if rep.WorkerKills == 0 || rep.PostgresRestarts != 1 || rep.TemporalRestarts != 1 || rep.StripeTimeouts == 0 {
		t.Errorf("faults not injected: %+v", rep)
	}
	if rep.IntentsSucceeded < 30 || rep.CentsCaptured == 0 || rep.RefundsAtStripe < 4 {
		t.Errorf("too little money moved to prove anything: %+v", rep)
	}
}
