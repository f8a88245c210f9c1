// Package activities holds the side effects workflows call: charges and
// refunds, ledger writes, PDF rendering, email. Activities are thin: the work
// lives in store, payments, documents, pdf and mail, which know nothing of
// Temporal. Every activity is safe to run twice.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/pdf"
	"github.com/billflow/billflow/store"
)

// Error types raised by activities (contract's).
const (
	ErrTypeGateway      = contract.ErrTypeGateway
	ErrTypeInvalidState = contract.ErrTypeInvalidState
)

// Activities carries every dependency an activity needs.
type Activities struct {
	Store         *store.Store
	Gateway       payments.Gateway
	Logger        *slog.Logger
	PublicBaseURL string
	PayLinkSecret []byte
	Renderer      *pdf.Renderer
	Mailer        *mail.Mailer
	MailDomain    string        // right side of Message-IDs
	Temporal      client.Client // for activities that signal or start workflows (the reminder run, the reconciler)
	// TemporalFor is the client of a practice's namespace (nil: Temporal
	// serves every namespace). An activity that signals or starts
	// workflows uses the client of the namespace it runs in.
	TemporalFor func(namespace string) (client.Client, error)
	Now         func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Activities) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func snapshot(inv *store.Invoice) InvoiceSnapshot {
	return InvoiceSnapshot{Status: inv.Status, AmountPaid: inv.AmountPaid, AmountRefunded: inv.AmountRefunded,
		AmountDue: inv.AmountDue, AmountProcessing: inv.AmountProcessing}
}

// MethodLabel is how a payment method is shown: "Visa •••• 4242" (cards.Label).
func MethodLabel(typ, brand, last4, bank string) string { return cards.Label(typ, brand, last4, bank) }

// cards is the card operations on the activities' store and gateway.
func (a *Activities) cards() *cards.Cards { return &cards.Cards{Store: a.Store, Gateway: a.Gateway} }

// gatewayErr turns a gateway failure into what Temporal should do with it.
func gatewayErr(op string, err error) error {
	var ge *payments.Error
	if errors.As(err, &ge) && !payments.IsRetryable(err) {
		return temporal.NewNonRetryableApplicationError(ge.Message, ErrTypeGateway, nil, ge.Code)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// SyncPayment asks the processor where a processing or requires_action
// payment stands and records it (a webhook said it moved).
func (a *Activities) SyncPayment(ctx context.Context, in *SyncPaymentInput) (*ChargeResult, error) {
	p, err := a.Store.GetPayment(ctx, in.PaymentID)
	if err != nil {
		return nil, err
	}
	intentID := firstNonEmpty(in.IntentID, p.ProcessorIntentID)
	res, err := a.Gateway.GetPaymentIntent(ctx, intentID)
	if err != nil {
		return nil, gatewayErr("get payment intent", err)
	}
	status := res.Status
	if status == contract.PaymentRequiresAction && p.Status == contract.PaymentRequiresAction {
		inv, err := a.Store.GetInvoiceRow(ctx, in.InvoiceID)
		if err != nil {
			return nil, err
		}
		return &ChargeResult{PaymentID: p.ID, IntentID: intentID, Status: status, Invoice: snapshot(inv)}, nil
	}
	upd := *p
	upd.Status, upd.FailureCode, upd.DeclineCode, upd.FailureMessage = status, res.FailureCode, res.DeclineCode, res.FailureMessage
	upd.MethodType, upd.Brand, upd.Last4 = res.Method.Type, res.Method.Brand, res.Method.Last4
	inv, rec, err := a.Store.RecordPayment(ctx, &upd)
	if err != nil {
		return nil, err
	}
	return &ChargeResult{PaymentID: rec.ID, IntentID: intentID, Status: rec.Status, FailureCode: rec.FailureCode,
		DeclineCode: rec.DeclineCode, FailureMessage: rec.FailureMessage,
		MethodLabel: MethodLabel(rec.MethodType, rec.Brand, rec.Last4, rec.BankName), Invoice: snapshot(inv)}, nil
}

// Refund returns money from one payment exactly once (the refund ID is the
// processor's idempotency key) and records it with its ledger entries.
func (a *Activities) Refund(ctx context.Context, in *RefundInput) (*RefundResult, error) {
	pay, err := a.Store.GetPayment(ctx, in.PaymentID)
	if err != nil {
		return nil, err
	}
	refunds, err := a.Store.ListRefunds(ctx, in.InvoiceID)
	if err != nil {
		return nil, err
	}
	for _, r := range refunds {
		if r.ID == in.RefundID {
			inv, err := a.Store.GetInvoiceRow(ctx, in.InvoiceID)
			if err != nil {
				return nil, err
			}
			return &RefundResult{RefundID: r.ID, Status: r.Status, Invoice: snapshot(inv)}, nil
		}
	}
	if left := pay.Amount - pay.AmountRefunded; in.Amount > left {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("refund is more than the %d left on the payment", left), ErrTypeGateway, nil)
	}
	res, err := a.Gateway.Refund(ctx, payments.RefundRequest{IdempotencyKey: in.RefundID, PaymentIntentID: pay.ProcessorIntentID,
		Amount: in.Amount, Reason: stripeReason(in.Reason),
		Metadata: map[string]string{"invoice_id": in.InvoiceID, "payment_id": in.PaymentID, "refund_id": in.RefundID}})
	if err != nil {
		return nil, gatewayErr("refund", err)
	}
	if s := contract.RefundStatus(res.Status); s == contract.RefundFailed || s == contract.RefundCanceled {
		return nil, temporal.NewNonRetryableApplicationError("the processor refused the refund", ErrTypeGateway, nil)
	}
	inv, rec, err := a.Store.RecordRefund(ctx, &store.Refund{ID: in.RefundID, InvoiceID: in.InvoiceID, PaymentID: in.PaymentID,
		IdempotencyKey: in.RefundID, Amount: in.Amount, Reason: in.Reason, ProcessorRefundID: res.RefundID})
	if err != nil {
		return nil, err
	}
	a.log().Info("refund recorded", "invoice_id", in.InvoiceID, "refund_id", in.RefundID, "amount", in.Amount)
	return &RefundResult{RefundID: rec.ID, Status: rec.Status, Invoice: snapshot(inv)}, nil
}

// stripeReason keeps the processor's enumerated reasons; free text stays ours.
func stripeReason(r string) string {
	switch r {
	case "duplicate", "fraudulent", "requested_by_customer":
		return r
	}
	return ""
}

// VoidInvoice voids an unpaid invoice in the read model and kills its links.
// A payment left waiting for 3-D Secure is canceled at the processor first,
// under the client's payment lease, so finishing it later cannot capture
// money on a void invoice; if it went through meanwhile, or a charge's
// outcome is still unknown, the invoice is not voided.
func (a *Activities) VoidInvoice(ctx context.Context, in *InvoiceRef) (*InvoiceSnapshot, error) {
	cur, err := a.Store.GetInvoiceRow(ctx, in.InvoiceID)
	if err != nil {
		return nil, err
	}
	if cur.Status != store.StatusVoid {
		holder := "void_" + cur.ID
		unlock, err := a.lockClientPayments(ctx, cur.ClientID, holder, false)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if err := a.supersedeAwaitingAction(ctx, cur.ClientID, cur.ID, ErrTypeInvalidState); err != nil {
			return nil, err
		}
		if n, err := a.Store.UnsettledCharges(ctx, cur.ClientID, cur.ID, ""); err != nil {
			return nil, err
		} else if n > 0 {
			return nil, temporal.NewNonRetryableApplicationError(
				"a payment of this invoice is still being confirmed with the processor; void it once that is settled", ErrTypeInvalidState, nil)
		}
	}
	inv, err := a.Store.VoidInvoice(ctx, in.InvoiceID)
	if errors.Is(err, store.ErrConflict) {
		return nil, temporal.NewNonRetryableApplicationError("only an unpaid invoice can be voided", ErrTypeInvalidState, err)
	}
	if err != nil {
		return nil, err
	}
	s := snapshot(inv)
	return &s, nil
}
