// Package payments is billflow's payment gateway: the one place that talks to
// Stripe (or to a Stripe-wire-compatible server such as stripe-mock or
// internal/stripesandbox). It knows nothing of Temporal or Postgres; the
// activities call it and decide what to record.
//
// Exactly-once rests on two things this package provides: every write carries
// a Stripe idempotency key derived by the caller from billflow's own IDs, and
// an outcome the caller never saw (a timeout) can be resolved by asking Stripe
// (GetPaymentIntent, FindPaymentIntent) instead of charging again.
package payments

import (
	"context"
	"errors"
	"fmt"

	"github.com/billflow/billflow/contract"
)

// Status is the outcome of a charge as billflow sees it; Stripe's finer
// PaymentIntent statuses are folded into these four.
type Status = contract.PaymentStatus

// The charge statuses.
const (
	// StatusSucceeded means the money is captured.
	StatusSucceeded = contract.PaymentSucceeded
	// StatusProcessing means the outcome arrives later by webhook (bank debits).
	StatusProcessing = contract.PaymentProcessing
	// StatusRequiresAction means the payer must finish 3-D Secure at NextActionURL.
	StatusRequiresAction = contract.PaymentRequiresAction
	// StatusFailed means no money moved; FailureCode says why.
	StatusFailed = contract.PaymentFailed
)

// Method describes a payment method the way billflow stores it: processor ID
// and display details, never a card or account number.
type Method struct {
	ID             string `json:"id"`
	Type           string `json:"type"` // "card" or "us_bank_account"
	Brand          string `json:"brand,omitempty"`
	Last4          string `json:"last4,omitempty"`
	ExpMonth       int    `json:"exp_month,omitempty"`
	ExpYear        int    `json:"exp_year,omitempty"`
	BankName       string `json:"bank_name,omitempty"`
	CardholderName string `json:"cardholder_name,omitempty"`
	BillingZIP     string `json:"billing_zip,omitempty"`
}

// Method types.
const (
	MethodCard          = "card"
	MethodUSBankAccount = "us_bank_account"
)

// CustomerRequest creates the Stripe Customer that holds a client's saved
// payment methods. IdempotencyKey should derive from the client ID so a
// retried activity does not create a second customer.
type CustomerRequest struct {
	IdempotencyKey string
	ClientID       string
	PracticeID     string
	Email          string
	Name           string
}

// ChargeRequest creates and confirms one PaymentIntent.
type ChargeRequest struct {
	// IdempotencyKey comes from billflow's payment ID (e.g. "pay_<id>"), so a
	// retried activity gets Stripe's first answer back instead of a new charge.
	IdempotencyKey string
	Amount         int64
	Currency       string
	// CustomerID is the Stripe customer; it may be empty for a one-off new
	// card that is not saved. It is required with SaveCard or a saved method.
	CustomerID string
	// PaymentMethodID is a tokenized method ("pm_…") or a Stripe test ID such
	// as "pm_card_visa".
	PaymentMethodID string
	// OffSession marks a saved method charged without the client present.
	OffSession bool
	// SaveCard sets setup_future_usage=off_session, which makes Stripe attach
	// the method to CustomerID once the payment succeeds (or is processing).
	SaveCard bool
	// PayerName and BillingZIP are what the payer typed. Stripe.js puts them on
	// the PaymentMethod at tokenization; here they only fill the result's
	// Method when the PaymentMethod has none.
	PayerName  string
	BillingZIP string
	// Description appears on Stripe's dashboard: an invoice number, never
	// health information.
	Description string
	// Metadata carries practice_id, client_id, invoice_id and payment_id;
	// FindPaymentIntent searches by payment_id.
	Metadata map[string]string
	// ReturnURL is where 3-D Secure sends the payer back.
	ReturnURL string
}

// ChargeResult is a PaymentIntent reduced to what billflow records.
type ChargeResult struct {
	PaymentIntentID string
	Status          Status
	Amount          int64
	Currency        string
	Method          Method
	FailureCode     string
	DeclineCode     string
	FailureMessage  string
	// NextActionURL is the 3-D Secure page to send the payer to, and
	// ClientSecret what Stripe.js needs to finish it in place.
	NextActionURL string
	ClientSecret  string
	ChargeID      string
	// Metadata is the PaymentIntent's metadata (payment_id, invoice_id, ...).
	Metadata map[string]string
}

// RefundRequest refunds part or all of one payment.
type RefundRequest struct {
	// IdempotencyKey comes from billflow's refund ID.
	IdempotencyKey  string
	PaymentIntentID string
	// Amount in minor units; 0 refunds whatever is left.
	Amount int64
	// Reason is "duplicate", "fraudulent", "requested_by_customer" or "".
	Reason   string
	Metadata map[string]string
}

// RefundResult is a Stripe Refund reduced to what billflow records.
type RefundResult struct {
	RefundID string
	// Status is Stripe's: "succeeded", "pending", "failed", "canceled" or
	// "requires_action".
	Status string
	Amount int64
}

// Gateway is what the activities need from a payment processor. Stripe is
// the implementation; tests may fake it.
type Gateway interface {
	// CreateCustomer creates the Stripe Customer for a client.
	CreateCustomer(ctx context.Context, req CustomerRequest) (customerID string, err error)
	// Charge creates and confirms a PaymentIntent in one idempotent call. A
	// decline is not an error: it returns a result with StatusFailed and the
	// processor's codes, so the caller can report it; errors are reserved for
	// invalid requests and transient faults.
	Charge(ctx context.Context, req ChargeRequest) (*ChargeResult, error)
	// GetPaymentIntent resolves an unknown outcome by asking Stripe.
	GetPaymentIntent(ctx context.Context, id string) (*ChargeResult, error)
	// FindPaymentIntent finds the PaymentIntent whose metadata payment_id is
	// paymentID; nil, nil if there is none.
	FindPaymentIntent(ctx context.Context, paymentID string) (*ChargeResult, error)
	// CancelPaymentIntent cancels a PaymentIntent still waiting for the payer
	// (3-D Secure not finished). If it moved on meanwhile (succeeded,
	// processing) it is left alone; either way the answer is where it stands.
	CancelPaymentIntent(ctx context.Context, id string) (*ChargeResult, error)
	// Refund refunds part or all of a PaymentIntent.
	Refund(ctx context.Context, req RefundRequest) (*RefundResult, error)
	// AttachPaymentMethod saves a method on a customer.
	AttachPaymentMethod(ctx context.Context, pmID, customerID, idempotencyKey string) (*Method, error)
	// DetachPaymentMethod removes a saved method from its customer.
	DetachPaymentMethod(ctx context.Context, pmID string) error
	// GetPaymentMethod reads a method's display details.
	GetPaymentMethod(ctx context.Context, pmID string) (*Method, error)
}

// ErrorKind says what a caller should do about an Error.
type ErrorKind string

// The error kinds.
const (
	// KindDeclined is a card_error: the processor refused; retrying will not help.
	KindDeclined ErrorKind = "declined"
	// KindInvalid is an invalid request or idempotency error: do not retry.
	KindInvalid ErrorKind = "invalid"
	// KindTransient is a network fault, timeout, 409, 429 or 5xx (or Stripe
	// said Stripe-Should-Retry: true): retry with backoff and the same
	// idempotency key.
	KindTransient ErrorKind = "transient"
)

// Error is what every Gateway method returns on failure. Message is Stripe's
// text, safe to show a payer; it never contains card numbers.
type Error struct {
	Kind        ErrorKind
	Code        string
	DeclineCode string
	Message     string
	Param       string
	HTTPStatus  int
	Err         error
}

// Error formats the kind, code and message.
func (e *Error) Error() string {
	s := "payments: " + string(e.Kind)
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.DeclineCode != "" {
		s += "/" + e.DeclineCode
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Message == "" && e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying stripe-go or network error.
func (e *Error) Unwrap() error { return e.Err }

// IsRetryable reports whether err is worth retrying with the same idempotency
// key: only transient gateway errors are. Unknown errors are not, so a bug
// does not loop forever.
func IsRetryable(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Kind == KindTransient
}

// IsNotFound reports whether Stripe answered that the object does not exist.
func IsNotFound(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && (pe.HTTPStatus == 404 || pe.Code == "resource_missing")
}
