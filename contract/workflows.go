package contract

import "time"

// Allocation is the part of a balance payment applied to one invoice.
type Allocation struct {
	InvoiceID string
	PaymentID string
	Amount    int64
}

// BalancePaymentInput pays a client's entire balance in one charge.
type BalancePaymentInput struct {
	BalancePaymentID     string
	PracticeID           string
	ClientID             string
	Currency             string
	Total                int64
	InvoiceIDs           []string
	PaymentMethodID      string
	SavedPaymentMethodID string
	SaveCard             bool
	PayerName            string
	BillingZIP           string
	MethodLabel          string
	// ReturnURL is where 3-D Secure sends the payer back.
	ReturnURL string
	// Scope, IdempotencyKey and RequestHash name the request (PayInput).
	Scope          string
	IdempotencyKey string
	RequestHash    string
}

// BalancePaymentResult is the charge and where it went.
type BalancePaymentResult struct {
	BalancePaymentID string
	Status           PaymentStatus
	Amount           int64
	Currency         string
	FailureCode      string
	DeclineCode      string
	FailureMessage   string
	NextActionURL    string
	Allocations      []Allocation
}

// RefundAfterCloseInput refunds a payment of an invoice whose workflow has
// ended (its refund window passed, or it was reset).
type RefundAfterCloseInput struct {
	InvoiceID string
	PaymentID string
	RefundID  string
	Amount    int64
	Currency  string
	Reason    string
}

// ReconcileInput asks the reconciler to settle one attempt (AttemptID), or
// a page of every attempt left unsettled too long.
type ReconcileInput struct {
	AttemptID string
	Limit     int // page size; default 100
}

// ReconcileResult counts what a reconcile run did.
type ReconcileResult struct {
	Checked int
	Settled int
	Errors  int
	// InvoicesStarted counts invoice workflows this run started because
	// their API request never did.
	InvoicesStarted int
}

// ReminderRunInput is the daily run's argument; a zero Today means the
// workflow's own date.
type ReminderRunInput struct {
	Today   time.Time
	AfterID string // resume cursor when continuing as new
	Pages   int
	// TimeZone is the practice's (its namespace's Schedule passes it):
	// "today" is the practice's calendar date, not UTC's. "" = UTC.
	TimeZone string `json:",omitempty"`
}

// ReminderRunResult counts what the run did.
type ReminderRunResult struct {
	Signalled int
}

// StatementRunInput is the statement run's argument. The Schedule passes an
// empty one; continue-as-new carries the month, the cursor and the totals.
type StatementRunInput struct {
	Month         string // "2026-10"; "" = the month before workflow.Now (in TimeZone)
	AfterClientID string // resume cursor: every client up to it is done
	Totals        *StatementRunResult

	PageSize      int // 0 = the workflow's default (100)
	ContinueAfter int // 0 = the workflow's default (500)
	Parallelism   int // 0 = the workflow's default (8)
	// TimeZone is the practice's (its namespace's Schedule passes it), so
	// "last month" is the practice's. "" = UTC.
	TimeZone string `json:",omitempty"`
}

// StatementRunResult counts what the run did, over all its runs.
type StatementRunResult struct {
	Month       string
	Clients     int
	Statements  int // rendered (and stored once)
	Emailed     int
	AlreadySent int // statements emailed by an earlier run, passed over
	Failed      int
	Cursor      string // last client whose page is done
}

// DocumentInput asks for one client document over a period (dates, UTC midnight).
type DocumentInput struct {
	PracticeID string
	ClientID   string
	Kind       DocumentKind
	From, To   time.Time
}

// DocumentResult names the stored document.
type DocumentResult struct {
	DocumentID string
}
