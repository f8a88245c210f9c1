package workflows

import (
	"github.com/billflow/billflow/contract"

	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/money"
)

// BalancePaymentWorkflow charges once, applies the money oldest invoice first
// through each invoice's own workflow, and sends one receipt.
func BalancePaymentWorkflow(ctx workflow.Context, in *BalancePaymentInput) (*BalancePaymentResult, error) {
	label := in.MethodLabel
	if label == "" {
		label = "card"
	}
	actx := chargeOptions(ctx, fmt.Sprintf("Charge balance %s to %s", money.Format(in.Total, in.Currency), label),
		ErrTypeGateway, ErrTypeBalanceChanged)
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
	out := &BalancePaymentResult{BalancePaymentID: in.BalancePaymentID, Status: res.Status, Amount: in.Total, Currency: in.Currency,
		FailureCode: res.FailureCode, DeclineCode: res.DeclineCode, FailureMessage: res.FailureMessage,
		NextActionURL: res.NextActionURL, Allocations: res.Allocations}
	if res.Status == contract.PaymentFailed {
		return out, nil
	}
	for _, al := range res.Allocations {
		err := workflow.SignalExternalWorkflow(ctx, contract.InvoiceWorkflowID(al.InvoiceID), "", PaymentAppliedSignal, &PaymentApplied{
			PaymentID: al.PaymentID, IntentID: res.IntentID, Amount: al.Amount, Status: res.Status, MethodLabel: res.MethodLabel,
		}).Get(ctx, nil)
		if err != nil {
			// The invoice workflow has closed: the payment is recorded in Postgres all the same.
			workflow.GetLogger(ctx).Warn("could not tell invoice workflow", "invoice", al.InvoiceID, "error", err)
		}
	}
	if res.Status == contract.PaymentSucceeded {
		nctx := notifyOptions(ctx, fmt.Sprintf("Email one receipt for %d invoices", len(res.Allocations)))
		if err := workflow.ExecuteActivity(nctx, acts.SendBalanceReceipt, &activities.BalanceReceiptInput{
			BalancePaymentID: in.BalancePaymentID, PracticeID: in.PracticeID, ClientID: in.ClientID}).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("balance receipt failed", "error", err)
		}
	}
	return out, nil
}
