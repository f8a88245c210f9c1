package activities

import (
	"github.com/billflow/billflow/contract"

	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
)

// Error types of a payment refused before any charge.
const (
	ErrTypeKeyReused      = contract.ErrTypeKeyReused
	ErrTypeInvalidPayment = contract.ErrTypeInvalidPayment
)

// Charge takes one payment on one invoice exactly once. What the payer asked
// is written first (a payment attempt, keyed by the request's
// Idempotency-Key); the attempt's ID is the processor's idempotency key and
// never changes. A retry, a later workflow run or the reconciler asks the
// processor for the outcome of a charge that may have been sent, and never
// charges it again.
func (a *Activities) Charge(ctx context.Context, in *ChargeInput) (*ChargeResult, error) {
	inv, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return nil, err
	}
	key, scope := in.IdempotencyKey, in.Scope
	if key == "" {
		key, scope = in.PaymentID, "workflow"
	}
	att, _, err := a.Store.BeginPaymentAttempt(ctx, &store.PaymentAttempt{ID: in.PaymentID, Kind: "invoice",
		PracticeID: inv.PracticeID, ClientID: inv.ClientID, InvoiceID: inv.ID, Scope: scope, IdempotencyKey: key,
		RequestHash: in.RequestHash, Amount: in.Amount, Currency: in.Currency, PaymentMethodID: in.PaymentMethodID,
		SavedPaymentMethodID: in.SavedPaymentMethodID, SaveCard: in.SaveCard, OffSession: in.OffSession,
		PayerName: in.PayerName, BillingZIP: in.BillingZIP, ReturnURL: in.ReturnURL, Description: inv.Number,
		PayLinkID: in.PayLinkID})
	if err != nil {
		return nil, attemptErr(err)
	}
	// What is due now, under the lease: a balance payment may have paid
	// this invoice since the workflow checked the amount, and a charge
	// whose outcome is still unknown counts as paid until it is settled.
	check := func(ctx context.Context) ([]store.Allocation, error) {
		cur, err := a.Store.GetInvoice(ctx, in.InvoiceID)
		if err != nil {
			return nil, err
		}
		unsettled, err := a.Store.UnsettledCharges(ctx, cur.ClientID, cur.ID, att.ID)
		if err != nil {
			return nil, err
		}
		if due := cur.AmountDue - unsettled; att.Amount > due {
			msg := "this invoice was paid in the meantime"
			switch {
			case unsettled > 0:
				msg = "an earlier payment of this invoice is still being confirmed with the processor; try again later"
			case cur.AmountDue > 0:
				msg = fmt.Sprintf("the amount due changed to %s in the meantime; review it and pay again", money.Format(cur.AmountDue, cur.Currency))
			}
			return nil, temporal.NewNonRetryableApplicationError(msg, ErrTypeInvalidState, nil)
		}
		return nil, nil
	}
	rec, invs, err := a.chargeAttempt(ctx, att, check, map[string]string{"practice_id": inv.PracticeID,
		"client_id": inv.ClientID, "invoice_id": inv.ID, "payment_id": att.ID})
	if err != nil {
		return nil, err
	}
	out := chargeResultOf(rec)
	if len(invs) > 0 {
		out.Invoice = snapshot(invs[0])
	} else {
		if inv, err = a.Store.GetInvoice(ctx, in.InvoiceID); err != nil {
			return nil, err
		}
		out.Invoice = snapshot(inv)
	}
	if rec.Status == string(contract.PaymentFailed) {
		a.log().Info("charge declined", "invoice_id", inv.ID, "payment_id", rec.ID, "code", rec.FailureCode, "decline_code", rec.DeclineCode)
	} else {
		a.log().Info("payment recorded", "invoice_id", inv.ID, "payment_id", rec.ID, "status", rec.Status, "amount", rec.Amount)
	}
	return out, nil
}

// ChargeBalance charges the client's entire balance once and records one
// payment per invoice, oldest invoice first, all in one transaction.
func (a *Activities) ChargeBalance(ctx context.Context, in *ChargeBalanceInput) (*ChargeBalanceResult, error) {
	key, scope := in.IdempotencyKey, in.Scope
	if key == "" {
		key, scope = in.BalancePaymentID, "workflow"
	}
	att, _, err := a.Store.BeginPaymentAttempt(ctx, &store.PaymentAttempt{ID: in.BalancePaymentID, Kind: "balance",
		PracticeID: in.PracticeID, ClientID: in.ClientID, Scope: scope, IdempotencyKey: key, RequestHash: in.RequestHash,
		Amount: in.Total, Currency: in.Currency, PaymentMethodID: in.PaymentMethodID, SavedPaymentMethodID: in.SavedPaymentMethodID,
		SaveCard: in.SaveCard, PayerName: in.PayerName, BillingZIP: in.BillingZIP, ReturnURL: in.ReturnURL,
		Description: fmt.Sprintf("Balance of %d invoices", len(in.InvoiceIDs))})
	if err != nil {
		return nil, attemptErr(err)
	}
	// Under the exclusive lease: the balance as it is now, less what other
	// charges may have paid without an answer yet, must be what was shown.
	check := func(ctx context.Context) ([]store.Allocation, error) {
		open, err := a.Store.OpenInvoicesOldestFirst(ctx, in.ClientID)
		if err != nil {
			return nil, err
		}
		unsettled, err := a.Store.UnsettledCharges(ctx, in.ClientID, "", att.ID)
		if err != nil {
			return nil, err
		}
		var total int64
		var allocs []store.Allocation
		for i, inv := range open {
			if inv.Currency != in.Currency {
				continue
			}
			total += inv.AmountDue
			allocs = append(allocs, store.Allocation{InvoiceID: inv.ID, PaymentID: fmt.Sprintf("%s_%d", att.ID, i+1), Amount: inv.AmountDue})
		}
		if total != att.Amount || unsettled > 0 {
			return nil, temporal.NewNonRetryableApplicationError(
				"the balance changed since it was shown; review it and pay again", ErrTypeBalanceChanged, nil)
		}
		return allocs, nil
	}
	rec, _, err := a.chargeAttempt(ctx, att, check, map[string]string{"practice_id": in.PracticeID,
		"client_id": in.ClientID, "payment_id": att.ID, "balance_payment_id": att.ID})
	if err != nil {
		return nil, err
	}
	out := &ChargeBalanceResult{ChargeResult: *chargeResultOf(rec)}
	out.PaymentID = att.ID
	if rec.Status != string(contract.PaymentFailed) {
		out.Allocations = rec.Allocations
	}
	return out, nil
}

// chargeAttempt takes a written attempt to a recorded outcome. Under the
// client's payment lease (shared for an invoice, exclusive for a balance
// payment) it first asks the processor about a charge that may have been
// sent; only when there is none does it cancel the client's payments left
// waiting for 3-D Secure, run check (what is due now; its allocations are
// fixed with the attempt) and charge. The lease is given back once the
// outcome is recorded or nothing was charged; while the outcome is unknown
// it stays held (until it runs out) so no other charge of the client pays
// the same amount meanwhile.
func (a *Activities) chargeAttempt(ctx context.Context, att *store.PaymentAttempt,
	check func(context.Context) ([]store.Allocation, error), metadata map[string]string) (*store.PaymentAttempt, []*store.Invoice, error) {
	if att.Settled() {
		if att.Status == string(contract.PaymentFailed) && refusalCodes[att.FailureCode] {
			return nil, nil, temporal.NewNonRetryableApplicationError(att.FailureMessage, ErrTypeInvalidState, nil)
		}
		return att, nil, nil
	}
	client, err := a.Store.GetClient(ctx, att.PracticeID, att.ClientID)
	if err != nil {
		return nil, nil, err
	}
	pmID, offSession := att.PaymentMethodID, att.OffSession
	if att.SavedPaymentMethodID != "" {
		saved, err := a.Store.GetPaymentMethod(ctx, client.ID, att.SavedPaymentMethodID)
		if err != nil {
			return nil, nil, a.refuse(ctx, att, "payment_method_unavailable", "that saved payment method is not available", ErrTypeGateway)
		}
		pmID, offSession = saved.ProcessorPMID, true
	}
	var customerID string
	if att.SaveCard || att.SavedPaymentMethodID != "" {
		if customerID, err = a.ensureCustomer(ctx, client); err != nil {
			return nil, nil, err
		}
	}
	unlock, err := a.lockClientPayments(ctx, att.ClientID, att.ID, att.Kind == "balance")
	if err != nil {
		return nil, nil, err
	}
	known := false // the outcome is recorded, or nothing was charged: the lease goes back
	defer func() {
		if known {
			unlock()
		}
	}()
	var res *payments.ChargeResult
	if att.Status == store.AttemptCharging {
		// An earlier try may have charged and then died: ask, never charge twice.
		if res, err = a.lookupCharge(ctx, att); err != nil {
			return nil, nil, gatewayErr("find payment intent", err)
		}
	}
	if res == nil {
		invoiceID := att.InvoiceID
		changedType := ErrTypeInvalidState
		if att.Kind == "balance" {
			changedType = ErrTypeBalanceChanged
		}
		if err := a.supersedeAwaitingAction(ctx, att.ClientID, invoiceID, changedType); err != nil {
			return nil, nil, a.refuseErr(ctx, att, err, &known)
		}
		allocs, err := check(ctx)
		if err != nil {
			return nil, nil, a.refuseErr(ctx, att, err, &known)
		}
		if err := a.Store.MarkAttemptCharging(ctx, att.ID, customerID, allocs); err != nil {
			return nil, nil, err
		}
		res, err = a.Gateway.Charge(ctx, payments.ChargeRequest{
			IdempotencyKey: att.ID, Amount: att.Amount, Currency: att.Currency, CustomerID: customerID,
			PaymentMethodID: pmID, OffSession: offSession, SaveCard: att.SaveCard && att.SavedPaymentMethodID == "",
			PayerName: att.PayerName, BillingZIP: att.BillingZIP, Description: att.Description, ReturnURL: att.ReturnURL,
			Metadata: metadata,
		})
		if err != nil {
			if !payments.IsRetryable(err) {
				// The processor refused the request itself: nothing was charged.
				var ge *payments.Error
				errors.As(err, &ge)
				code, msg := "processor_refused", err.Error()
				if ge != nil {
					code, msg = firstNonEmpty(ge.Code, code), ge.Message
				}
				if ferr := a.Store.FailAttempt(ctx, att.ID, code, msg, false); ferr != nil {
					return nil, nil, ferr
				}
				known = true
			}
			return nil, nil, gatewayErr("charge", err)
		}
	}
	rec, invs, err := a.Store.RecordCharge(ctx, att.ID, outcomeOf(res))
	if err != nil {
		// Charged, not recorded: retried until it is, never charged again.
		return nil, nil, err
	}
	known = true
	if rec.SaveCard && rec.SavedPaymentMethodID == "" && res.Method.ID != "" && rec.Status != string(contract.PaymentFailed) {
		if _, err := a.Store.SavePaymentMethod(ctx, &store.SavedPaymentMethod{
			PracticeID: rec.PracticeID, ClientID: rec.ClientID, ProcessorPMID: res.Method.ID, Type: res.Method.Type,
			Brand: res.Method.Brand, Last4: res.Method.Last4, ExpMonth: int32(res.Method.ExpMonth), ExpYear: int32(res.Method.ExpYear),
			BankName: res.Method.BankName, CardholderName: firstNonEmpty(rec.PayerName, res.Method.CardholderName),
			BillingZIP: firstNonEmpty(rec.BillingZIP, res.Method.BillingZIP),
		}); err != nil {
			return nil, nil, err
		}
	}
	return rec, invs, nil
}

// lookupCharge asks the processor what became of an attempt's charge: by
// its PaymentIntent when one was recorded, else by the attempt's ID in the
// intent's metadata. nil means the processor has no charge for it.
func (a *Activities) lookupCharge(ctx context.Context, att *store.PaymentAttempt) (*payments.ChargeResult, error) {
	if att.ProcessorIntentID != "" {
		return a.Gateway.GetPaymentIntent(ctx, att.ProcessorIntentID)
	}
	return a.Gateway.FindPaymentIntent(ctx, att.ID)
}

// refuse settles an attempt that is refused before any charge and returns
// the non-retryable error the payer sees.
func (a *Activities) refuse(ctx context.Context, att *store.PaymentAttempt, code, msg, errType string) error {
	if err := a.Store.FailAttempt(ctx, att.ID, code, msg, false); err != nil {
		return err
	}
	return temporal.NewNonRetryableApplicationError(msg, errType, nil)
}

// refuseErr settles the attempt as failed when err is a business refusal
// (non-retryable); a passing fault is returned as it is, for a retry.
func (a *Activities) refuseErr(ctx context.Context, att *store.PaymentAttempt, err error, known *bool) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() {
		return err
	}
	if ferr := a.Store.FailAttempt(ctx, att.ID, "refused", appErr.Message(), false); ferr != nil {
		return ferr
	}
	*known = true
	return err
}

// attemptErr maps a failure to write the attempt: a key reused for another
// payment, or text Postgres cannot store, is the payer's to fix.
func attemptErr(err error) error {
	switch {
	case errors.Is(err, store.ErrKeyReused):
		return temporal.NewNonRetryableApplicationError(
			"this Idempotency-Key was already used for a different payment; use a new key", ErrTypeKeyReused, nil)
	case errors.Is(err, store.ErrInvalidText):
		return temporal.NewNonRetryableApplicationError(
			"the payer name or billing ZIP contains characters that cannot be stored", ErrTypeInvalidPayment, nil)
	}
	return err
}

func outcomeOf(res *payments.ChargeResult) *store.ChargeOutcome {
	return &store.ChargeOutcome{Status: res.Status, IntentID: res.PaymentIntentID, NextActionURL: res.NextActionURL,
		MethodType: res.Method.Type, Brand: res.Method.Brand, Last4: res.Method.Last4, BankName: res.Method.BankName,
		CardholderName: res.Method.CardholderName, FailureCode: res.FailureCode, DeclineCode: res.DeclineCode,
		FailureMessage: res.FailureMessage}
}

func chargeResultOf(att *store.PaymentAttempt) *ChargeResult {
	return &ChargeResult{PaymentID: att.ID, IntentID: att.ProcessorIntentID, Status: contract.PaymentStatus(att.Status), FailureCode: att.FailureCode,
		DeclineCode: att.DeclineCode, FailureMessage: att.FailureMessage, NextActionURL: att.NextActionURL,
		MethodLabel: MethodLabel(att.MethodType, att.Brand, att.Last4, att.BankName)}
}

// refusalCodes are the failure codes of attempts refused before any charge.
var refusalCodes = map[string]bool{"refused": true, "payment_method_unavailable": true, "processor_refused": true, "not_charged": true}

// chargeGiveUp is how old a charge with no answer and no trace at the
// processor must be before it counts as never sent: past every retry of the
// charge activity (two hours), with room.
const chargeGiveUp = 3 * time.Hour
