// Package contract is billflow's contract between the API, the workflows and
// the activities: task queues, workflow IDs and type names, Update, Signal
// and Query names with their typed payloads, typed statuses, error types and
// search attributes. It imports no billflow package, so the API can start,
// update and query workflows without linking the workflow or activity code,
// and every status value is spelled out here and nowhere else.
package contract

import (
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
)

// TaskQueue is where every billflow workflow and activity runs.
const TaskQueue = "billing"

// DocumentsTaskQueue carries the activities that print PDFs in Chromium
// (invoice, receipt, statement, superbill, with their emails). A worker
// takes only as many as its renderer can print at once, so a burst of
// documents waits here in the server's queue instead of crowding out
// charges and reminders on TaskQueue or failing "busy" and backing off.
const DocumentsTaskQueue = "billing-documents"

// Workflow type names, as the worker registers them and clients start them.
// They are the workflow functions' names, which recorded histories carry.
const (
	InvoiceWorkflowType          = "InvoiceWorkflow"
	ReminderRunWorkflowType      = "ReminderRunWorkflow"
	BalancePaymentWorkflowType   = "BalancePaymentWorkflow"
	RefundAfterCloseWorkflowType = "RefundAfterCloseWorkflow"
	StatementRunWorkflowType     = "StatementRunWorkflow"
	DocumentWorkflowType         = "DocumentWorkflow"
	ReconcileWorkflowType        = "ReconcileWorkflow"
)

// WorkflowTypes lists every workflow type name, for registration checks.
var WorkflowTypes = []string{InvoiceWorkflowType, ReminderRunWorkflowType, BalancePaymentWorkflowType,
	RefundAfterCloseWorkflowType, StatementRunWorkflowType, DocumentWorkflowType, ReconcileWorkflowType}

// InvoiceWorkflowID is the one workflow per invoice.
func InvoiceWorkflowID(invoiceID string) string { return "invoice-" + invoiceID }

// InvoiceIDFromWorkflowID inverts InvoiceWorkflowID.
func InvoiceIDFromWorkflowID(workflowID string) (string, bool) {
	id, ok := strings.CutPrefix(workflowID, "invoice-")
	return id, ok && id != ""
}

// BalancePaymentWorkflowID is one balance payment's workflow, per client and
// Idempotency-Key.
func BalancePaymentWorkflowID(clientID, key string) string { return "balance-" + clientID + "-" + key }

// SettleWorkflowID is the reconcile workflow for one payment attempt (a
// webhook for a charge billflow never recorded, or for a closed invoice).
func SettleWorkflowID(attemptID string) string { return "settle-" + attemptID }

// AttemptIDFromSettleWorkflowID inverts SettleWorkflowID.
func AttemptIDFromSettleWorkflowID(workflowID string) (string, bool) {
	id, ok := strings.CutPrefix(workflowID, "settle-")
	return id, ok && id != ""
}

// DocumentWorkflowID is one on-demand render per client, kind and period, so
// a double-clicked request joins the render already running.
func DocumentWorkflowID(clientID string, kind DocumentKind, from, to time.Time) string {
	return "document-" + clientID + "-" + string(kind) + "-" + from.Format(time.DateOnly) + "-" + to.Format(time.DateOnly)
}

// Workflow IDs the Schedules start (Temporal appends the scheduled time).
const (
	ReminderRunID  = "reminder-run"
	StatementRunID = "statement-run"
	ReconcileRunID = "payment-reconcile"
)

// Update, Signal and Query names of the invoice workflow.
const (
	PayUpdate            = "pay"
	RefundUpdate         = "refund"
	VoidUpdate           = "void"
	ResendUpdate         = "resend"
	StateQuery           = "state"
	PaymentEventSignal   = "payment-event"
	ReminderSignal       = "reminder-due"
	PaymentAppliedSignal = "payment-applied"
)

// RecordedUpdate is the balance-payment and refund-after-close workflows'
// Update: it answers as soon as the money is recorded (the charge or the
// refund with its ledger entries), with the workflow's result, while the
// emails that follow are still going out. A request waits on it, not on the
// workflow's end.
const RecordedUpdate = "recorded"

// StatementRunProgressQuery answers a running statement run's progress.
const StatementRunProgressQuery = "progress"

// Search attributes shown and filtered in the Temporal UI. They hold IDs,
// statuses, amounts and dates only (see DESIGN.md "Privacy").
var (
	InvoiceStatusKey = temporal.NewSearchAttributeKeyKeyword("InvoiceStatus")
	PracticeIDKey    = temporal.NewSearchAttributeKeyKeyword("PracticeId")
	ClientIDKey      = temporal.NewSearchAttributeKeyKeyword("ClientId")
	AmountDueKey     = temporal.NewSearchAttributeKeyInt64("AmountDue")
	DueDateKey       = temporal.NewSearchAttributeKeyTime("DueDate")
)

// Error types of business failures: non-retryable, shown to callers.
const (
	ErrTypeInvalidPayment = "InvalidPayment"
	ErrTypeInvalidRefund  = "InvalidRefund"
	ErrTypeInvalidState   = "InvalidState"
	ErrTypeCardDeclined   = "CardDeclined"
	ErrTypeGateway        = "GatewayRejected"
	// ErrTypeKeyReused: the Idempotency-Key already paid for something else.
	ErrTypeKeyReused = "IdempotencyKeyReused"
	// ErrTypeBalanceChanged: the client's balance moved since they reviewed it.
	ErrTypeBalanceChanged = "BalanceChanged"
	// ErrTypeNothingToRender: a superbill asked for a period without services.
	ErrTypeNothingToRender = "NothingToRender"
	// ErrTypeEmailRejected: the SMTP server refused an email for good.
	ErrTypeEmailRejected = "EmailRejected"
)

// SettleChargingAfter is how old a charge with no recorded answer is before
// it is settled from the processor rather than left to its own activity
// (past the charge activity's 2-minute start-to-close limit). A webhook for
// such a charge starts its settle workflow.
const SettleChargingAfter = 3 * time.Minute
