package workflows

import (
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
)

// ---- pay ----

// validatePay rejects bad payments before they reach history.
func (w *invoiceWF) validatePay(ctx workflow.Context, in *contract.PayInput) error {
	return w.checkPay(in)
}

func (w *invoiceWF) checkPay(in *contract.PayInput) error {
	st := w.st
	cur := st.Currency
	switch {
	case in == nil:
		return payErr("a payment needs an amount and a payment method")
	case st.Status == contract.InvoiceVoid:
		return stateErr("this invoice is void and cannot be paid")
	case st.AmountDue == 0 && st.AmountProcessing == 0 && (st.Total > 0 || st.Status == contract.InvoicePaid || st.Status == contract.InvoiceRefunded || st.Status == contract.InvoicePartiallyRefunded):
		return stateErr("this invoice is already paid")
	case st.AmountDue == 0 && st.AmountProcessing > 0:
		return stateErr("a payment for the rest of this invoice is still processing")
	case in.Amount <= 0:
		return payErr("amount must be greater than zero")
	case in.Amount > st.AmountDue:
		return payErr(fmt.Sprintf("amount %s is more than the %s due", money.Format(in.Amount, cur), money.Format(st.AmountDue, cur)))
	case in.PaymentMethodID == "":
		return payErr("a payment method is required")
	}
	if in.Amount < st.AmountDue {
		p := w.in.Partial
		if !p.Enabled {
			return payErr(fmt.Sprintf("partial payments are not enabled for this invoice: pay the full %s", money.Format(st.AmountDue, cur)))
		}
		if minimum := w.minimum(); in.Amount < minimum {
			return payErr(fmt.Sprintf("the minimum payment for this invoice is %s (or the full %s)", money.Format(minimum, cur), money.Format(st.AmountDue, cur)))
		}
		maxInst := p.MaxInstallments
		if maxInst <= 0 {
			maxInst = 2
		}
		if st.Installments()+1 >= maxInst {
			return payErr(fmt.Sprintf("this invoice allows at most %d payments: this one must pay the remaining %s", maxInst, money.Format(st.AmountDue, cur)))
		}
	}
	if in.Amount < money.MinimumCharge(cur) {
		return payErr(fmt.Sprintf("the smallest charge in %s is %s", cur, money.Format(money.MinimumCharge(cur), cur)))
	}
	return nil
}

func (w *invoiceWF) minimum() int64 {
	p := w.in.Partial
	switch {
	case p.MinimumAmount > 0:
		return p.MinimumAmount
	case p.MinimumPercent > 0:
		return money.Percent(w.st.Total, p.MinimumPercent)
	}
	return 1
}

func payErr(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, contract.ErrTypeInvalidPayment, nil)
}

func stateErr(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, contract.ErrTypeInvalidState, nil)
}

// pay charges once and records it. Payments on one invoice run one at a time
// and are re-validated under the lock, so two concurrent payers can never
// together pay more than is due.
func (w *invoiceWF) pay(ctx workflow.Context, in *contract.PayInput) (*contract.PayResult, error) {
	if err := w.lock.Lock(ctx); err != nil {
		return nil, err
	}
	defer w.lock.Unlock()
	if err := w.checkPay(in); err != nil {
		return nil, err
	}
	w.st.PaymentSeq++
	paymentID := fmt.Sprintf("pay_%s_%d", trimPrefix(w.in.InvoiceID), w.st.PaymentSeq)
	label := in.MethodLabel
	if label == "" {
		label = "card"
	}
	summary := fmt.Sprintf("Charge %s to %s", money.Format(in.Amount, w.st.Currency), label)
	charge := &activities.ChargeInput{
		InvoiceID: w.in.InvoiceID, PracticeID: w.in.PracticeID, ClientID: w.in.ClientID, Number: w.in.Number,
		PaymentID: paymentID, Amount: in.Amount, Currency: w.st.Currency,
		PaymentMethodID: in.PaymentMethodID, SavedPaymentMethodID: in.SavedPaymentMethodID, SaveCard: in.SaveCard,
		OffSession: in.OffSession, PayerName: in.PayerName, BillingZIP: in.BillingZIP, ReturnURL: in.ReturnURL,
		IdempotencyKey: in.IdempotencyKey, Scope: in.Scope, RequestHash: in.RequestHash, PayLinkID: in.PayLinkID,
	}
	var res activities.ChargeResult
	var err error
	// The charge runs as a local activity in the workflow task that accepted
	// the pay Update: one workflow task and no activity dispatch per payment
	// instead of two and one. A charge re-run after a worker crash finds its
	// payment attempt in Postgres and asks the processor before charging.
	if w.chargeLocal {
		lctx := chargeLocalOptions(ctx, summary, contract.ErrTypeCardDeclined, contract.ErrTypeGateway)
		err = workflow.ExecuteLocalActivity(lctx, acts.Charge, charge).Get(ctx, &res)
	} else {
		actx := chargeOptions(ctx, summary, contract.ErrTypeCardDeclined, contract.ErrTypeGateway)
		err = workflow.ExecuteActivity(actx, acts.Charge, charge).Get(ctx, &res)
	}
	if err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeGateway {
			return nil, temporal.NewNonRetryableApplicationError(appErr.Message(), contract.ErrTypeInvalidPayment, nil)
		}
		return nil, err
	}
	// The request may have been paid before, in an earlier run: its
	// payment keeps its first ID and is taken in once.
	if res.PaymentID != "" {
		paymentID = res.PaymentID
	}
	if res.MethodLabel != "" {
		label = res.MethodLabel
	}
	known := w.hasPayment(paymentID)
	if res.Status != contract.PaymentFailed && !known {
		w.st.Payments = append(w.st.Payments, contract.PaymentState{ID: paymentID, Amount: in.Amount, Status: res.Status,
			IntentID: res.IntentID, MethodLabel: label, CreatedAt: workflow.Now(ctx)})
	}
	w.apply(ctx, &res.Invoice)
	if res.Status == contract.PaymentSucceeded && !known {
		w.st.Pending = append(w.st.Pending, contract.Notice{Kind: contract.NoticePayment, PaymentID: paymentID, Amount: in.Amount, Final: res.Invoice.AmountDue == 0})
	}
	return &contract.PayResult{PaymentID: paymentID, Amount: in.Amount, Status: res.Status, FailureCode: res.FailureCode,
		DeclineCode: res.DeclineCode, FailureMessage: res.FailureMessage, NextActionURL: res.NextActionURL, Invoice: res.Invoice}, nil
}

func (w *invoiceWF) hasPayment(id string) bool {
	return slices.ContainsFunc(w.st.Payments, func(p contract.PaymentState) bool { return p.ID == id })
}
