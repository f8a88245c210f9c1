package e2e

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/workflows"
)

// failingStarts is the stack's Temporal client with its next n invoice
// workflow starts refused, as when the frontend is briefly unreachable
// (fault injection).
type failingStarts struct {
	client.Client
	n atomic.Int32
}

func (f *failingStarts) ExecuteWorkflow(ctx context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	if strings.HasPrefix(o.ID, "invoice-") && f.n.Add(-1) >= 0 {
		return nil, serviceerror.NewUnavailable("injected: temporal frontend unavailable")
	}
	return f.Client.ExecuteWorkflow(ctx, o, wf, args...)
}

// faultAPI is the stack with a second API whose next n invoice workflow
// starts fail.
func (s *stack) faultAPI(t *testing.T, n int32) *stack {
	tc := &failingStarts{Client: s.Temporal}
	tc.n.Store(n)
	return s.withAPI(t, func(d *api.Deps) { d.Temporal = tc })
}

func invoiceBody(clientID string, amount int64) map[string]any {
	today := time.Now().UTC()
	return map[string]any{"client_id": clientID, "due_date": day(today.AddDate(0, 0, 14)),
		"items": []map[string]any{{"service_date": day(today), "description": "Individual therapy, 53 min", "unit_amount": amount}}}
}

// issuedMails counts the invoice emails sent for one invoice.
func (s *stack) issuedMails(id string) int {
	n := 0
	for _, m := range s.mailsFor(id) {
		if kindOf(m) == string(mail.KindInvoiceIssued) {
			n++
		}
	}
	return n
}

func (s *stack) workflowRunning(t *testing.T, id string) bool {
	desc, err := s.Temporal.DescribeWorkflowExecution(context.Background(), contract.InvoiceWorkflowID(id), "")
	var nf *serviceerror.NotFound
	if err != nil && assert.ErrorAs(t, err, &nf) {
		return false
	}
	require.NoError(t, err)
	return desc.GetWorkflowExecutionInfo().GetStatus().String() == "Running"
}

// An invoice whose workflow start failed is answered 503; the retry with
// the same Idempotency-Key answers 201 with that same invoice (ID and
// number) and starts its workflow. It used to write a second invoice with
// the next number.
func TestInvoiceCreateRetriedAfterFailedStart(t *testing.T) {
	s := getStack(t)
	pid, key := s.idemPractice(t, "Atomic Create")
	cl := s.newClient(t, key)
	f := s.faultAPI(t, 1)
	body := invoiceBody(cl, 7200)

	first := f.do(t, "POST", "/v1/invoices", key, body, "Idempotency-Key", "create-once")
	require.Equal(t, 503, first.Status, string(first.Raw))
	var writtenID, writtenNumber string
	require.NoError(t, s.Store.Pool.QueryRow(context.Background(), `SELECT id, number FROM invoices WHERE practice_id=$1`, pid).
		Scan(&writtenID, &writtenNumber), "the row was written before the start failed")

	retry := f.do(t, "POST", "/v1/invoices", key, body, "Idempotency-Key", "create-once")
	require.Equal(t, 201, retry.Status, string(retry.Raw))
	assert.Empty(t, retry.Header.Get("Idempotent-Replayed"), "the 503 was not kept: the retry ran")
	assert.Equal(t, writtenID, retry.str("id"))
	assert.Equal(t, writtenNumber, retry.str("number"))
	assert.Equal(t, 1, s.count(t, `SELECT count(*) FROM invoices WHERE practice_id=$1`, pid), "one invoice for the key")
	assert.Equal(t, 1, s.count(t, `SELECT count(*) FROM invoices WHERE id=$1 AND workflow_started_at IS NOT NULL`, writtenID))
	assert.True(t, s.workflowRunning(t, writtenID))
	require.Eventually(t, func() bool { return s.issuedMails(writtenID) == 1 }, 30*time.Second, 100*time.Millisecond,
		"the invoice email goes out")

	// The 201 is kept now: the same request again is its replay.
	requireReplay(t, retry, s.do(t, "POST", "/v1/invoices", key, body, "Idempotency-Key", "create-once"))
	assert.Equal(t, 1, s.issuedMails(writtenID))
}

// An invoice whose request wrote the row but never started the workflow,
// and was never retried, gets its workflow from the reconciler, and its
// email once.
func TestReconcilerStartsAnOrphanedInvoice(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	pid, key := s.idemPractice(t, "Orphaned Invoice")
	cl := s.newClient(t, key)
	r := s.faultAPI(t, 1).do(t, "POST", "/v1/invoices", key, invoiceBody(cl, 6100), "Idempotency-Key", "never-retried")
	require.Equal(t, 503, r.Status, string(r.Raw))
	var id string
	require.NoError(t, s.Store.Pool.QueryRow(ctx, `SELECT id FROM invoices WHERE practice_id=$1`, pid).Scan(&id))
	assert.False(t, s.workflowRunning(t, id), "the start failed")

	run := func(name string) *contract.ReconcileResult {
		run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: name + id, TaskQueue: contract.TaskQueue},
			workflows.ReconcileWorkflow, &contract.ReconcileInput{})
		require.NoError(t, err)
		var out contract.ReconcileResult
		require.NoError(t, run.Get(ctx, &out))
		return &out
	}
	// Too young: its request may still be starting it.
	run("reconcile-orphan-young-")
	assert.False(t, s.workflowRunning(t, id))

	_, err := s.Store.Pool.Exec(ctx, `UPDATE invoices SET created_at = now() - interval '10 minutes' WHERE id=$1`, id)
	require.NoError(t, err)
	out := run("reconcile-orphan-")
	assert.GreaterOrEqual(t, out.InvoicesStarted, 1)
	assert.True(t, s.workflowRunning(t, id))
	assert.Equal(t, 1, s.count(t, `SELECT count(*) FROM invoices WHERE id=$1 AND workflow_started_at IS NOT NULL`, id))
	require.Eventually(t, func() bool { return s.issuedMails(id) == 1 }, 30*time.Second, 100*time.Millisecond,
		"the invoice email goes out")

	// A second run leaves it alone; the email went out once.
	run("reconcile-orphan-again-")
	assert.Never(t, func() bool { return s.issuedMails(id) > 1 }, time.Second, 100*time.Millisecond)
	got := s.do(t, "GET", "/v1/invoices/"+id, key, nil)
	require.Equal(t, 200, got.Status, string(got.Raw))
	assert.Equal(t, "open", got.str("status"))
}
