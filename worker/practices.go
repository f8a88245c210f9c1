package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/tenancy"
)

// PracticePoll is how often a worker looks for practices made since it
// started: a new practice's namespace is polled within about this long.
const PracticePoll = 2 * time.Second

// Practices runs the workers of every practice's namespace in one process,
// beside the shared namespace's: each namespace gets its own task-queue
// workers (its client carries the practice's data keys) and its own
// reminder, statement and reconcile Schedules on the practice's clock, whose
// runs see only that practice's rows. New practices are picked up by polling
// the practices table.
type Practices struct {
	tenants *tenancy.Clients
	acts    *activities.Activities
	o       Options
	pay     *payments
	logger  *slog.Logger

	mu      sync.Mutex
	running map[string]Workers
	failed  map[string]string // namespace → last error, logged once
	stopped bool
}

// NewPractices prepares (but does not start) the practice namespaces' workers.
func NewPractices(tenants *tenancy.Clients, acts *activities.Activities, o Options) *Practices {
	logger := acts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Practices{tenants: tenants, acts: acts, o: o, pay: newPayments(), logger: logger,
		running: map[string]Workers{}, failed: map[string]string{}}
}

// Run syncs every PracticePoll until ctx ends.
func (p *Practices) Run(ctx context.Context) {
	t := time.NewTicker(PracticePoll)
	defer t.Stop()
	for {
		if err := p.Sync(ctx); err != nil && ctx.Err() == nil {
			p.logger.Warn("practice namespaces", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync starts the workers and Schedules of every practice namespace not yet
// running. A namespace that fails (its registration was cut short) is
// retried on the next sync.
func (p *Practices) Sync(ctx context.Context) error {
	list, err := p.tenants.Store.PracticeNamespaces(ctx)
	if err != nil {
		return err
	}
	for _, pn := range list {
		p.mu.Lock()
		_, ok := p.running[pn.Namespace]
		p.mu.Unlock()
		if ok {
			continue
		}
		if err := p.start(ctx, pn.Namespace, pn.Timezone); err != nil {
			p.mu.Lock()
			if p.failed[pn.Namespace] != err.Error() {
				p.failed[pn.Namespace] = err.Error()
				p.logger.Warn("practice namespace not started; retrying", "namespace", pn.Namespace, "error", err)
			}
			p.mu.Unlock()
			continue
		}
		p.logger.Info("practice namespace started", "namespace", pn.Namespace, "practice_id", pn.PracticeID)
	}
	return nil
}

func (p *Practices) start(ctx context.Context, namespace, tz string) error {
	tc, err := p.tenants.ForNamespace(namespace)
	if err != nil {
		return err
	}
	ws, err := newWorkers(tc, p.acts, p.o, p.pay)
	if err != nil {
		return err
	}
	if err := ws.Start(); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	so := p.o.Schedules
	so.TimeZone = tz
	if err := EnsureSchedules(ctx, tc, so); err != nil {
		ws.Stop()
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		// Stop came while this namespace was starting.
		go ws.Stop()
		return nil
	}
	p.running[namespace] = ws
	delete(p.failed, namespace)
	return nil
}

// Namespaces lists the practice namespaces being worked.
func (p *Practices) Namespaces() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.running))
	for ns := range p.running {
		out = append(out, ns)
	}
	return out
}

// Stop stops every practice namespace's workers.
func (p *Practices) Stop() {
	p.mu.Lock()
	running := p.running
	p.running, p.stopped = map[string]Workers{}, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, ws := range running {
		wg.Add(1)
		go func() { defer wg.Done(); ws.Stop() }()
	}
	wg.Wait()
}
