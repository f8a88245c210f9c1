// Package workflows holds billflow's deterministic workflow code. Its
// contract with the outside (task queues, workflow IDs and type names,
// Update/Signal/Query names, payloads, statuses, error types, search
// attributes) lives in package contract; the names below are that
// contract's, kept short for the workflow code and its tests. It does no
// I/O and never reads the clock except through workflow.Now.
package workflows

import (
	"github.com/billflow/billflow/contract"
)

// Task queues, names and keys of the contract.
const (
	TaskQueue            = contract.TaskQueue
	DocumentsTaskQueue   = contract.DocumentsTaskQueue
	PayUpdate            = contract.PayUpdate
	RefundUpdate         = contract.RefundUpdate
	VoidUpdate           = contract.VoidUpdate
	ResendUpdate         = contract.ResendUpdate
	StateQuery           = contract.StateQuery
	PaymentEventSignal   = contract.PaymentEventSignal
	ReminderSignal       = contract.ReminderSignal
	PaymentAppliedSignal = contract.PaymentAppliedSignal
	RecordedUpdate       = contract.RecordedUpdate

	ErrTypeInvalidPayment  = contract.ErrTypeInvalidPayment
	ErrTypeInvalidRefund   = contract.ErrTypeInvalidRefund
	ErrTypeInvalidState    = contract.ErrTypeInvalidState
	ErrTypeCardDeclined    = contract.ErrTypeCardDeclined
	ErrTypeGateway         = contract.ErrTypeGateway
	ErrTypeKeyReused       = contract.ErrTypeKeyReused
	ErrTypeBalanceChanged  = contract.ErrTypeBalanceChanged
	ErrTypeNothingToRender = contract.ErrTypeNothingToRender
)

// Search attributes (contract).
var (
	InvoiceStatusKey = contract.InvoiceStatusKey
	PracticeIDKey    = contract.PracticeIDKey
	ClientIDKey      = contract.ClientIDKey
	AmountDueKey     = contract.AmountDueKey
	DueDateKey       = contract.DueDateKey
)

// InvoiceWorkflowID is contract.InvoiceWorkflowID.
func InvoiceWorkflowID(invoiceID string) string { return contract.InvoiceWorkflowID(invoiceID) }

// Payload types of the contract.
type (
	PartialTerms          = contract.PartialTerms
	InvoiceInput          = contract.InvoiceInput
	PaymentState          = contract.PaymentState
	InvoiceState          = contract.InvoiceState
	InvoiceSnapshot       = contract.InvoiceSnapshot
	ResendResult          = contract.ResendResult
	Notice                = contract.Notice
	PaymentApplied        = contract.PaymentApplied
	PayInput              = contract.PayInput
	PayResult             = contract.PayResult
	RefundInput           = contract.RefundInput
	RefundResult          = contract.RefundResult
	PaymentEvent          = contract.PaymentEvent
	ReminderDue           = contract.ReminderDue
	BalancePaymentInput   = contract.BalancePaymentInput
	BalancePaymentResult  = contract.BalancePaymentResult
	RefundAfterCloseInput = contract.RefundAfterCloseInput
	ReconcileInput        = contract.ReconcileInput
	ReconcileResult       = contract.ReconcileResult
	ReminderRunInput      = contract.ReminderRunInput
	ReminderRunResult     = contract.ReminderRunResult
	StatementRunInput     = contract.StatementRunInput
	StatementRunResult    = contract.StatementRunResult
	DocumentInput         = contract.DocumentInput
	DocumentResult        = contract.DocumentResult
)
