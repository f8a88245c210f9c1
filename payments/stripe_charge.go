package payments

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

// Charge creates and confirms a PaymentIntent in one call keyed by
// req.IdempotencyKey, so a retry replays Stripe's first answer.
//
// A card decline comes back from Stripe as HTTP 402 with the PaymentIntent in
// the error body; Charge turns it into a result with StatusFailed and the
// codes and a nil error, so the caller records the failure and tells the payer.
// Errors mean the request was invalid (KindInvalid) or its outcome is unknown
// (KindTransient: retry with the same key, or ask GetPaymentIntent).
func (s *Stripe) Charge(ctx context.Context, req ChargeRequest) (*ChargeResult, error) {
	if req.Amount <= 0 {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_invalid_integer", Param: "amount", Message: "amount must be positive"}
	}
	if req.PaymentMethodID == "" {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_missing", Param: "payment_method", Message: "a payment method is required"}
	}
	if req.SaveCard && req.CustomerID == "" {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_missing", Param: "customer", Message: "saving a payment method needs a customer"}
	}
	methodType, err := s.methodType(ctx, req.PaymentMethodID)
	if err != nil {
		return nil, err
	}

	p := &stripe.PaymentIntentParams{
		Amount:        stripe.Int64(req.Amount),
		Currency:      stripe.String(strings.ToLower(req.Currency)),
		PaymentMethod: stripe.String(req.PaymentMethodID),
		Confirm:       stripe.Bool(true),
	}
	p.Context = ctx
	if req.CustomerID != "" {
		p.Customer = stripe.String(req.CustomerID)
	}
	if req.Description != "" {
		p.Description = stripe.String(req.Description)
	}
	for k, v := range req.Metadata {
		p.AddMetadata(k, v)
	}
	if req.OffSession {
		p.OffSession = stripe.Bool(true)
	} else if req.ReturnURL != "" {
		// return_url is only allowed on on-session confirmations.
		p.ReturnURL = stripe.String(req.ReturnURL)
	}
	if req.SaveCard {
		p.SetupFutureUsage = stripe.String(string(stripe.PaymentIntentSetupFutureUsageOffSession))
	}
	if methodType == MethodUSBankAccount {
		// ACH debits need the type listed explicitly and a mandate: the
		// payer authorised the debit on billflow's page (offline acceptance).
		p.PaymentMethodTypes = stripe.StringSlice([]string{MethodUSBankAccount})
		p.MandateData = &stripe.PaymentIntentMandateDataParams{
			CustomerAcceptance: &stripe.PaymentIntentMandateDataCustomerAcceptanceParams{
				Type: stripe.String(string(stripe.MandateCustomerAcceptanceTypeOffline)),
			},
		}
	} else {
		p.PaymentMethodTypes = stripe.StringSlice([]string{MethodCard})
	}
	p.AddExpand("payment_method")
	setKey(&p.Params, req.IdempotencyKey)

	pi, err := s.api.PaymentIntents.New(p)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Type == stripe.ErrorTypeCard {
			return declinedResult(req, methodType, se), nil
		}
		return nil, mapError("create payment intent", err)
	}
	res := chargeResult(pi)
	fillMethod(&res.Method, req, methodType)
	return res, nil
}

// declinedResult builds the StatusFailed result from a card_error.
func declinedResult(req ChargeRequest, methodType string, se *stripe.Error) *ChargeResult {
	res := &ChargeResult{
		Status:         StatusFailed,
		Amount:         req.Amount,
		Currency:       strings.ToLower(req.Currency),
		FailureCode:    string(se.Code),
		DeclineCode:    string(se.DeclineCode),
		FailureMessage: se.Msg,
		ChargeID:       se.ChargeID,
		Metadata:       req.Metadata,
	}
	if se.PaymentIntent != nil {
		pi := chargeResult(se.PaymentIntent)
		res.PaymentIntentID = pi.PaymentIntentID
		res.Method = pi.Method
		if pi.ChargeID != "" && res.ChargeID == "" {
			res.ChargeID = pi.ChargeID
		}
		if pi.Amount != 0 {
			res.Amount = pi.Amount
		}
	}
	if res.Method.ID == "" && se.PaymentMethod != nil {
		res.Method = methodFrom(se.PaymentMethod)
	}
	if res.FailureCode == "" {
		res.FailureCode = string(stripe.ErrorCodeCardDeclined)
	}
	fillMethod(&res.Method, req, methodType)
	return res
}

// fillMethod completes what the PaymentIntent did not expand.
func fillMethod(m *Method, req ChargeRequest, methodType string) {
	if m.ID == "" {
		m.ID = req.PaymentMethodID
	}
	if m.Type == "" {
		m.Type = methodType
	}
	if m.CardholderName == "" {
		m.CardholderName = req.PayerName
	}
	if m.BillingZIP == "" {
		m.BillingZIP = req.BillingZIP
	}
}

// GetPaymentIntent reads a PaymentIntent: how an unknown outcome is resolved.
func (s *Stripe) GetPaymentIntent(ctx context.Context, id string) (*ChargeResult, error) {
	p := &stripe.PaymentIntentParams{}
	p.Context = ctx
	p.AddExpand("payment_method")
	pi, err := s.api.PaymentIntents.Get(id, p)
	if err != nil {
		return nil, mapError("get payment intent "+id, err)
	}
	return chargeResult(pi), nil
}

// CancelPaymentIntent cancels an unfinished PaymentIntent ("abandoned": a
// later payment replaced it). Stripe refuses to cancel one that succeeded or
// is processing (payment_intent_unexpected_state); then its current state is
// the answer. Canceling is idempotent at Stripe, so a retry is safe.
func (s *Stripe) CancelPaymentIntent(ctx context.Context, id string) (*ChargeResult, error) {
	p := &stripe.PaymentIntentCancelParams{CancellationReason: stripe.String(string(stripe.PaymentIntentCancellationReasonAbandoned))}
	p.Context = ctx
	p.AddExpand("payment_method")
	pi, err := s.api.PaymentIntents.Cancel(id, p)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Code == stripe.ErrorCodePaymentIntentUnexpectedState {
			return s.GetPaymentIntent(ctx, id)
		}
		return nil, mapError("cancel payment intent "+id, err)
	}
	return chargeResult(pi), nil
}

// FindPaymentIntent searches PaymentIntents by metadata payment_id and
// returns the newest, or nil, nil when there is none.
//
// Stripe's search is eventually consistent (an intent may take up to a
// minute to appear), so callers should first replay the charge with its
// idempotency key or read a PaymentIntent ID they kept; this is the fallback
// when neither is available.
func (s *Stripe) FindPaymentIntent(ctx context.Context, paymentID string) (*ChargeResult, error) {
	if paymentID == "" {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_missing", Param: "payment_id", Message: "payment ID is required"}
	}
	p := &stripe.PaymentIntentSearchParams{}
	p.Context = ctx
	p.Query = fmt.Sprintf("metadata['payment_id']:'%s'", strings.ReplaceAll(paymentID, "'", `\'`))
	p.Limit = stripe.Int64(10)
	p.AddExpand("data.payment_method")
	it := s.api.PaymentIntents.Search(p)
	var best *stripe.PaymentIntent
	for it.Next() {
		pi := it.PaymentIntent()
		if pi.Metadata["payment_id"] != paymentID {
			continue
		}
		if best == nil || pi.Created > best.Created {
			best = pi
		}
	}
	if err := it.Err(); err != nil {
		return nil, mapError("search payment intents", err)
	}
	if best == nil {
		return nil, nil
	}
	return chargeResult(best), nil
}

// chargeResult folds a PaymentIntent into billflow's four statuses.
func chargeResult(pi *stripe.PaymentIntent) *ChargeResult {
	res := &ChargeResult{
		PaymentIntentID: pi.ID,
		Amount:          pi.Amount,
		Currency:        string(pi.Currency),
		ClientSecret:    pi.ClientSecret,
		Metadata:        pi.Metadata,
	}
	if pi.PaymentMethod != nil {
		res.Method = methodFrom(pi.PaymentMethod)
	}
	if pi.LatestCharge != nil {
		res.ChargeID = pi.LatestCharge.ID
	}
	if e := pi.LastPaymentError; e != nil {
		res.FailureCode = string(e.Code)
		res.DeclineCode = string(e.DeclineCode)
		res.FailureMessage = e.Msg
	}
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		res.Status = StatusSucceeded
		res.FailureCode, res.DeclineCode, res.FailureMessage = "", "", ""
	case stripe.PaymentIntentStatusProcessing, stripe.PaymentIntentStatusRequiresCapture:
		res.Status = StatusProcessing
	case stripe.PaymentIntentStatusRequiresAction:
		res.Status = StatusRequiresAction
		if na := pi.NextAction; na != nil && na.RedirectToURL != nil {
			res.NextActionURL = na.RedirectToURL.URL
		}
	default:
		// requires_payment_method (declined or authentication failed),
		// requires_confirmation (never confirmed) and canceled: no money moved.
		res.Status = StatusFailed
		if res.FailureCode == "" {
			res.FailureCode = "payment_intent_" + string(pi.Status)
		}
	}
	return res
}
