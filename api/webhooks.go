package api

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
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
	fresh, err := h.Store.MarkWebhookEvent(ctx, ev.ID, ev.Type)
	if err != nil {
		h.unavailable(c, "mark webhook", err)
		return
	}
	if !fresh {
		c.JSON(http.StatusOK, gin.H{"received": true, "duplicate": true})
		return
	}
	if err := h.deliverEvent(c, ev); err != nil {
		// Forget the event so Stripe's retry is processed.
		_ = h.Store.UnmarkWebhookEvent(ctx, ev.ID)
		h.unavailable(c, "deliver webhook", err)
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
	pays, err := h.Store.PaymentsByIntent(c.Request.Context(), ev.PaymentIntentID)
	if err != nil {
		return err
	}
	for _, p := range pays {
		if settled(p, ev.Type) {
			continue
		}
		sig := &workflows.PaymentEvent{EventID: ev.ID, Type: ev.Type, IntentID: ev.PaymentIntentID, PaymentID: p.ID,
			FailureCode: ev.FailureCode, FailureMessage: ev.FailureMessage}
		err := h.Temporal.SignalWorkflow(c.Request.Context(), workflows.InvoiceWorkflowID(p.InvoiceID), "", workflows.PaymentEventSignal, sig)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return err
		}
	}
	return nil
}

// settled reports whether an event would change nothing for the payment:
// its outcome is already recorded (billflow records a charge's outcome as the
// processor answers it, before the invoice's workflow takes it in), and only
// a dispute matters after that. Skipping these spares the invoice's workflow
// a task for every payment's payment_intent.succeeded.
func settled(p *store.Payment, eventType string) bool {
	return eventType != "charge.dispute.created" && (p.Status == "succeeded" || p.Status == "failed")
}
