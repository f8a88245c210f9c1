package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
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
// charges it again. The invoice row is read once: under the payment lease,
// for what is due now (or, when no check runs, for the answer).
func (a *Activities) Charge(ctx context.Context, in *ChargeInput) (*ChargeResult, error) {
	practiceID, clientID, number := in.PracticeID, in.ClientID, in.Number
	if practiceID == "" || clientID == "" || number == "" {
		// An input scheduled before these fields existed.
		inv, err := a.Store.GetInvoiceRow(ctx, in.InvoiceID)
		if err != nil {
			return nil, err
		}
		practiceID, clientID, number = inv.PracticeID, inv.ClientID, inv.Number
	}
	key, scope := in.IdempotencyKey, in.Scope
	if key == "" {
		key, scope = in.PaymentID, "workflow"
	}
	att, _, err := a.Store.BeginPaymentAttempt(ctx, &store.PaymentAttempt{ID: in.PaymentID, Kind: "invoice",
		PracticeID: practiceID, ClientID: clientID, InvoiceID: in.InvoiceID, Scope: scope, IdempotencyKey: key,
		RequestHash: in.RequestHash, Amount: in.Amount, Currency: in.Currency, PaymentMethodID: in.PaymentMethodID,
		SavedPaymentMethodID: in.SavedPaymentMethodID, SaveCard: in.SaveCard, OffSession: in.OffSession,
		PayerName: in.PayerName, BillingZIP: in.BillingZIP, ReturnURL: in.ReturnURL, Description: number,
		PayLinkID: in.PayLinkID})
	if err != nil {
		return nil, attemptErr(err)
	}
	// What is due now, under the lease: a balance payment may have paid
	// this invoice since the workflow checked the amount, and a charge
	// whose outcome is still unknown counts as paid until it is settled.
	var seen *store.Invoice // the one read of the invoice row
	check := func(ctx context.Context) ([]store.Allocation, error) {
		cur, err := a.Store.GetInvoiceRow(ctx, in.InvoiceID)
		if err != nil {
			return nil, err
		}
		seen = cur
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
	rec, invs, err := a.charge(ctx, att, check, map[string]string{"practice_id": practiceID,
		"client_id": clientID, "invoice_id": in.InvoiceID, "payment_id": att.ID})
	if err != nil {
		return nil, err
	}
	out := chargeResultOf(rec)
	switch {
	case len(invs) > 0: // recorded: the invoice as the recording left it
		out.Invoice = snapshot(invs[0])
	case seen != nil: // declined or refused after the check: nothing changed since
		out.Invoice = snapshot(seen)
	default: // settled before, or answered by a lookup with nothing recorded
		inv, err := a.Store.GetInvoiceRow(ctx, in.InvoiceID)
		if err != nil {
			return nil, err
		}
		out.Invoice = snapshot(inv)
	}
	if rec.Status == string(contract.PaymentFailed) {
		a.log().Info("charge declined", "invoice_id", in.InvoiceID, "payment_id", rec.ID, "code", rec.FailureCode, "decline_code", rec.DeclineCode)
	} else {
		a.log().Info("payment recorded", "invoice_id", in.InvoiceID, "payment_id", rec.ID, "status", rec.Status, "amount", rec.Amount)
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
	rec, _, err := a.charge(ctx, att, check, map[string]string{"practice_id": in.PracticeID,
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

// charge is the one charge path, for an invoice payment and a balance
// payment alike: it takes a written attempt to a recorded outcome. Under
// the client's payment lease (shared for an invoice, exclusive for a
// balance payment) it first asks the processor about a charge that may
// have been sent; only when there is none does it resolve the payment
// method (new, saved, or saved and removed since: refused), create or reuse
// the client's customer, cancel the client's payments left waiting for 3-D
// Secure, run check (what is due now; its allocations are fixed with the
// attempt) and charge under the attempt's ID as the processor's
// idempotency key. A decline is recorded and returned, not raised. The
// lease is given back once the outcome is recorded or nothing was charged;
// while the outcome is unknown it stays held (until it runs out) so no
// other charge of the client pays the same amount meanwhile.
func (a *Activities) charge(ctx context.Context, att *store.PaymentAttempt,
	check func(context.Context) ([]store.Allocation, error), metadata map[string]string) (*store.PaymentAttempt, []*store.Invoice, error) {
	if att.Settled() {
		if att.Status == string(contract.PaymentFailed) && refusalCodes[att.FailureCode] {
			return nil, nil, temporal.NewNonRetryableApplicationError(att.FailureMessage, ErrTypeInvalidState, nil)
		}
		return att, nil, nil
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
		// An earlier try may have charged and then died: ask, never charge
		// twice (even if the saved card was removed since).
		if res, err = a.lookupCharge(ctx, att); err != nil {
			return nil, nil, gatewayErr("find payment intent", err)
		}
	}
	var method *cards.Method
	if res == nil {
		if method, err = a.resolveMethod(ctx, att); err != nil {
			return nil, nil, a.refuseErr(ctx, att, err, &known)
		}
		changedType := ErrTypeInvalidState
		if att.Kind == "balance" {
			changedType = ErrTypeBalanceChanged
		}
		if err := a.supersedeAwaitingAction(ctx, att.ClientID, att.InvoiceID, changedType); err != nil {
			return nil, nil, a.refuseErr(ctx, att, err, &known)
		}
		allocs, err := check(ctx)
		if err != nil {
			return nil, nil, a.refuseErr(ctx, att, err, &known)
		}
		if err := a.Store.MarkAttemptCharging(ctx, att.ID, method.CustomerID, allocs); err != nil {
			return nil, nil, err
		}
		res, err = a.Gateway.Charge(ctx, payments.ChargeRequest{
			IdempotencyKey: att.ID, Amount: att.Amount, Currency: att.Currency, CustomerID: method.CustomerID,
			PaymentMethodID: method.PaymentMethodID, OffSession: method.OffSession, SaveCard: method.Save,
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
		if _, err := a.cards().SaveCharged(ctx, rec.PracticeID, rec.ClientID, res.Method, rec.PayerName, rec.BillingZIP); err != nil {
			return nil, nil, err
		}
	}
	return rec, invs, nil
}

// resolveMethod is how an attempt is paid (cards.Resolve): a saved card
// removed since the payer chose it is refused, non-retryable.
func (a *Activities) resolveMethod(ctx context.Context, att *store.PaymentAttempt) (*cards.Method, error) {
	if !att.SaveCard && att.SavedPaymentMethodID == "" {
		// A one-off new method: no customer, no client row to read.
		return &cards.Method{PaymentMethodID: att.PaymentMethodID, OffSession: att.OffSession}, nil
	}
	client, err := a.Store.GetClient(ctx, att.PracticeID, att.ClientID)
	if err != nil {
		return nil, err
	}
	m, err := a.cards().Resolve(ctx, client, att.PaymentMethodID, att.SavedPaymentMethodID, att.SaveCard, att.OffSession)
	switch {
	case errors.Is(err, cards.ErrNotFound):
		return nil, newRefusal("payment_method_unavailable", "that saved payment method is not available; choose another", ErrTypeGateway)
	case err != nil:
		return nil, gatewayErr("resolve payment method", err)
	}
	return m, nil
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

// refusal is a business refusal before any charge, with the failure code
// the attempt is settled with.
type refusal struct {
	code string
	err  error // a non-retryable *temporal.ApplicationError
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func newRefusal(code, msg, errType string) error {
	return &refusal{code: code, err: temporal.NewNonRetryableApplicationError(msg, errType, nil)}
}

// refuseErr settles the attempt as failed when err is a business refusal
// (non-retryable) and returns what the payer sees; a passing fault is
// returned as it is, for a retry.
func (a *Activities) refuseErr(ctx context.Context, att *store.PaymentAttempt, err error, known *bool) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() {
		return err
	}
	code := "refused"
	var r *refusal
	if errors.As(err, &r) {
		code, err = r.code, r.err
	}
	if ferr := a.Store.FailAttempt(ctx, att.ID, code, appErr.Message(), false); ferr != nil {
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
		MethodLabel: cards.Label(att.MethodType, att.Brand, att.Last4, att.BankName)}
}

// refusalCodes are the failure codes of attempts refused before any charge.
var refusalCodes = map[string]bool{"refused": true, "payment_method_unavailable": true, "processor_refused": true, "not_charged": true}

// chargeGiveUp is how old a charge with no answer and no trace at the
// processor must be before it counts as never sent: past every retry of the
// charge activity (two hours), with room.
const chargeGiveUp = 3 * time.Hour
