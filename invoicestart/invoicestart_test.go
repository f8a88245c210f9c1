package invoicestart_test

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/invoicestart"
	"github.com/billflow/billflow/store"
)

func TestBuild(t *testing.T) {
	due := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	practice := &store.Practice{ReminderOffsetsDays: []int32{-2, 5}, RefundWindowDays: 0}
	cl := &store.Client{Name: "Ada Lovelace"}
	inv := &store.Invoice{ID: "inv_1", Number: "INV-0001", PracticeID: "prac_1", ClientID: "cli_1", Currency: "usd",
		Total: 18000, AmountDue: 18000, DueDate: due, Status: contract.InvoiceOpen,
		PartialPayments: store.PartialPayments{Enabled: true, MinimumPercent: 25, MaxInstallments: 3}}

	opts, in := invoicestart.Build(practice, cl, inv)
	if opts.ID != contract.InvoiceWorkflowID("inv_1") || opts.TaskQueue != contract.TaskQueue {
		t.Fatalf("started as %s on %s", opts.ID, opts.TaskQueue)
	}
	if opts.WorkflowIDConflictPolicy != enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING ||
		opts.WorkflowIDReusePolicy != enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE {
		t.Fatal("a second start must join the running workflow and never restart an ended one")
	}
	if opts.StaticSummary != "INV-0001 · $180.00 due 2026-12-31" {
		t.Fatalf("summary %q (no client name unless the practice opts in)", opts.StaticSummary)
	}
	if got, ok := opts.TypedSearchAttributes.GetKeyword(contract.InvoiceStatusKey); !ok || got != "open" {
		t.Fatalf("InvoiceStatus %q", got)
	}
	if got, _ := opts.TypedSearchAttributes.GetInt64(contract.AmountDueKey); got != 18000 {
		t.Fatalf("AmountDue %d", got)
	}
	if in.InvoiceID != "inv_1" || in.Total != 18000 || len(in.ReminderOffsets) != 2 || in.ReminderOffsets[1] != 5 ||
		!in.Partial.Enabled || in.Partial.MinimumPercent != 25 || in.Partial.MaxInstallments != 3 {
		t.Fatalf("input %+v", in)
	}
	if in.RefundWindow != time.Second {
		t.Fatalf("a zero-day refund window closes right after payment, got %s", in.RefundWindow)
	}

	practice.ShowClientNamesInTemporal = true
	opts, _ = invoicestart.Build(practice, cl, inv)
	if !strings.HasSuffix(opts.StaticSummary, " · Ada Lovelace") {
		t.Fatalf("summary %q", opts.StaticSummary)
	}
}
