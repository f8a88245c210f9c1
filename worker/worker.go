// Package worker wires billflow's workflows and activities onto the billing
// task queue and runs until its context ends.
package worker

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/workflows"
)

// Options tune the worker; zero values take the SDK's defaults.
type Options struct {
	MaxConcurrentActivities int
	MaxConcurrentWorkflows  int
	Schedules               ScheduleOptions
}

// New registers every workflow and the one Activities value.
func New(c client.Client, acts *activities.Activities, o Options) sdkworker.Worker {
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     o.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: o.MaxConcurrentWorkflows,
		// More pollers than the SDK's default 2: a payment is an Update, a
		// workflow task and an activity task, and payers should not queue
		// behind each other's polls.
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 8,
	})
	Register(w, acts)
	return w
}

// Register puts the workflows and activities on any registry (a worker, a replayer, a test env).
func Register(r interface {
	RegisterWorkflow(any)
	RegisterActivity(any)
}, acts *activities.Activities) {
	r.RegisterWorkflow(workflows.InvoiceWorkflow)
	r.RegisterWorkflow(workflows.ReminderRunWorkflow)
	r.RegisterWorkflow(workflows.BalancePaymentWorkflow)
	r.RegisterWorkflow(workflows.RefundAfterCloseWorkflow)
	r.RegisterWorkflow(workflows.StatementRunWorkflow)
	r.RegisterWorkflow(workflows.DocumentWorkflow)
	r.RegisterActivity(acts)
}

// Run starts the worker and stops it gracefully when ctx ends.
func Run(ctx context.Context, c client.Client, acts *activities.Activities, o Options) error {
	w := New(c, acts, o)
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
	<-ctx.Done()
	w.Stop()
	return nil
}
