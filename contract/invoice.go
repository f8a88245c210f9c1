package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// PartialTerms are the invoice's installment rules.
type PartialTerms struct {
	Enabled         bool
	MinimumAmount   int64
	MinimumPercent  int64
	MaxInstallments int
}

// InvoiceInput starts (or continues) an invoice workflow. It carries IDs,
// amounts and dates only: never item descriptions or diagnosis codes.
type InvoiceInput struct {
	InvoiceID  string
	Number     string
	PracticeID string
	ClientID   string
	Currency   string
	Total      int64
	DueDate    time.Time
	// IssueDate is the invoice's issue date: no reminder goes out on or
	// before it, the day the invoice email itself went out (zero in
	// histories recorded before it was added).
	IssueDate       time.Time
	Partial         PartialTerms
	ReminderOffsets []int // days relative to the due date, e.g. -3, 0, 7, 14
	RefundWindow    time.Duration
	// MaxHistoryEvents bounds one run's history before it continues as new;
	// 0 means the default (2,000).
	MaxHistoryEvents int
	// State is set only when the workflow continues as new.
	State *InvoiceState
}

// PaymentState is the workflow's view of one payment.
type PaymentState struct {
	ID          string
	Amount      int64
	Status      PaymentStatus
	Refunded    int64
	IntentID    string
	MethodLabel string
	CreatedAt   time.Time
}

// InvoiceState is what the state Query returns: what the API shows plus what
// happens next.
type InvoiceState struct {
	InvoiceID        string
	Number           string
	Status           InvoiceStatus
	Currency         string
	Total            int64
	AmountPaid       int64
	AmountRefunded   int64
	AmountDue        int64
	AmountProcessing int64
	DueDate          time.Time
	Issued           bool
	PaymentSeq       int
	RefundSeq        int
	ResendSeq        int // how many times the practice resent the invoice email
	Payments         []PaymentState
	RemindersSent    []int // steps sent (1-based); a step owed but not yet sent is in Pending
	NextReminderAt   *time.Time
	NextReminderStep int // 1-based, 0 = none
	PaidAt           *time.Time
	ClosesAt         *time.Time
	// Pending are emails (and the receipt) still to go out, in order; they
	// live in state so a continue-as-new carries them over.
	Pending  []Notice
	Disputed bool
}

// Installments counts payments that took money or are taking it.
func (s *InvoiceState) Installments() int {
	n := 0
	for _, p := range s.Payments {
		if p.Status.Taking() {
			n++
		}
	}
	return n
}

// InvoiceSnapshot is an invoice's status and amounts as Postgres recorded them
// after a change; the workflow mirrors it into state and search attributes.
type InvoiceSnapshot struct {
	Status           InvoiceStatus
	AmountPaid       int64
	AmountRefunded   int64
	AmountDue        int64
	AmountProcessing int64
}

// ResendResult answers the resend Update.
type ResendResult struct {
	Sequence int  // 1 for the first resend
	Emailed  bool // false when the email had already gone out for this resend
}

// Notice is one client notification the workflow owes.
type Notice struct {
	Kind      NoticeKind
	PaymentID string
	RefundID  string
	Amount    int64
	Final     bool // the payment settled the invoice: render and attach the receipt
	Silent    bool // part of a balance payment: receipt document only, one email elsewhere
	// Step, Steps and Today are an owed reminder's: step Step (1-based) of
	// Steps, fallen due on Today.
	Step  int
	Steps int
	Today time.Time
}

// PaymentApplied tells an invoice workflow that a balance payment recorded a
// payment on it.
type PaymentApplied struct {
	PaymentID   string
	IntentID    string
	Amount      int64
	Status      PaymentStatus
	MethodLabel string
	// Notify: the reconciler recorded this payment of the invoice's own
	// (its charge's answer was lost); the client gets the usual receipt or
	// payment email.
	Notify bool
}

// PayInput is the pay Update's argument.
type PayInput struct {
	Amount                int64
	PaymentMethodID       string // processor PaymentMethod ID (new card, test ID, or the processor ID of a saved one)
	SavedPaymentMethodID  string // billflow's saved method ID, when one was chosen
	SaveCard              bool
	OffSession            bool
	PayerName             string
	BillingZIP            string
	MethodLabel           string // "Visa •••• 4242", for summaries and receipts
	ReturnURL             string
	RequestedByPracticeID string
	// IdempotencyKey and Scope are the caller's Idempotency-Key and whose it
	// is; RequestHash is what the request asked. Postgres keeps them with
	// the payment attempt, so the same request in a later run (after a
	// continue-as-new) gets the first payment, never a second charge.
	IdempotencyKey string
	Scope          string
	RequestHash    string
	PayLinkID      string
}

// Fingerprint is what a pay request asks, for telling the same request
// from another under one Idempotency-Key.
func (in *PayInput) Fingerprint() string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("pay\x00%d\x00%s\x00%s\x00%t\x00%s\x00%s", in.Amount, in.PaymentMethodID,
		in.SavedPaymentMethodID, in.SaveCard, in.PayerName, in.BillingZIP)))
	return hex.EncodeToString(sum[:])
}

// PayResult is the pay Update's answer.
type PayResult struct {
	PaymentID      string
	Amount         int64
	Status         PaymentStatus
	FailureCode    string
	DeclineCode    string
	FailureMessage string
	NextActionURL  string
	Invoice        InvoiceSnapshot
}

// RefundInput is the refund Update's argument (practice only).
type RefundInput struct {
	Amount    int64
	PaymentID string // "" = the most recent payment with enough left
	Reason    string
}

// RefundResult is the refund Update's answer, and the refund-after-close
// workflow's result.
type RefundResult struct {
	RefundID  string
	PaymentID string
	Amount    int64
	Status    RefundStatus
	Invoice   InvoiceSnapshot
}

// PaymentEvent is a processor webhook delivered to the invoice as a signal.
type PaymentEvent struct {
	EventID        string
	Type           string // payment_intent.succeeded | payment_intent.payment_failed | payment_intent.processing | charge.refunded | charge.dispute.created | reconciled
	IntentID       string
	PaymentID      string
	FailureCode    string
	FailureMessage string
}

// ReminderDue is what the daily reminder run signals: "today is this date".
type ReminderDue struct {
	Today time.Time
}
