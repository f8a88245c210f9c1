package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
)

func (h *handlers) listPaymentMethods(c *gin.Context) {
	cl, ok := h.loadClient(c)
	if !ok {
		return
	}
	pms, err := h.Cards.List(c.Request.Context(), cl.ID)
	if err != nil {
		h.internal(c, "list payment methods", err)
		return
	}
	if pms == nil {
		pms = []*store.SavedPaymentMethod{}
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": pms, "has_more": false})
}

type attachReq struct {
	PaymentMethod  string `json:"payment_method"`
	CardholderName string `json:"cardholder_name,omitempty"`
	BillingZIP     string `json:"billing_zip,omitempty"`
}

// attachPaymentMethod saves a tokenized card (or bank account) for a client
// without charging it: the processor customer is created on first use.
func (h *handlers) attachPaymentMethod(c *gin.Context) {
	cl, ok := h.loadClient(c)
	if !ok {
		return
	}
	var req attachReq
	if !bindJSON(c, &req) {
		return
	}
	req.PaymentMethod = strings.TrimSpace(req.PaymentMethod)
	if !strings.HasPrefix(req.PaymentMethod, "pm_") || len(req.PaymentMethod) > 255 {
		badRequest(c, "parameter_invalid", "payment_method must be a PaymentMethod ID (pm_…)", "payment_method")
		return
	}
	// Everything that will be stored is checked before the processor sees
	// the card: a row that cannot be written after a successful attach
	// would leave a card on the customer that billflow does not list.
	if len(req.CardholderName) > 200 {
		badRequest(c, "parameter_invalid", "cardholder_name must be at most 200 characters", "cardholder_name")
		return
	}
	if z := strings.TrimSpace(req.BillingZIP); z != "" && !zipRe.MatchString(z) {
		badRequest(c, "parameter_invalid", "billing_zip must be a ZIP or postal code", "billing_zip")
		return
	}
	if retry, limited := h.attachLimited(c, cl.ID); limited {
		tooMany(c, retry, "too_many_card_attempts", "cards saved")
		return
	}
	key := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	saved, err := h.Cards.Save(c.Request.Context(), cl, cards.SaveRequest{PaymentMethodID: req.PaymentMethod,
		CardholderName: req.CardholderName, BillingZIP: req.BillingZIP, Key: key})
	if err != nil {
		h.gatewayError(c, "save payment method", err)
		return
	}
	c.JSON(http.StatusCreated, saved)
}

// detachPaymentMethod removes a saved method. A practice key always may; a
// client only where the practice allows it (allow_client_card_removal).
func (h *handlers) detachPaymentMethod(c *gin.Context) {
	cl, ok := h.loadClient(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	p, err := h.Store.GetPractice(ctx, cl.PracticeID)
	if err != nil {
		h.internal(c, "get practice", err)
		return
	}
	pm, err := h.Cards.Remove(ctx, p, cl.ID, c.Param("pm"), principalOf(c).ClientID != "")
	switch {
	case errors.Is(err, cards.ErrRemovalNotAllowed):
		apiError(c, http.StatusForbidden, "invalid_request_error", "card_removal_not_allowed",
			"your practice does not allow removing saved cards here; contact your practitioner", "")
		return
	case errors.Is(err, cards.ErrNotFound):
		notFound(c, "payment method")
		return
	case err != nil:
		h.gatewayError(c, "detach payment method", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": pm.ID, "object": "payment_method", "deleted": true})
}

// gatewayError answers a processor failure: a decline is 402 with the code,
// an invalid request 400, anything else 503.
func (h *handlers) gatewayError(c *gin.Context, op string, err error) {
	var ge *payments.Error
	if errors.As(err, &ge) {
		switch ge.Kind {
		case payments.KindDeclined:
			c.AbortWithStatusJSON(http.StatusPaymentRequired, gin.H{"error": errorBody{Type: "card_error", Code: ge.Code,
				DeclineCode: ge.DeclineCode, Message: ge.Message}})
			return
		case payments.KindInvalid:
			badRequest(c, firstNonEmpty(ge.Code, "invalid_request"), ge.Message, ge.Param)
			return
		}
	}
	h.unavailable(c, op, err)
}
