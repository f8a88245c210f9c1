package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
)

// BalancePaymentWorkflow charges once, applies the money oldest invoice first
// through each invoice's own workflow, and sends one receipt.
//
// The recorded Update answers once the charge is recorded (or refused) and
// the invoices' workflows are told, so a request never waits on the receipt
// email, which goes out whenever the mail server takes it.
func BalancePaymentWorkflow(ctx workflow.Context, in *contract.BalancePaymentInput) (*contract.BalancePaymentResult, error) {
	rec := &recorded[contract.BalancePaymentResult]{}
	if err := rec.register(ctx); err != nil {
		return nil, err
	}
	res, err := chargeBalance(ctx, in)
	if err != nil {
		rec.set(nil, err)
		return nil, rec.finish(ctx, err)
	}
	out := &contract.BalancePaymentResult{BalancePaymentID: in.BalancePaymentID, Status: res.Status, Amount: in.Total, Currency: in.Currency,
		FailureCode: res.FailureCode, DeclineCode: res.DeclineCode, FailureMessage: res.FailureMessage,
		NextActionURL: res.NextActionURL, Allocations: res.Allocations}
	if res.Status == contract.PaymentFailed {
		rec.set(out, nil)
		return out, rec.finish(ctx, nil)
	}
	// Each invoice's workflow hears of its payment before the request is
	// answered: a webhook the answer leads to (3-D Secure finished, a bank
	// debit settled) then always finds the payment there.
	tellBalanceInvoices(ctx, res)
	rec.set(out, nil)
	if res.Status == contract.PaymentSucceeded {
		nctx := notifyOptions(ctx, fmt.Sprintf("Email one receipt for %d invoices", len(res.Allocations)))
		if err := workflow.ExecuteActivity(nctx, acts.SendBalanceReceipt, &activities.BalanceReceiptInput{
			BalancePaymentID: in.BalancePaymentID, PracticeID: in.PracticeID, ClientID: in.ClientID}).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("balance receipt failed", "error", err)
		}
	}
	return out, rec.finish(ctx, nil)
}

// chargeBalance charges the balance once and records it.
func chargeBalance(ctx workflow.Context, in *contract.BalancePaymentInput) (*activities.ChargeBalanceResult, error) {
	label := in.MethodLabel
	if label == "" {
		label = "card"
	}
	actx := chargeOptions(ctx, fmt.Sprintf("Charge balance %s to %s", money.Format(in.Total, in.Currency), label),
		contract.ErrTypeGateway, contract.ErrTypeBalanceChanged)
	var res activities.ChargeBalanceResult
	if err := workflow.ExecuteActivity(actx, acts.ChargeBalance, &activities.ChargeBalanceInput{
		BalancePaymentID: in.BalancePaymentID, PracticeID: in.PracticeID, ClientID: in.ClientID, Currency: in.Currency,
		Total: in.Total, InvoiceIDs: in.InvoiceIDs, PaymentMethodID: in.PaymentMethodID, SavedPaymentMethodID: in.SavedPaymentMethodID,
		SaveCard: in.SaveCard, PayerName: in.PayerName, BillingZIP: in.BillingZIP, ReturnURL: in.ReturnURL,
		Scope: in.Scope, IdempotencyKey: in.IdempotencyKey, RequestHash: in.RequestHash,
	}).Get(ctx, &res); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return nil, temporal.NewNonRetryableApplicationError(appErr.Message(), appErr.Type(), nil)
		}
		return nil, err
	}
	return &res, nil
}

// tellBalanceInvoices tells each invoice's workflow what it was paid (a
// closed one has it recorded in Postgres all the same).
func tellBalanceInvoices(ctx workflow.Context, res *activities.ChargeBalanceResult) {
	for _, al := range res.Allocations {
		err := workflow.SignalExternalWorkflow(ctx, contract.InvoiceWorkflowID(al.InvoiceID), "", contract.PaymentAppliedSignal, &contract.PaymentApplied{
			PaymentID: al.PaymentID, IntentID: res.IntentID, Amount: al.Amount, Status: res.Status, MethodLabel: res.MethodLabel,
		}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Warn("could not tell invoice workflow", "invoice", al.InvoiceID, "error", err)
		}
	}
}

// recorded is a workflow's recorded Update: it waits until the money is
// recorded (set) and answers with the result or the refusal. Registering it
// adds no command, so histories recorded before it replay unchanged.
type recorded[T any] struct {
	done bool
	res  *T
	err  error
}

func (r *recorded[T]) register(ctx workflow.Context) error {
	return workflow.SetUpdateHandler(ctx, contract.RecordedUpdate, func(ctx workflow.Context) (*T, error) {
		if err := workflow.Await(ctx, func() bool { return r.done }); err != nil {
			return nil, err
		}
		return r.res, r.err
	})
}

func (r *recorded[T]) set(res *T, err error) { r.done, r.res, r.err = true, res, err }

// finish lets every waiting recorded Update answer before the workflow
// ends, and returns err.
func (r *recorded[T]) finish(ctx workflow.Context, err error) error {
	if aerr := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); aerr != nil && err == nil {
		return aerr
	}
	return err
}
