package payments

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// Event is a verified Stripe webhook event reduced to what billflow routes
// on. Which IDs are set depends on Type: payment_intent.* fill
// PaymentIntentID, charge.* fill ChargeID (and PaymentIntentID), refund.*
// fill RefundID, charge.dispute.* fill DisputeID.
type Event struct {
	ID              string
	Type            string
	PaymentIntentID string
	ChargeID        string
	RefundID        string
	DisputeID       string
	Amount          int64
	// AmountRefunded is the charge's total refunded so far (charge.refunded).
	AmountRefunded int64
	Currency       string
	Status         string
	FailureCode    string
	DeclineCode    string
	FailureMessage string
	Metadata       map[string]string
	Created        time.Time
	// Object is the raw data.object, for anything not lifted above.
	Object json.RawMessage
}

// eventObject is the union of the fields billflow reads from the objects
// Stripe sends in events (PaymentIntent, Charge, Refund, Dispute).
type eventObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Amount           int64             `json:"amount"`
	AmountRefunded   int64             `json:"amount_refunded"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Metadata         map[string]string `json:"metadata"`
	PaymentIntent    json.RawMessage   `json:"payment_intent"`
	Charge           json.RawMessage   `json:"charge"`
	LatestCharge     json.RawMessage   `json:"latest_charge"`
	FailureCode      string            `json:"failure_code"`
	FailureMessage   string            `json:"failure_message"`
	LastPaymentError *struct {
		Code        string `json:"code"`
		DeclineCode string `json:"decline_code"`
		Message     string `json:"message"`
	} `json:"last_payment_error"`
	Refunds *struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	} `json:"refunds"`
}

// expandableID reads an expandable field that is either "id" or {"id": ...}.
func expandableID(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.ID
	}
	return ""
}

// VerifyWebhook checks the Stripe-Signature header against secret (rejecting
// timestamps older than tolerance; 0 means stripe-go's default of 5 minutes)
// and parses the event. Any error means: answer 400 and do nothing.
// API version mismatches are ignored because billflow reads only stable
// fields.
func VerifyWebhook(payload []byte, sigHeader, secret string, tolerance time.Duration) (*Event, error) {
	if secret == "" {
		return nil, fmt.Errorf("verify webhook: no webhook secret configured")
	}
	se, err := webhook.ConstructEventWithOptions(payload, sigHeader, secret, webhook.ConstructEventOptions{
		Tolerance:                tolerance,
		IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		return nil, fmt.Errorf("verify webhook: %w", err)
	}
	ev := &Event{ID: se.ID, Type: string(se.Type), Created: time.Unix(se.Created, 0).UTC()}
	if se.Data == nil || len(se.Data.Raw) == 0 {
		return ev, nil
	}
	ev.Object = se.Data.Raw
	var o eventObject
	if err := json.Unmarshal(se.Data.Raw, &o); err != nil {
		return nil, fmt.Errorf("verify webhook: parse data.object: %w", err)
	}
	ev.Amount, ev.AmountRefunded, ev.Currency, ev.Status, ev.Metadata = o.Amount, o.AmountRefunded, o.Currency, o.Status, o.Metadata
	ev.FailureCode, ev.FailureMessage = o.FailureCode, o.FailureMessage
	switch {
	case o.Object == "payment_intent" || strings.HasPrefix(ev.Type, "payment_intent."):
		ev.PaymentIntentID = o.ID
		ev.ChargeID = expandableID(o.LatestCharge)
		if e := o.LastPaymentError; e != nil {
			ev.FailureCode, ev.DeclineCode, ev.FailureMessage = e.Code, e.DeclineCode, e.Message
		}
	case o.Object == "dispute" || strings.HasPrefix(ev.Type, "charge.dispute."):
		ev.DisputeID = o.ID
		ev.ChargeID = expandableID(o.Charge)
		ev.PaymentIntentID = expandableID(o.PaymentIntent)
	case o.Object == "refund" || strings.HasPrefix(ev.Type, "refund."):
		ev.RefundID = o.ID
		ev.ChargeID = expandableID(o.Charge)
		ev.PaymentIntentID = expandableID(o.PaymentIntent)
	case o.Object == "charge" || strings.HasPrefix(ev.Type, "charge."):
		ev.ChargeID = o.ID
		ev.PaymentIntentID = expandableID(o.PaymentIntent)
		if o.Refunds != nil && len(o.Refunds.Data) > 0 {
			ev.RefundID = o.Refunds.Data[0].ID
		}
	}
	return ev, nil
}
