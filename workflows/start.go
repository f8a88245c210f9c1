package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/store"
)

// InvoiceStart is how an invoice's workflow is started, by the API when it
// creates the invoice and by the reconciler for an invoice whose start never
// went through: invoice-<id> with its search attributes and a static
// summary. Starting it again is a no-op (USE_EXISTING), and a workflow that
// has ended is never started over (REJECT_DUPLICATE).
func InvoiceStart(practice *store.Practice, cl *store.Client, inv *store.Invoice) (client.StartWorkflowOptions, *InvoiceInput) {
	offsets := make([]int, len(practice.ReminderOffsetsDays))
	for i, o := range practice.ReminderOffsetsDays {
		offsets[i] = int(o)
	}
	in := &InvoiceInput{
		InvoiceID: inv.ID, Number: inv.Number, PracticeID: inv.PracticeID, ClientID: inv.ClientID, Currency: inv.Currency,
		Total: inv.Total, DueDate: inv.DueDate, IssueDate: inv.IssueDate, ReminderOffsets: offsets,
		// A zero-day window closes the lifecycle right after payment (zero itself means "default").
		RefundWindow: max(time.Duration(practice.RefundWindowDays)*24*time.Hour, time.Second),
		Partial: PartialTerms{Enabled: inv.PartialPayments.Enabled, MinimumAmount: inv.PartialPayments.MinimumAmount,
			MinimumPercent: int64(inv.PartialPayments.MinimumPercent), MaxInstallments: int(inv.PartialPayments.MaxInstallments)},
	}
	summary := fmt.Sprintf("%s · %s due %s", inv.Number, money.Format(inv.Total, inv.Currency), inv.DueDate.Format(time.DateOnly))
	if practice.ShowClientNamesInTemporal {
		summary += " · " + cl.Name
	}
	return client.StartWorkflowOptions{
		ID:                       InvoiceWorkflowID(inv.ID),
		TaskQueue:                TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:            summary,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			InvoiceStatusKey.ValueSet(string(inv.Status)),
			PracticeIDKey.ValueSet(inv.PracticeID),
			ClientIDKey.ValueSet(inv.ClientID),
			AmountDueKey.ValueSet(inv.AmountDue),
			DueDateKey.ValueSet(inv.DueDate),
		),
	}, in
}
