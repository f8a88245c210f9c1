package activities

import "github.com/billflow/billflow/contract"

// InvoiceSnapshot is an invoice's status and amounts as Postgres recorded
// them after a change (contract's: the workflows pass it on to the API).
type InvoiceSnapshot = contract.InvoiceSnapshot

// ChargeInput asks for one payment on one invoice. PaymentID doubles as the
// processor idempotency key, so a retried activity never charges twice.
type ChargeInput struct {
	InvoiceID string
	// PracticeID, ClientID and Number are the invoice's, from the workflow,
	// so a charge reads the invoice row only once (empty in inputs
	// scheduled before they existed: then it is read for them).
	PracticeID           string
	ClientID             string
	Number               string
	PaymentID            string
	Amount               int64
	Currency             string
	PaymentMethodID      string
	SavedPaymentMethodID string
	SaveCard             bool
	OffSession           bool
	PayerName            string
	BillingZIP           string
	ReturnURL            string
	BalancePaymentID     string
	// Scope and IdempotencyKey name the payer's request (the API's
	// Idempotency-Key and whose it is); RequestHash is what it asked. A
	// request seen before, in any workflow run, gets its first payment.
	Scope          string
	IdempotencyKey string
	RequestHash    string
	PayLinkID      string // the pay link it came through, if any
}

// ChargeResult is the processor's answer, recorded.
type ChargeResult struct {
	PaymentID      string
	IntentID       string
	Status         contract.PaymentStatus
	FailureCode    string
	DeclineCode    string
	FailureMessage string
	NextActionURL  string
	MethodLabel    string
	Invoice        InvoiceSnapshot
}

// SyncPaymentInput asks the processor for a payment's current state (after a
// webhook, or to resolve an unknown outcome) and records it.
type SyncPaymentInput struct {
	InvoiceID string
	PaymentID string
	IntentID  string
}

// RefundInput refunds part or all of one payment; RefundID is the idempotency key.
type RefundInput struct {
	InvoiceID string
	PaymentID string
	RefundID  string
	Amount    int64
	Reason    string
}

// RefundResult is a recorded refund.
type RefundResult struct {
	RefundID string
	Status   contract.RefundStatus
	Invoice  InvoiceSnapshot
}

// InvoiceRef names one invoice for activities that need nothing else.
type InvoiceRef struct {
	InvoiceID string
	Resend    int // IssueInvoice only: 0 is the first email, n the practice's nth resend
}
