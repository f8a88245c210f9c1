// Package worker wires billflow's workflows and activities onto the billing
// task queue and runs until its context ends.
package worker

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/tenancy"
	"github.com/billflow/billflow/workflows"
)

// Options tune the worker; zero values take the SDK's defaults.
type Options struct {
	MaxConcurrentActivities int
	MaxConcurrentWorkflows  int
	// DocumentSlots is how many PDF activities run at once on
	// contract.DocumentsTaskQueue; default: the renderer's tabs plus two
	// (one printing while the next loads its data), or 4 without a renderer.
	// While the process charges a payer, documents get one slot at a time
	// (documentSlots), emails too: they run on the same queue.
	DocumentSlots int
	Schedules     ScheduleOptions
}

// StopTimeout is how long a stopping worker waits for running activities.
const StopTimeout = 45 * time.Second

// defaultSlots is the SDK's own default for the slot kinds billflow leaves
// alone (1,000 workflow tasks or local activities at once).
const defaultSlots = 1000

// Workers are the task-queue workers of one process: TaskQueue (workflows,
// charges, reminders) and DocumentsTaskQueue (PDF activities).
type Workers []sdkworker.Worker

// Start starts them all, or none.
func (ws Workers) Start() error {
	for i, w := range ws {
		if err := w.Start(); err != nil {
			for _, started := range ws[:i] {
				started.Stop()
			}
			return err
		}
	}
	return nil
}

// Stop stops them, waiting for running activities per the SDK's rules.
func (ws Workers) Stop() {
	for _, w := range ws {
		w.Stop()
	}
}

// New registers every workflow and the one Activities value on the billing
// task queue, and the same activities on the documents queue.
func New(c client.Client, acts *activities.Activities, o Options) (Workers, error) {
	return newWorkers(c, acts, o, newPayments())
}

// newWorkers is New with the process's payment tracker, which every
// namespace's workers share: a charge in any practice's namespace slows
// document work in all of them.
func newWorkers(c client.Client, acts *activities.Activities, o Options, pay *payments) (Workers, error) {
	w := sdkworker.New(c, contract.TaskQueue, sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     o.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: o.MaxConcurrentWorkflows,
		// More pollers than the SDK's default 2: a payment is an Update, a
		// workflow task and an activity task, and payers should not queue
		// behind each other's polls.
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 8,
		Interceptors:                     []interceptor.WorkerInterceptor{&paymentsInterceptor{p: pay}},
		// On SIGTERM a charge in flight gets to finish and record its
		// answer (a charge attempt is bounded at 2 minutes; most take
		// well under a second) instead of leaving it to the reconciler.
		WorkerStopTimeout: StopTimeout,
	})
	Register(w, acts)
	slots := o.DocumentSlots
	if slots <= 0 {
		slots = 4
		if acts.Renderer != nil {
			slots = acts.Renderer.Tabs() + 2
		}
	}
	tuner, err := documentsTuner(slots, pay)
	if err != nil {
		return nil, err
	}
	docs := sdkworker.New(c, contract.DocumentsTaskQueue, sdkworker.Options{
		Tuner:                            tuner,
		MaxConcurrentActivityTaskPollers: 2,
	})
	docs.RegisterActivity(acts)
	return Workers{w, docs}, nil
}

// documentsTuner gives the documents worker one activity slot at a time
// while this process charges a payer, and all of them otherwise
// (documentSlots); other kinds of slot keep the SDK's default.
func documentsTuner(slots int, pay *payments) (sdkworker.WorkerTuner, error) {
	opts := sdkworker.CompositeTunerOptions{ActivitySlotSupplier: newDocumentSlots(slots, pay)}
	for _, s := range []*sdkworker.SlotSupplier{&opts.WorkflowSlotSupplier, &opts.LocalActivitySlotSupplier,
		&opts.NexusSlotSupplier, &opts.SessionActivitySlotSupplier} {
		var err error
		if *s, err = sdkworker.NewFixedSizeSlotSupplier(defaultSlots); err != nil {
			return nil, err
		}
	}
	return sdkworker.NewCompositeTuner(opts)
}

// Workflows maps each contract workflow type name to the function the
// worker runs for it. Clients start workflows by these names (the API does
// not link this code); TestWorkflowsMatchContract ties the two together.
var Workflows = map[string]any{
	contract.InvoiceWorkflowType:          workflows.InvoiceWorkflow,
	contract.ReminderRunWorkflowType:      workflows.ReminderRunWorkflow,
	contract.BalancePaymentWorkflowType:   workflows.BalancePaymentWorkflow,
	contract.RefundAfterCloseWorkflowType: workflows.RefundAfterCloseWorkflow,
	contract.StatementRunWorkflowType:     workflows.StatementRunWorkflow,
	contract.DocumentWorkflowType:         workflows.DocumentWorkflow,
	contract.ReconcileWorkflowType:        workflows.ReconcileWorkflow,
}

// Register puts the workflows, under their contract type names, and the
// activities on any registry (a worker, a replayer, a test env).
func Register(r interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
	RegisterActivity(any)
}, acts *activities.Activities) {
	for _, name := range contract.WorkflowTypes {
		r.RegisterWorkflowWithOptions(Workflows[name], workflow.RegisterOptions{Name: name})
	}
	r.RegisterActivity(acts)
}

// Run starts the worker and stops it gracefully when ctx ends. With
// tenants, it also works every practice's namespace (Practices).
func Run(ctx context.Context, c client.Client, acts *activities.Activities, o Options, tenants *tenancy.Clients) error {
	pay := newPayments()
	w, err := newWorkers(c, acts, o, pay)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	if err := EnsureSchedules(ctx, c, o.Schedules); err != nil {
		if acts.Logger != nil {
			acts.Logger.Error("ensure schedules", "error", err)
		}
		w.Stop()
		return err
	}
	var pr *Practices
	if tenants != nil {
		pr = NewPractices(tenants, acts, o)
		pr.pay = pay
		go pr.Run(ctx)
	}
	<-ctx.Done()
	if pr != nil {
		pr.Stop()
	}
	w.Stop()
	return nil
}
