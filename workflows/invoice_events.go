package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
)

// onPaymentEvent settles a processing or requires_action payment from a webhook.
func (w *invoiceWF) onPaymentEvent(ctx workflow.Context, ev *contract.PaymentEvent) {
	idx := slices.IndexFunc(w.st.Payments, func(p contract.PaymentState) bool {
		return (ev.PaymentID != "" && p.ID == ev.PaymentID) || (ev.IntentID != "" && p.IntentID == ev.IntentID)
	})
	if idx < 0 {
		return
	}
	if ev.Type == "charge.dispute.created" {
		w.st.Disputed = true
		workflow.GetLogger(ctx).Warn("payment disputed", "payment", w.st.Payments[idx].ID)
		return
	}
	p := &w.st.Payments[idx]
	if p.Status == contract.PaymentSucceeded || p.Status == contract.PaymentFailed {
		return
	}
	if err := w.lock.Lock(ctx); err != nil {
		return
	}
	defer w.lock.Unlock()
	actx := ledgerOptions(ctx, fmt.Sprintf("Confirm payment %s", money.Format(p.Amount, w.st.Currency)))
	var res activities.ChargeResult
	if err := workflow.ExecuteActivity(actx, acts.SyncPayment, &activities.SyncPaymentInput{
		InvoiceID: w.in.InvoiceID, PaymentID: p.ID, IntentID: p.IntentID}).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Error("sync payment failed", "payment", p.ID, "error", err)
		return
	}
	p = &w.st.Payments[idx]
	p.Status = res.Status
	w.apply(ctx, &res.Invoice)
	switch res.Status {
	case contract.PaymentSucceeded:
		w.st.Pending = append(w.st.Pending, contract.Notice{Kind: contract.NoticePayment, PaymentID: p.ID, Amount: p.Amount, Final: res.Invoice.AmountDue == 0})
	case contract.PaymentFailed:
		// A canceled intent was replaced by a later payment before its 3-D
		// Secure was finished (billflow cancels no other): nothing to tell.
		if res.FailureCode != canceledIntent {
			w.st.Pending = append(w.st.Pending, contract.Notice{Kind: contract.NoticePaymentFailed, PaymentID: p.ID, Amount: p.Amount})
		}
	}
}

// canceledIntent is the failure code of a payment whose PaymentIntent was
// canceled.
const canceledIntent = "payment_intent_canceled"

// onPaymentApplied takes in a payment a balance payment recorded on this invoice.
func (w *invoiceWF) onPaymentApplied(ctx workflow.Context, pa *contract.PaymentApplied) {
	if w.hasPayment(pa.PaymentID) {
		return
	}
	if err := w.lock.Lock(ctx); err != nil {
		return
	}
	defer w.lock.Unlock()
	if w.hasPayment(pa.PaymentID) {
		return // the payment's own charge took it in while this waited
	}
	w.st.Payments = append(w.st.Payments, contract.PaymentState{ID: pa.PaymentID, Amount: pa.Amount, Status: pa.Status,
		IntentID: pa.IntentID, MethodLabel: pa.MethodLabel, CreatedAt: workflow.Now(ctx)})
	actx := ledgerOptions(ctx, "Apply balance payment "+money.Format(pa.Amount, w.st.Currency))
	var snap contract.InvoiceSnapshot
	if err := workflow.ExecuteActivity(actx, acts.RefreshInvoice, &activities.InvoiceRef{InvoiceID: w.in.InvoiceID}).Get(ctx, &snap); err != nil {
		workflow.GetLogger(ctx).Error("refresh after balance payment", "error", err)
		return
	}
	w.apply(ctx, &snap)
	switch {
	case pa.Status == contract.PaymentSucceeded && pa.Notify:
		w.st.Pending = append(w.st.Pending, contract.Notice{Kind: contract.NoticePayment, PaymentID: pa.PaymentID, Amount: pa.Amount, Final: snap.AmountDue == 0})
	case pa.Status == contract.PaymentSucceeded && snap.AmountDue == 0:
		w.st.Pending = append(w.st.Pending, contract.Notice{Kind: contract.NoticePayment, PaymentID: pa.PaymentID, Amount: pa.Amount, Final: true, Silent: true})
	}
}
