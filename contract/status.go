package contract

// InvoiceStatus is an invoice's place in its lifecycle, as Postgres stores
// it and as the API and the InvoiceStatus search attribute show it.
type InvoiceStatus string

// The invoice statuses.
const (
	InvoiceDraft             InvoiceStatus = "draft"
	InvoiceOpen              InvoiceStatus = "open"
	InvoiceProcessing        InvoiceStatus = "processing"
	InvoicePartiallyPaid     InvoiceStatus = "partially_paid"
	InvoicePaid              InvoiceStatus = "paid"
	InvoicePartiallyRefunded InvoiceStatus = "partially_refunded"
	InvoiceRefunded          InvoiceStatus = "refunded"
	InvoiceVoid              InvoiceStatus = "void"
)

// InvoiceStatuses are the statuses an issued invoice can have (the API's
// status filter accepts these).
var InvoiceStatuses = []InvoiceStatus{InvoiceOpen, InvoiceProcessing, InvoicePartiallyPaid, InvoicePaid,
	InvoicePartiallyRefunded, InvoiceRefunded, InvoiceVoid}

// Valid is whether s is an issued invoice's status.
func (s InvoiceStatus) Valid() bool {
	for _, v := range InvoiceStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// InvoiceStatusList is InvoiceStatuses for a message: "open, processing, ...".
func InvoiceStatusList() string {
	list := ""
	for i, s := range InvoiceStatuses {
		if i > 0 {
			list += ", "
		}
		list += string(s)
	}
	return list
}

// Settled is whether the invoice was paid off: paid, or refunded since.
func (s InvoiceStatus) Settled() bool {
	return s == InvoicePaid || s == InvoicePartiallyRefunded || s == InvoiceRefunded
}

// Remindable is whether an invoice in status s still has a balance to chase.
func (s InvoiceStatus) Remindable() bool { return s == InvoiceOpen || s == InvoicePartiallyPaid }

// PaymentStatus is a payment's (and a charge's) outcome as billflow sees
// it; the processor's finer statuses fold into these four.
type PaymentStatus string

// The payment statuses.
const (
	// PaymentSucceeded: the money is captured.
	PaymentSucceeded PaymentStatus = "succeeded"
	// PaymentProcessing: the outcome arrives later by webhook (bank debits).
	PaymentProcessing PaymentStatus = "processing"
	// PaymentRequiresAction: the payer must finish 3-D Secure.
	PaymentRequiresAction PaymentStatus = "requires_action"
	// PaymentFailed: no money moved; the failure code says why.
	PaymentFailed PaymentStatus = "failed"
)

// Final is whether the payment's outcome can no longer change.
func (s PaymentStatus) Final() bool { return s == PaymentSucceeded || s == PaymentFailed }

// Taking is whether the payment took money or is taking it.
func (s PaymentStatus) Taking() bool { return s == PaymentSucceeded || s == PaymentProcessing }

// RefundStatus is a refund's status at the processor and in Postgres.
type RefundStatus string

// The refund statuses (the processor's; billflow records succeeded ones).
const (
	RefundSucceeded      RefundStatus = "succeeded"
	RefundPending        RefundStatus = "pending"
	RefundFailed         RefundStatus = "failed"
	RefundCanceled       RefundStatus = "canceled"
	RefundRequiresAction RefundStatus = "requires_action"
)

// DocumentKind names a client document made on demand.
type DocumentKind string

// The on-demand document kinds.
const (
	DocumentStatement DocumentKind = "statement"
	DocumentSuperbill DocumentKind = "superbill"
)

// NoticeKind is the kind of a client notification an invoice workflow owes.
type NoticeKind string

// The notice kinds.
const (
	NoticePayment       NoticeKind = "payment"
	NoticePaymentFailed NoticeKind = "payment_failed"
	NoticeRefund        NoticeKind = "refund"
	NoticeReminder      NoticeKind = "reminder"
)
