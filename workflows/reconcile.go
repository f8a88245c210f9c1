package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
)

// StartInvoicesAfter is how old an invoice with no confirmed workflow start
// is before the reconciler starts its workflow.
const StartInvoicesAfter = activities.StartInvoicesAfter

// maxReconcilePages bounds one run; the next run goes on where it stopped.
const maxReconcilePages = 20

// ReconcileWorkflow asks the processor about payments whose outcome billflow
// has not recorded, records them, and tells their invoices' workflows: a
// charge recorded here is new to its invoice (a receipt or payment email
// follows); a status that moved is a payment event. It never charges. A
// full run (no AttemptID) first starts the workflows of invoices whose
// creating request wrote the row but never got the start through.
func ReconcileWorkflow(ctx workflow.Context, in *contract.ReconcileInput) (*contract.ReconcileResult, error) {
	if in == nil {
		in = &contract.ReconcileInput{}
	}
	out := &contract.ReconcileResult{}
	if in.AttemptID == "" && workflow.GetVersion(ctx, "start-unstarted-invoices", workflow.DefaultVersion, 1) == 1 {
		startUnstartedInvoices(ctx, in, out)
	}
	for page := 0; page < maxReconcilePages; page++ {
		actx := reconcileOptions(ctx, fmt.Sprintf("Ask the processor about unsettled payments, page %d", page+1), 10)
		var res activities.ReconcileResult
		if err := workflow.ExecuteActivity(actx, acts.ReconcilePayments, in).Get(ctx, &res); err != nil {
			return out, err
		}
		out.Checked += res.Checked
		out.Errors += res.Errors
		out.Settled += len(res.Settled)
		for _, s := range res.Settled {
			tellInvoices(ctx, &s)
		}
		if !res.More {
			break
		}
	}
	return out, nil
}

// startUnstartedInvoices starts the workflows of invoices left without one.
// A failure is logged and counted, not returned: payments are still
// reconciled, and the next run (2 minutes later) tries the invoices again.
func startUnstartedInvoices(ctx workflow.Context, in *contract.ReconcileInput, out *contract.ReconcileResult) {
	for page := 0; page < maxReconcilePages; page++ {
		actx := reconcileOptions(ctx, fmt.Sprintf("Start invoice workflows their requests never started, page %d", page+1), 5)
		var res activities.StartInvoicesResult
		if err := workflow.ExecuteActivity(actx, acts.StartUnstartedInvoices, &activities.StartInvoicesInput{Limit: in.Limit}).Get(ctx, &res); err != nil {
			out.Errors++
			workflow.GetLogger(ctx).Warn("start unstarted invoices", "error", err)
			return
		}
		out.Errors += res.Errors
		out.InvoicesStarted += res.Started
		if !res.More || res.Started == 0 {
			return // a page of failures would come back the same: leave it to the next run
		}
	}
}

// tellInvoices signals each invoice a settled attempt paid.
func tellInvoices(ctx workflow.Context, s *activities.SettledPayment) {
	for _, al := range s.Allocations {
		var sig any = &contract.PaymentEvent{Type: "reconciled", IntentID: s.IntentID, PaymentID: al.PaymentID}
		name := contract.PaymentEventSignal
		if s.NewPayments {
			name = contract.PaymentAppliedSignal
			sig = &contract.PaymentApplied{PaymentID: al.PaymentID, IntentID: s.IntentID, Amount: al.Amount, Status: s.Status,
				MethodLabel: s.MethodLabel, Notify: true}
		}
		if err := workflow.SignalExternalWorkflow(ctx, contract.InvoiceWorkflowID(al.InvoiceID), "", name, sig).Get(ctx, nil); err != nil {
			// The invoice's workflow has ended: the payment is recorded in Postgres all the same.
			workflow.GetLogger(ctx).Warn("could not tell invoice workflow", "invoice", al.InvoiceID, "error", err)
		}
	}
}
