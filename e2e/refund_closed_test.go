package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
)

// Refund an overpayment after the invoice's lifecycle (refund window) ended.
func TestRefundAfterWorkflowClosed(t *testing.T) {
	s := getStack(t)
	id, key := s.closedPaidInvoice(t, 9000)

	big := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", key, map[string]any{"amount": 9001})
	assert.Equal(t, 400, big.Status, string(big.Raw))
	r := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", key, map[string]any{"amount": 9000, "reason": "duplicate"}, "Idempotency-Key", "late-refund")
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "refunded", r.Body["invoice"].(map[string]any)["status"])
	again := s.do(t, "POST", "/v1/invoices/"+id+"/refunds", key, map[string]any{"amount": 9000, "reason": "duplicate"}, "Idempotency-Key", "late-refund")
	require.Equal(t, 200, again.Status, string(again.Raw))
	assert.Equal(t, r.Body["refund"].(map[string]any)["id"], again.Body["refund"].(map[string]any)["id"])
	refunds := s.do(t, "GET", "/v1/invoices/"+id, key, nil).Body["refunds"].([]any)
	assert.Len(t, refunds, 1, "a retried late refund refunds once")
}

// closedPaidInvoice makes a practice whose lifecycle ends right after payment
// (refund window 0) and an invoice of amount in it, pays it in full and waits
// until its workflow has completed. It gives the invoice's ID and the
// practice's API key.
func (s *stack) closedPaidInvoice(t *testing.T, amount int64) (id, key string) {
	t.Helper()
	ctx := context.Background()
	p, key, err := s.Store.CreatePractice(ctx, store.NewPractice{Name: "Quick Close Clinic", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	zero := int32(0)
	_, err = s.Store.UpdatePracticeSettings(ctx, p.ID, store.PracticeSettings{RefundWindowDays: &zero})
	require.NoError(t, err)
	id = s.newInvoice(t, key, s.newClient(t, key), amount, nil).str("id")
	require.Equal(t, 200, s.do(t, "POST", "/v1/invoices/"+id+"/payments", key, map[string]any{"amount": amount, "payment_method": "pm_card_visa"}).Status)
	s.waitCompleted(t, contract.InvoiceWorkflowID(id), 30*time.Second)
	return id, key
}

// waitCompleted waits, at most within, until workflow wfID has completed.
func (s *stack) waitCompleted(t *testing.T, wfID string, within time.Duration, msgAndArgs ...any) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		d, err := s.Temporal.DescribeWorkflowExecution(context.Background(), wfID, "")
		if assert.NoError(c, err) {
			assert.Equal(c, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, d.GetWorkflowExecutionInfo().GetStatus(), msgAndArgs...)
		}
	}, within, 200*time.Millisecond)
}
