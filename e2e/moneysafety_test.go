package e2e

// Issue 20: money captured must be recorded exactly once, on every path.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdktemporal "go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/app"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// payUpdate sends the pay Update straight to the invoice's workflow, as the
// API does, but with an Update ID of the test's choosing.
func (s *stack) payUpdate(t *testing.T, invoiceID, updateID string, in *contract.PayInput) (*contract.PayResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if in.RequestHash == "" {
		in.RequestHash = in.Fingerprint()
	}
	h, err := s.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: contract.InvoiceWorkflowID(invoiceID),
		UpdateID: updateID, UpdateName: contract.PayUpdate, Args: []any{in}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return nil, err
	}
	var res contract.PayResult
	return &res, h.Get(ctx, &res)
}

// waitMail waits for an email of kind about an invoice to be caught.
func (s *stack) waitMail(t *testing.T, invoiceID string, kind mail.Kind) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, m := range s.mailsFor(invoiceID) {
			if kindOf(m) == string(kind) {
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "no %s email for %s", kind, invoiceID)
}

func (s *stack) ledgerBalance(t *testing.T, invoiceID string) int64 {
	t.Helper()
	b, err := s.Store.LedgerBalance(context.Background(), invoiceID)
	require.NoError(t, err)
	return b
}

// A payer name Postgres cannot store (a NUL byte) used to pass to the
// processor: the card was charged, the ledger write failed on every retry,
// and the money was never recorded. What the payer typed is now written
// before the charge, so it fails there and nothing is charged.
func TestTextPostgresRefusesIsRefusedBeforeCharging(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 12000, nil).str("id")
	_, err := s.payUpdate(t, id, "pay:nul-name", &contract.PayInput{Amount: 12000, PaymentMethodID: "pm_card_visa",
		PayerName: "Ada\x00Lovelace", IdempotencyKey: "nul-name", Scope: "test"})
	var appErr *sdktemporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, contract.ErrTypeInvalidPayment, appErr.Type())
	assert.Empty(t, s.intentsFor(id), "nothing reached the processor")
	assert.Equal(t, int64(12000), s.ledgerBalance(t, id))
	assert.Equal(t, "open", s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).str("status"))
}

// An Update ID deduplicates within one workflow run only; after a
// continue-as-new the same request is a new Update. The payment attempt in
// Postgres, keyed by the request's Idempotency-Key, makes it the same
// payment: one charge, the first answer. The key with another request is refused.
func TestSamePaymentRequestInALaterRunChargesOnce(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 20000, map[string]any{
		"partial_payments": map[string]any{"enabled": true, "max_installments": 3}}).str("id")
	in := func(amount int64) *contract.PayInput {
		return &contract.PayInput{Amount: amount, PaymentMethodID: "pm_card_visa", IdempotencyKey: "k-across-runs", Scope: "test"}
	}
	first, err := s.payUpdate(t, id, "pay:run-1", in(5000))
	require.NoError(t, err)
	require.Equal(t, "succeeded", string(first.Status))
	// The same request as a new Update, as after a continue-as-new.
	again, err := s.payUpdate(t, id, "pay:run-2", in(5000))
	require.NoError(t, err)
	assert.Equal(t, first.PaymentID, again.PaymentID)
	assert.Equal(t, "succeeded", string(again.Status))
	assert.Len(t, s.intentsFor(id), 1, "charged once")
	assert.Equal(t, int64(15000), s.ledgerBalance(t, id))
	assert.Equal(t, 1, s.countPayments(t, id))

	_, err = s.payUpdate(t, id, "pay:run-3", in(6000))
	var appErr *sdktemporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, contract.ErrTypeKeyReused, appErr.Type())
	assert.Len(t, s.intentsFor(id), 1)

	// The state Query shows the payment once.
	v, err := s.Temporal.QueryWorkflow(context.Background(), contract.InvoiceWorkflowID(id), "", contract.StateQuery)
	require.NoError(t, err)
	var st contract.InvoiceState
	require.NoError(t, v.Get(&st))
	assert.Len(t, st.Payments, 1)
	assert.Equal(t, int64(15000), st.AmountDue)
}

// The processor charges, then the answer is lost (a timeout after the
// charge): the retry asks the processor and records that charge, and the
// same key never charges again.
func TestUnknownOutcomeIsAskedNotChargedAgain(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	s.Sandbox.FailNext(1, "timeout_after")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 9000, "payment_method": "pm_card_visa"},
		"Idempotency-Key", "unknown-outcome")
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Len(t, s.intentsFor(id), 1)
	assert.Equal(t, int64(0), s.ledgerBalance(t, id))
	att, err := s.Store.GetPaymentAttempt(context.Background(), r.Body["payment"].(map[string]any)["id"].(string))
	require.NoError(t, err)
	assert.Equal(t, "succeeded", string(att.Status))
	var leases int
	require.NoError(t, s.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM client_payment_leases WHERE client_id=$1`, cl).Scan(&leases))
	assert.Zero(t, leases, "the lease goes back once the outcome is recorded")
}

// Voiding an invoice while a payment waits for 3-D Secure used to leave the
// PaymentIntent open: finishing the challenge captured money on a void
// invoice with no record. Void now cancels it first.
func TestVoidCancelsPendingThreeDSecure(t *testing.T) {
	s := getStack(t)
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 7000, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 7000, "payment_method": "pm_card_authenticationRequired"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	pis := s.intentsFor(id)
	require.Len(t, pis, 1)
	v := s.do(t, "POST", "/v1/invoices/"+id+"/void", s.Key, nil)
	require.Equal(t, 200, v.Status, string(v.Raw))
	assert.Equal(t, "void", v.str("status"))
	require.Error(t, s.Sandbox.CompleteAction(pis[0].ID, true), "a canceled intent cannot be finished")
	for _, pi := range s.intentsFor(id) {
		assert.NotEqual(t, "succeeded", string(pi.Status))
	}
	pays, err := s.Store.ListPayments(context.Background(), id)
	require.NoError(t, err)
	require.Len(t, pays, 1)
	assert.Equal(t, "failed", string(pays[0].Status))
}

// A charge that went through while its answer was lost for good (the
// worker died, the write never happened) is found by the reconciler: it
// asks the processor, records the payment once, and the invoice's workflow
// takes it in and emails the receipt. Nothing is charged.
func TestReconcilerRecordsALostCharge(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 6400, nil).str("id")
	inv, err := s.Store.GetInvoice(ctx, id)
	require.NoError(t, err)
	// The attempt as a charge that died after reaching the processor leaves it.
	payID := "pay_" + id[len("inv_"):] + "_lost"
	att, created, err := s.Store.BeginPaymentAttempt(ctx, &store.PaymentAttempt{ID: payID, Kind: "invoice", PracticeID: inv.PracticeID,
		ClientID: cl, InvoiceID: id, Scope: "test", IdempotencyKey: payID, RequestHash: "h", Amount: 6400, Currency: "usd",
		PaymentMethodID: "pm_card_visa", Description: inv.Number})
	require.NoError(t, err)
	require.True(t, created)
	require.NoError(t, s.Store.MarkAttemptCharging(ctx, att.ID, "", nil))
	res, err := app.Gateway(s.Config).Charge(ctx, payments.ChargeRequest{IdempotencyKey: att.ID, Amount: att.Amount,
		Currency: att.Currency, PaymentMethodID: att.PaymentMethodID, Description: att.Description,
		Metadata: map[string]string{"invoice_id": id, "client_id": cl, "payment_id": att.ID}})
	require.NoError(t, err)
	require.Equal(t, "succeeded", string(res.Status))
	before := len(s.intentsFor(id))
	// A new charge of this invoice waits for that one to be settled.
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 6400, "payment_method": "pm_card_visa"})
	require.Equal(t, 409, r.Status, string(r.Raw))
	assert.Contains(t, string(r.Raw), "still being confirmed")

	_, err = s.Store.Pool.Exec(ctx, `UPDATE payment_attempts SET updated_at = now() - interval '10 minutes' WHERE id=$1`, att.ID)
	require.NoError(t, err)
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reconcile-test-" + id, TaskQueue: contract.TaskQueue},
		workflows.ReconcileWorkflow, &contract.ReconcileInput{})
	require.NoError(t, err)
	var out contract.ReconcileResult
	require.NoError(t, run.Get(ctx, &out))
	assert.GreaterOrEqual(t, out.Settled, 1)
	s.waitStatus(t, id, "paid")
	assert.Equal(t, before, len(s.intentsFor(id)), "the reconciler never charges")
	assert.Equal(t, int64(0), s.ledgerBalance(t, id))
	s.waitMail(t, id, mail.KindPaymentReceived)
	// A second run finds nothing more to do for it.
	run, err = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reconcile-test2-" + id, TaskQueue: contract.TaskQueue},
		workflows.ReconcileWorkflow, &contract.ReconcileInput{AttemptID: att.ID})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, &out))
	assert.Zero(t, out.Settled)
	assert.Equal(t, 1, s.countPayments(t, id))
}

// Card testing: after too many declines in an hour a client's payers are
// locked out (429 too_many_declines) before anything reaches the processor;
// the practice's own key is not.
func TestDeclinesLockOutTheClientsPayers(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 5000, nil).str("id")
	tok := s.portalToken(t, s.Key, cl)
	// One real decline through the portal token, recorded for the practitioner.
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", tok, map[string]any{"amount": 5000, "payment_method": "pm_card_chargeDeclined"})
	require.Equal(t, 402, r.Status, string(r.Raw))
	declined, err := s.Store.DeclinedAttempts(ctx, id, 10)
	require.NoError(t, err)
	require.Len(t, declined, 1)
	assert.Equal(t, "card_declined", declined[0].FailureCode)
	// Nine more, as a card tester's run leaves them.
	_, err = s.Store.Pool.Exec(ctx, `INSERT INTO payment_attempts (id, kind, practice_id, client_id, invoice_id, target, scope,
 idempotency_key, request_hash, amount, currency, status, failure_code, declined)
 SELECT 'pay_ct_'||g||'_'||$2, 'invoice', practice_id, client_id, id, id, 'test', 'ct'||g, 'h', 5000, 'usd', 'failed', 'card_declined', true
 FROM invoices, generate_series(1,9) g WHERE id=$1`, id, cl)
	require.NoError(t, err)
	before := len(s.intentsFor(id))
	r = s.do(t, "POST", "/v1/invoices/"+id+"/payments", tok, map[string]any{"amount": 5000, "payment_method": "pm_card_visa"})
	require.Equal(t, 429, r.Status, string(r.Raw))
	assert.Equal(t, "too_many_declines", r.errCode())
	assert.NotEmpty(t, r.Header.Get("Retry-After"))
	assert.Equal(t, before, len(s.intentsFor(id)), "nothing reached the processor")
	r = s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 5000, "payment_method": "pm_card_visa"})
	require.Equal(t, 200, r.Status, "the practice's own key is not locked out: %s", r.Raw)
}

// A bank debit that settled at the processor with no webhook (never sent,
// or given up on) is found by the reconciler, which asks the processor and
// records it: the invoice is paid and the receipt goes out, nothing charged.
func TestReconcilerSettlesAPaymentWhoseWebhookNeverCame(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	s.Sandbox.DropWebhooks(true)
	t.Cleanup(func() { s.Sandbox.DropWebhooks(false) })
	id := s.newInvoice(t, s.Key, s.newClient(t, s.Key), 12500, nil).str("id")
	r := s.do(t, "POST", "/v1/invoices/"+id+"/payments", s.Key, map[string]any{"amount": 12500, "payment_method": "pm_usBankAccount"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	pay := r.Body["payment"].(map[string]any)
	require.Equal(t, "processing", pay["status"])
	require.Eventually(t, func() bool {
		pis := s.intentsFor(id)
		return len(pis) == 1 && pis[0].Status == "succeeded"
	}, 20*time.Second, 50*time.Millisecond, "the debit settles at the processor")
	assert.Equal(t, "processing", s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).str("status"), "no webhook said so")

	// Old enough that the reconciler no longer waits for its webhook.
	_, err := s.Store.Pool.Exec(ctx, `UPDATE payment_attempts SET updated_at = now() - interval '1 hour' WHERE id=$1`, pay["id"])
	require.NoError(t, err)
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reconcile-nowebhook-" + id, TaskQueue: contract.TaskQueue},
		workflows.ReconcileWorkflow, &contract.ReconcileInput{})
	require.NoError(t, err)
	var out contract.ReconcileResult
	require.NoError(t, run.Get(ctx, &out))
	assert.GreaterOrEqual(t, out.Settled, 1)
	got := s.waitStatus(t, id, "paid")
	assert.Equal(t, int64(12500), got.num("amount_paid"))
	assert.Len(t, s.intentsFor(id), 1, "the reconciler never charges")
	s.waitMail(t, id, mail.KindPaymentReceived)
}
