package api

import (
	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/store"
)

// returnNotice tells a payer back from 3-D Secure what became of it. The
// webhook may not have arrived yet, so "still confirming" is an answer too.
func (h *handlers) returnNotice(c *gin.Context, inv *store.Invoice, intentID string) *notice {
	pays, err := h.Store.ListPayments(c.Request.Context(), inv.ID)
	if err != nil {
		return nil
	}
	for _, p := range pays {
		if p.ProcessorIntentID != intentID {
			continue
		}
		switch p.Status {
		case contract.PaymentSucceeded:
			return &notice{"ok", "Your payment of " + money.Format(p.Amount, p.Currency) + " was authenticated and received. Thank you."}
		case contract.PaymentFailed:
			msg := "Your payment could not be authenticated, and nothing was charged."
			if p.FailureMessage != "" {
				msg = p.FailureMessage + " Nothing was charged."
			}
			return &notice{"error", msg}
		case contract.PaymentProcessing:
			return &notice{"info", "Your payment of " + money.Format(p.Amount, p.Currency) + " is processing."}
		default:
			return &notice{"info", "We're confirming your payment with your bank. Refresh this page in a moment to see it."}
		}
	}
	return nil
}
