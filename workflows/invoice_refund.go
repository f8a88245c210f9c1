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

// ---- refund ----

func (w *invoiceWF) validateRefund(ctx workflow.Context, in *contract.RefundInput) error {
	_, err := w.refundTarget(in)
	if err != nil && in != nil && in.Amount > 0 && in.PaymentID != "" && !w.signalsIdle() {
		// The payment may be in a signal in hand: a balance payment's
		// payment-applied waiting for the lock, or delivered in this same
		// workflow task (Updates are handled before signals are taken in).
		// The handler decides once they are.
		return nil
	}
	return err
}

func (w *invoiceWF) refundTarget(in *contract.RefundInput) (*contract.PaymentState, error) {
	bad := func(msg string) error {
		return temporal.NewNonRetryableApplicationError(msg, contract.ErrTypeInvalidRefund, nil)
	}
	if in == nil || in.Amount <= 0 {
		return nil, bad("refund amount must be greater than zero")
	}
	cur := w.st.Currency
	var target *contract.PaymentState
	for i := len(w.st.Payments) - 1; i >= 0; i-- {
		p := &w.st.Payments[i]
		if p.Status != contract.PaymentSucceeded {
			continue
		}
		if in.PaymentID == "" && p.Amount-p.Refunded >= in.Amount || p.ID == in.PaymentID {
			target = p
			break
		}
	}
	if target == nil {
		if in.PaymentID != "" {
			return nil, bad(fmt.Sprintf("payment %s is not a succeeded payment of this invoice", in.PaymentID))
		}
		return nil, bad(fmt.Sprintf("no payment on this invoice has %s left to refund", money.Format(in.Amount, cur)))
	}
	if left := target.Amount - target.Refunded; in.Amount > left {
		return nil, bad(fmt.Sprintf("refund of %s is more than the %s left on payment %s", money.Format(in.Amount, cur), money.Format(left, cur), target.ID))
	}
	return target, nil
}

func (w *invoiceWF) refund(ctx workflow.Context, in *contract.RefundInput) (*contract.RefundResult, error) {
	if _, err := w.refundTarget(in); err != nil {
		// Accepted only with signals in hand (see validateRefund); histories
		// from before never reach here, so nothing they replay changes.
		if err := workflow.Await(ctx, func() bool { return w.signalsIdle() }); err != nil {
			return nil, err
		}
	}
	if err := w.lock.Lock(ctx); err != nil {
		return nil, err
	}
	defer w.lock.Unlock()
	target, err := w.refundTarget(in)
	if err != nil {
		return nil, err
	}
	w.st.RefundSeq++
	refundID := fmt.Sprintf("ref_%s_%d", trimPrefix(w.in.InvoiceID), w.st.RefundSeq)
	actx := refundOptions(ctx, fmt.Sprintf("Refund %s to %s", money.Format(in.Amount, w.st.Currency), target.MethodLabel))
	var res activities.RefundResult
	if err := workflow.ExecuteActivity(actx, acts.Refund, &activities.RefundInput{InvoiceID: w.in.InvoiceID,
		PaymentID: target.ID, RefundID: refundID, Amount: in.Amount, Reason: in.Reason}).Get(ctx, &res); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return nil, temporal.NewNonRetryableApplicationError(appErr.Message(), contract.ErrTypeInvalidRefund, nil)
		}
		return nil, err
	}
	target.Refunded += in.Amount
	w.apply(ctx, &res.Invoice)
	w.st.Pending = append(w.st.Pending, contract.Notice{Kind: contract.NoticeRefund, RefundID: refundID, Amount: in.Amount})
	return &contract.RefundResult{RefundID: refundID, PaymentID: target.ID, Amount: in.Amount, Status: res.Status, Invoice: res.Invoice}, nil
}
