package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
)

// ---- void ----

func (w *invoiceWF) validateVoid(ctx workflow.Context) error {
	if w.st.Status == contract.InvoiceVoid {
		return nil
	}
	if w.st.AmountPaid > 0 || w.st.AmountProcessing > 0 {
		return stateErr("only an unpaid invoice can be voided; refund its payments instead")
	}
	return nil
}

func (w *invoiceWF) void(ctx workflow.Context) (*contract.InvoiceSnapshot, error) {
	if err := w.lock.Lock(ctx); err != nil {
		return nil, err
	}
	defer w.lock.Unlock()
	if err := w.validateVoid(ctx); err != nil {
		return nil, err
	}
	actx := voidOptions(ctx, "Void invoice "+w.st.Number)
	var snap contract.InvoiceSnapshot
	if err := workflow.ExecuteActivity(actx, acts.VoidInvoice, &activities.InvoiceRef{InvoiceID: w.in.InvoiceID}).Get(ctx, &snap); err != nil {
		return nil, err
	}
	w.apply(ctx, &snap)
	return &snap, nil
}
