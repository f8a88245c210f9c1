package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
)

// issue renders the invoice and emails the client the Pay Invoice link.
func (w *invoiceWF) issue(ctx workflow.Context) {
	actx := notifyOptions(ctx, "Render invoice and email pay link")
	var res activities.NotifyResult
	if err := workflow.ExecuteActivity(actx, acts.IssueInvoice, &activities.InvoiceRef{InvoiceID: w.in.InvoiceID}).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Error("issue invoice failed", "error", err)
	}
	w.st.Issued = true
}

// notify sends one owed notification.
func (w *invoiceWF) notify(ctx workflow.Context, n contract.Notice) {
	var err error
	var res activities.NotifyResult
	switch n.Kind {
	case contract.NoticePayment:
		summary := "Email payment confirmation " + money.Format(n.Amount, w.st.Currency)
		if n.Final {
			summary = "Render receipt and email it: " + money.Format(n.Amount, w.st.Currency) + " paid"
		}
		if n.Silent {
			summary = "Render receipt"
		}
		err = workflow.ExecuteActivity(notifyOptions(ctx, summary), acts.NotifyPayment,
			&activities.NotifyInput{InvoiceID: w.in.InvoiceID, PaymentID: n.PaymentID, ReceiptOnly: n.Silent}).Get(ctx, &res)
	case contract.NoticePaymentFailed:
		err = workflow.ExecuteActivity(notifyOptions(ctx, "Email payment failed "+money.Format(n.Amount, w.st.Currency)), acts.NotifyPayment,
			&activities.NotifyInput{InvoiceID: w.in.InvoiceID, PaymentID: n.PaymentID}).Get(ctx, &res)
	case contract.NoticeRefund:
		err = workflow.ExecuteActivity(notifyOptions(ctx, "Email refund notice "+money.Format(n.Amount, w.st.Currency)), acts.NotifyRefund,
			&activities.NotifyInput{InvoiceID: w.in.InvoiceID, RefundID: n.RefundID}).Get(ctx, &res)
	case contract.NoticeReminder:
		w.sendReminder(ctx, n)
	}
	if err != nil {
		workflow.GetLogger(ctx).Error("notification failed", "kind", n.Kind, "error", err)
	}
}
