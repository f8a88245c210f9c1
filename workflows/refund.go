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

// RefundAfterCloseWorkflow is a refund with the same activities, idempotency
// and notice as a refund through the invoice workflow. Its recorded Update
// answers once the refund is recorded; the notice follows whenever the mail
// server takes it.
func RefundAfterCloseWorkflow(ctx workflow.Context, in *contract.RefundAfterCloseInput) (*contract.RefundResult, error) {
	rec := &recorded[contract.RefundResult]{}
	if err := rec.register(ctx); err != nil {
		return nil, err
	}
	out, err := refundAfterClose(ctx, in)
	rec.set(out, err)
	if err != nil {
		return nil, rec.finish(ctx, err)
	}
	if err := workflow.ExecuteActivity(notifyOptions(ctx, "Email refund notice"), acts.NotifyRefund,
		&activities.NotifyInput{InvoiceID: in.InvoiceID, RefundID: in.RefundID}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("refund notice failed", "error", err)
	}
	return out, rec.finish(ctx, nil)
}

// refundAfterClose refunds once and records it.
func refundAfterClose(ctx workflow.Context, in *contract.RefundAfterCloseInput) (*contract.RefundResult, error) {
	actx := refundOptions(ctx, fmt.Sprintf("Refund %s", money.Format(in.Amount, in.Currency)))
	var res activities.RefundResult
	if err := workflow.ExecuteActivity(actx, acts.Refund, &activities.RefundInput{InvoiceID: in.InvoiceID, PaymentID: in.PaymentID,
		RefundID: in.RefundID, Amount: in.Amount, Reason: in.Reason}).Get(ctx, &res); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return nil, temporal.NewNonRetryableApplicationError(appErr.Message(), contract.ErrTypeInvalidRefund, nil)
		}
		return nil, err
	}
	return &contract.RefundResult{RefundID: in.RefundID, PaymentID: in.PaymentID, Amount: in.Amount, Status: res.Status, Invoice: res.Invoice}, nil
}
