// Package invoicestart builds the start of an invoice's workflow, the one
// way the API (when it creates the invoice) and the reconciler (for an
// invoice whose start never went through) start it.
package invoicestart

import (
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/store"
)

// WorkflowType is the type name to start with the options and input Build returns.
const WorkflowType = contract.InvoiceWorkflowType

// Build returns invoice-<id>'s start options, with its search attributes
// and a static summary, and its input. Starting it again is a no-op
// (USE_EXISTING), and a workflow that has ended is never started over
// (REJECT_DUPLICATE).
func Build(practice *store.Practice, cl *store.Client, inv *store.Invoice) (client.StartWorkflowOptions, *contract.InvoiceInput) {
	offsets := make([]int, len(practice.ReminderOffsetsDays))
	for i, o := range practice.ReminderOffsetsDays {
		offsets[i] = int(o)
	}
	in := &contract.InvoiceInput{
		InvoiceID: inv.ID, Number: inv.Number, PracticeID: inv.PracticeID, ClientID: inv.ClientID, Currency: inv.Currency,
		Total: inv.Total, DueDate: inv.DueDate, IssueDate: inv.IssueDate, ReminderOffsets: offsets,
		// A zero-day window closes the lifecycle right after payment (zero itself means "default").
		RefundWindow: max(time.Duration(practice.RefundWindowDays)*24*time.Hour, time.Second),
		Partial: contract.PartialTerms{Enabled: inv.PartialPayments.Enabled, MinimumAmount: inv.PartialPayments.MinimumAmount,
			MinimumPercent: int64(inv.PartialPayments.MinimumPercent), MaxInstallments: int(inv.PartialPayments.MaxInstallments)},
	}
	summary := fmt.Sprintf("%s · %s due %s", inv.Number, money.Format(inv.Total, inv.Currency), inv.DueDate.Format(time.DateOnly))
	if practice.ShowClientNamesInTemporal {
		summary += " · " + cl.Name
	}
	return client.StartWorkflowOptions{
		ID:                       contract.InvoiceWorkflowID(inv.ID),
		TaskQueue:                contract.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:            summary,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.InvoiceStatusKey.ValueSet(string(inv.Status)),
			contract.PracticeIDKey.ValueSet(inv.PracticeID),
			contract.ClientIDKey.ValueSet(inv.ClientID),
			contract.AmountDueKey.ValueSet(inv.AmountDue),
			contract.DueDateKey.ValueSet(inv.DueDate),
		),
	}, in
}
