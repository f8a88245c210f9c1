package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
)

// ---- resend ----

func (w *invoiceWF) validateResend(ctx workflow.Context) error {
	switch {
	case w.st.Status == contract.InvoiceVoid:
		return stateErr("a void invoice cannot be sent")
	case w.st.AmountDue == 0:
		return stateErr("the invoice has nothing left to pay; its receipt is at GET /v1/invoices/{id}/pdf")
	}
	return nil
}

// resendOutsideLockChange marks the move of the resend email out of the
// payment lock; histories recorded before it email while holding the lock.
const resendOutsideLockChange = "resend-outside-lock"

// resend emails the invoice again with a fresh pay link, once per request.
// The sequence is taken under the payment lock; the email, which waits out
// an SMTP outage, goes out holding none, so payments never wait for it.
func (w *invoiceWF) resend(ctx workflow.Context) (*contract.ResendResult, error) {
	if err := w.lock.Lock(ctx); err != nil {
		return nil, err
	}
	locked := true
	defer func() {
		if locked {
			w.lock.Unlock()
		}
	}()
	if err := w.validateResend(ctx); err != nil {
		return nil, err
	}
	w.st.ResendSeq++
	seq := w.st.ResendSeq
	if workflow.GetVersion(ctx, resendOutsideLockChange, workflow.DefaultVersion, 1) == 1 {
		w.lock.Unlock()
		locked = false
	}
	var res activities.NotifyResult
	if err := workflow.ExecuteActivity(notifyOptions(ctx, fmt.Sprintf("Resend invoice email (%d)", seq)), acts.IssueInvoice,
		&activities.InvoiceRef{InvoiceID: w.in.InvoiceID, Resend: seq}).Get(ctx, &res); err != nil {
		return nil, err
	}
	w.st.Issued = true
	return &contract.ResendResult{Sequence: seq, Emailed: res.Emailed}, nil
}
