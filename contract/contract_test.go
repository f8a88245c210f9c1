package contract_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/billflow/billflow/contract"
)

func TestWorkflowIDsInvert(t *testing.T) {
	if id, ok := contract.InvoiceIDFromWorkflowID(contract.InvoiceWorkflowID("inv_x1")); !ok || id != "inv_x1" {
		t.Fatalf("invoice ID round trip: %q %v", id, ok)
	}
	for _, wid := range []string{"statement-run", "invoice-", "settle-att_1"} {
		if _, ok := contract.InvoiceIDFromWorkflowID(wid); ok {
			t.Errorf("%q is not an invoice workflow", wid)
		}
	}
	if id, ok := contract.AttemptIDFromSettleWorkflowID(contract.SettleWorkflowID("att_1")); !ok || id != "att_1" {
		t.Fatalf("attempt ID round trip: %q %v", id, ok)
	}
	if _, ok := contract.AttemptIDFromSettleWorkflowID("invoice-inv_1"); ok {
		t.Error("an invoice workflow is not a settle workflow")
	}
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := contract.DocumentWorkflowID("cli_1", contract.DocumentSuperbill, day, day.AddDate(0, 3, -1)); got != "document-cli_1-superbill-2026-01-01-2026-03-31" {
		t.Errorf("document workflow ID %q", got)
	}
}

func TestInvoiceStatusValid(t *testing.T) {
	for _, s := range contract.InvoiceStatuses {
		if !s.Valid() {
			t.Errorf("%s is not valid", s)
		}
	}
	for _, s := range []contract.InvoiceStatus{"", "draft", "Paid", "cancelled"} {
		if s.Valid() {
			t.Errorf("%q is valid", s)
		}
	}
	if got := contract.InvoiceStatusList(); got != "open, processing, partially_paid, paid, partially_refunded, refunded, void" {
		t.Errorf("list %q", got)
	}
}

// Typed statuses encode as the plain strings recorded histories hold.
func TestTypedStatusesEncodeAsStrings(t *testing.T) {
	b, err := json.Marshal(&contract.PayResult{PaymentID: "pay_1", Status: contract.PaymentSucceeded,
		Invoice: contract.InvoiceSnapshot{Status: contract.InvoicePaid}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"PaymentID":"pay_1","Amount":0,"Status":"succeeded","FailureCode":"","DeclineCode":"","FailureMessage":"","NextActionURL":"",` +
		`"Invoice":{"Status":"paid","AmountPaid":0,"AmountRefunded":0,"AmountDue":0,"AmountProcessing":0}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}
