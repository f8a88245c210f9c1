package payments

import (
	"context"
	"fmt"

	"github.com/stripe/stripe-go/v76"
)

// Refund refunds part (Amount > 0) or the rest (Amount == 0) of a
// PaymentIntent, keyed by req.IdempotencyKey.
func (s *Stripe) Refund(ctx context.Context, req RefundRequest) (*RefundResult, error) {
	if req.PaymentIntentID == "" {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_missing", Param: "payment_intent", Message: "payment intent is required"}
	}
	if req.Amount < 0 {
		return nil, &Error{Kind: KindInvalid, Code: "parameter_invalid_integer", Param: "amount", Message: "refund amount must not be negative"}
	}
	p := &stripe.RefundParams{PaymentIntent: stripe.String(req.PaymentIntentID)}
	p.Context = ctx
	if req.Amount > 0 {
		p.Amount = stripe.Int64(req.Amount)
	}
	switch req.Reason {
	case "":
	case string(stripe.RefundReasonDuplicate), string(stripe.RefundReasonFraudulent), string(stripe.RefundReasonRequestedByCustomer):
		p.Reason = stripe.String(req.Reason)
	default:
		return nil, &Error{Kind: KindInvalid, Code: "parameter_invalid", Param: "reason", Message: fmt.Sprintf("refund reason %q is not one of duplicate, fraudulent, requested_by_customer", req.Reason)}
	}
	for k, v := range req.Metadata {
		p.AddMetadata(k, v)
	}
	setKey(&p.Params, req.IdempotencyKey)
	r, err := s.api.Refunds.New(p)
	if err != nil {
		return nil, mapError("refund "+req.PaymentIntentID, err)
	}
	return &RefundResult{RefundID: r.ID, Status: string(r.Status), Amount: r.Amount}, nil
}
