package api

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
)

// stripeWebhook verifies the signature, processes each event ID once, and
// delivers payment events to the invoice workflows as signals.
func (h *handlers) stripeWebhook(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody))
	if err != nil {
		badRequest(c, "body_too_large", "webhook body too large", "")
		return
	}
	if h.Config.StripeWebhookSecret == "" {
		apiError(c, http.StatusBadRequest, "invalid_request_error", "webhook_not_configured", "webhooks are not configured", "")
		return
	}
	ev, err := payments.VerifyWebhook(body, c.GetHeader("Stripe-Signature"), h.Config.StripeWebhookSecret, 5*time.Minute)
	if err != nil {
		badRequest(c, "invalid_signature", "the Stripe-Signature header is missing, invalid or too old", "Stripe-Signature")
		return
	}
	ctx := c.Request.Context()
	seen, err := h.Store.WebhookEventSeen(ctx, ev.ID)
	if err != nil {
		h.unavailable(c, "webhook seen", err)
		return
	}
	if seen {
		c.JSON(http.StatusOK, gin.H{"received": true, "duplicate": true})
		return
	}
	// Delivered first, marked after: a crash in between makes Stripe send it
	// again, and delivering twice changes nothing (each workflow and the
	// reconciler take an outcome once).
	if err := h.deliverEvent(c, ev); err != nil {
		h.unavailable(c, "deliver webhook", err)
		return
	}
	if _, err := h.Store.MarkWebhookEvent(ctx, ev.ID, ev.Type); err != nil {
		h.unavailable(c, "mark webhook", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"received": true})
}

func (h *handlers) deliverEvent(c *gin.Context, ev *payments.Event) error {
	switch ev.Type {
	case "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.processing", "payment_intent.canceled",
		"charge.refunded", "charge.dispute.created":
	default:
		return nil
	}
	if ev.PaymentIntentID == "" {
		return nil
	}
	ctx := c.Request.Context()
	pays, err := h.Store.PaymentsByIntent(ctx, ev.PaymentIntentID)
	if err != nil {
		return err
	}
	if len(pays) == 0 {
		return h.settleUnrecorded(c, ev)
	}
	for _, p := range pays {
		if settled(p, ev.Type) {
			continue
		}
		sig := &contract.PaymentEvent{EventID: ev.ID, Type: ev.Type, IntentID: ev.PaymentIntentID, PaymentID: p.ID,
			FailureCode: ev.FailureCode, FailureMessage: ev.FailureMessage}
		tc, err := h.temporalFor(ctx, p.PracticeID)
		if err != nil {
			return err
		}
		err = tc.SignalWorkflow(ctx, contract.InvoiceWorkflowID(p.InvoiceID), "", contract.PaymentEventSignal, sig)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			// The invoice's lifecycle has ended (void, or past its refund
			// window): the payment is settled from the processor and
			// recorded all the same, a credit to refund if the invoice
			// owes nothing.
			err = h.startSettle(c, p.PracticeID, firstNonEmpty(p.BalancePaymentID, p.ID))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// settleUnrecorded handles an event for a PaymentIntent no payment records:
// a charge whose answer billflow never recorded (its worker died, its
// write failed). One whose charge activity may still be recording it is
// left to that activity (and the reconciler after it); an older one is
// settled now.
func (h *handlers) settleUnrecorded(c *gin.Context, ev *payments.Event) error {
	ctx := c.Request.Context()
	att, err := h.Store.AttemptByIntent(ctx, ev.PaymentIntentID)
	if errors.Is(err, store.ErrNotFound) {
		id := firstNonEmpty(ev.Metadata["balance_payment_id"], ev.Metadata["payment_id"])
		if id == "" {
			return nil
		}
		att, err = h.Store.GetPaymentAttempt(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil // not billflow's
	}
	if err != nil {
		return err
	}
	if att.Status != store.AttemptCharging || time.Since(att.UpdatedAt) < contract.SettleChargingAfter {
		return nil
	}
	return h.startSettle(c, att.PracticeID, att.ID)
}

// startSettle starts the reconcile workflow for one payment attempt.
func (h *handlers) startSettle(c *gin.Context, practiceID, attemptID string) error {
	tc, err := h.temporalFor(c.Request.Context(), practiceID)
	if err != nil {
		return err
	}
	_, err = tc.ExecuteWorkflow(c.Request.Context(), client.StartWorkflowOptions{
		ID: contract.SettleWorkflowID(attemptID), TaskQueue: contract.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "Settle payment " + attemptID + " from the processor",
	}, contract.ReconcileWorkflowType, &contract.ReconcileInput{AttemptID: attemptID})
	return err
}

// settled reports whether an event would change nothing for the payment:
// its outcome is already recorded (billflow records a charge's outcome as the
// processor answers it, before the invoice's workflow takes it in), and only
// a dispute matters after that. Skipping these spares the invoice's workflow
// a task for every payment's payment_intent.succeeded.
func settled(p *store.Payment, eventType string) bool {
	return eventType != "charge.dispute.created" && eventType != "payment_intent.canceled" && (p.Status == contract.PaymentSucceeded || p.Status == contract.PaymentFailed)
}
