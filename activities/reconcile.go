package activities

import (
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/invoicestart"

	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/store"
)

// How long an attempt is left to its own charge activity or webhook before
// the reconciler asks the processor: a charge with no answer past the charge
// activity's start-to-close limit (2 minutes), a bank debit or 3-D Secure
// payment with no webhook for a while.
const (
	SettleChargingAfter = contract.SettleChargingAfter
	SettlePendingAfter  = 10 * time.Minute
)

// ReconcileInput asks the reconciler to settle one attempt (AttemptID), or
// a page of every attempt left unsettled too long.
type ReconcileInput = contract.ReconcileInput

// SettledPayment is one attempt the reconciler recorded an answer for, so
// its workflow can tell the invoices.
type SettledPayment struct {
	AttemptID   string
	Status      contract.PaymentStatus
	IntentID    string
	MethodLabel string
	// NewPayments: the reconciler recorded these payments itself (the
	// charge's own activity never did); otherwise their status moved.
	NewPayments bool
	Allocations []Allocation
}

// ReconcileResult is one page.
type ReconcileResult struct {
	Checked int
	Errors  int
	Settled []SettledPayment
	More    bool
}

// ReconcilePayments is the janitor: it asks the processor about attempts
// whose outcome billflow has not recorded (a charge that timed out or whose
// worker died, a bank debit or 3-D Secure payment whose webhook never came)
// and records what it says. It never charges.
func (a *Activities) ReconcilePayments(ctx context.Context, in *ReconcileInput) (*ReconcileResult, error) {
	var list []*store.PaymentAttempt
	limit := in.Limit
	if limit <= 0 {
		limit = 100
	}
	if in.AttemptID != "" {
		att, err := a.Store.GetPaymentAttempt(ctx, in.AttemptID)
		if err != nil {
			return nil, err
		}
		list = append(list, att)
	} else {
		now := a.now()
		var err error
		if list, err = a.Store.UnsettledAttempts(ctx, a.scope(ctx), now.Add(-SettleChargingAfter), now.Add(-SettlePendingAfter), limit); err != nil {
			return nil, err
		}
	}
	out := &ReconcileResult{More: in.AttemptID == "" && len(list) == limit}
	for _, att := range list {
		out.Checked++
		s, err := a.settle(ctx, att)
		if err != nil {
			out.Errors++
			a.log().Warn("reconcile payment", "attempt_id", att.ID, "error", err)
			continue
		}
		if s != nil {
			out.Settled = append(out.Settled, *s)
		}
	}
	return out, nil
}

// settle asks the processor about one attempt and records its answer.
func (a *Activities) settle(ctx context.Context, att *store.PaymentAttempt) (*SettledPayment, error) {
	if att.Settled() && att.Status != string(contract.PaymentProcessing) && att.Status != string(contract.PaymentRequiresAction) {
		return nil, nil
	}
	if att.Status == store.AttemptNew {
		return nil, nil // nothing was sent
	}
	res, err := a.lookupCharge(ctx, att)
	if err != nil {
		return nil, gatewayErr("look up charge", err)
	}
	if res == nil {
		if att.Status == store.AttemptCharging && a.now().Sub(att.UpdatedAt) > chargeGiveUp {
			// Past every retry of its charge and unknown to the processor.
			return nil, a.Store.FailAttempt(ctx, att.ID, "not_charged", "the charge never reached the processor", false)
		}
		return nil, a.Store.TouchAttempt(ctx, att.ID)
	}
	if string(res.Status) == att.Status {
		return nil, a.Store.TouchAttempt(ctx, att.ID)
	}
	fresh := att.Status == store.AttemptCharging
	rec, _, err := a.Store.RecordCharge(ctx, att.ID, outcomeOf(res))
	if err != nil {
		return nil, err
	}
	a.log().Info("payment reconciled", "attempt_id", rec.ID, "was", att.Status, "status", rec.Status, "amount", rec.Amount)
	if fresh && rec.Status == string(contract.PaymentFailed) {
		return nil, nil // a decline nobody had recorded: nothing to tell
	}
	allocs := rec.Allocations
	if rec.Kind == "invoice" {
		allocs = []Allocation{{InvoiceID: rec.InvoiceID, PaymentID: rec.ID, Amount: rec.Amount}}
	}
	return &SettledPayment{AttemptID: rec.ID, Status: contract.PaymentStatus(rec.Status), IntentID: rec.ProcessorIntentID,
		MethodLabel: MethodLabel(rec.MethodType, rec.Brand, rec.Last4, rec.BankName), NewPayments: fresh, Allocations: allocs}, nil
}

// StartInvoicesAfter is how old an invoice with no confirmed workflow start
// is before the reconciler starts its workflow: longer than any create
// request runs (the API's idempotency lock is 2 minutes), so a start still
// in flight is left to its request.
const StartInvoicesAfter = 2 * time.Minute

// StartInvoicesInput asks for one page of invoices to start.
type StartInvoicesInput struct {
	Limit int // page size; default 100
}

// StartInvoicesResult counts one page of invoice workflow starts.
type StartInvoicesResult struct {
	Checked int
	Started int
	Errors  int
	More    bool
}

// StartUnstartedInvoices starts the workflows of invoices whose API process
// died (or whose Temporal call failed) between writing the row and starting
// the workflow, and whose client never retried: without it such an invoice
// would never be emailed, reminded or paid through its workflow. The start
// is the API's own (a no-op for a workflow that runs), and marks the invoice.
func (a *Activities) StartUnstartedInvoices(ctx context.Context, in *StartInvoicesInput) (*StartInvoicesResult, error) {
	limit := in.Limit
	if limit <= 0 {
		limit = 100
	}
	tc, err := a.temporal(ctx)
	if err != nil {
		return nil, fmt.Errorf("start invoices: %w", err)
	}
	list, err := a.Store.UnstartedInvoices(ctx, a.scope(ctx), a.now().Add(-StartInvoicesAfter), limit)
	if err != nil {
		return nil, err
	}
	out := &StartInvoicesResult{Checked: len(list), More: len(list) == limit}
	for _, inv := range list {
		if err := a.startInvoice(ctx, tc, inv); err != nil {
			out.Errors++
			a.log().Warn("start invoice workflow", "invoice_id", inv.ID, "error", err)
			continue
		}
		out.Started++
		a.log().Info("invoice workflow started by the reconciler", "invoice_id", inv.ID)
	}
	// Failed starts are left on the list for the next run, every 2 minutes.
	return out, nil
}

func (a *Activities) startInvoice(ctx context.Context, tc client.Client, inv *store.Invoice) error {
	practice, err := a.Store.GetPractice(ctx, inv.PracticeID)
	if err != nil {
		return err
	}
	cl, err := a.Store.GetClient(ctx, inv.PracticeID, inv.ClientID)
	if err != nil {
		return err
	}
	opts, in := invoicestart.Build(practice, cl, inv)
	_, err = tc.ExecuteWorkflow(ctx, opts, invoicestart.WorkflowType, in)
	var ended *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &ended) { // ended: it ran already, and is not run again
		return err
	}
	return a.Store.MarkInvoiceWorkflowStarted(ctx, inv.ID)
}
