package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
)

// ---- pay ----

type payReq struct {
	Amount               *int64 `json:"amount"`
	PaymentMethod        string `json:"payment_method,omitempty"`
	SavedPaymentMethodID string `json:"saved_payment_method_id,omitempty"`
	SaveCard             bool   `json:"save_card,omitempty"`
	PayerName            string `json:"payer_name,omitempty"`
	BillingZIP           string `json:"billing_zip,omitempty"`
}

func (h *handlers) payInvoice(c *gin.Context) {
	inv, ok := h.loadInvoice(c)
	if !ok {
		return
	}
	var req payReq
	if !bindJSON(c, &req) {
		return
	}
	if !h.allowPayment(c, inv.ID, inv.ClientID) {
		return
	}
	if !h.allowAfterDeclines(c, inv.ClientID, "") {
		return
	}
	if req.Amount == nil {
		badRequest(c, "parameter_missing", "amount is required, in the currency's minor unit", "amount")
		return
	}
	if *req.Amount <= 0 || *req.Amount > maxAmount {
		badRequest(c, "parameter_invalid", "amount must be a positive integer in the currency's minor unit", "amount")
		return
	}
	if (req.PaymentMethod == "") == (req.SavedPaymentMethodID == "") {
		badRequest(c, "parameter_invalid", "give exactly one of payment_method or saved_payment_method_id", "payment_method")
		return
	}
	if len(req.PayerName) > 200 || len(req.BillingZIP) > 20 || len(req.PaymentMethod) > 255 {
		badRequest(c, "parameter_invalid", "payer_name, billing_zip or payment_method is too long", "")
		return
	}
	in := &contract.PayInput{Amount: *req.Amount, PaymentMethodID: req.PaymentMethod, SavedPaymentMethodID: req.SavedPaymentMethodID,
		SaveCard: req.SaveCard, PayerName: strings.TrimSpace(req.PayerName), BillingZIP: strings.TrimSpace(req.BillingZIP)}
	// After 3-D Secure the payer's browser lands on the invoice's hosted pay
	// page, which says what became of the payment (an API URL would answer
	// a browser 401).
	returnURL, err := h.practicePayURL(c.Request.Context(), inv)
	if err != nil {
		h.internal(c, "pay url", err)
		return
	}
	in.ReturnURL = returnURL
	pm, label, err := h.payMethod(c.Request.Context(), inv.ClientID, req.SavedPaymentMethodID, req.PaymentMethod)
	if errors.Is(err, store.ErrNotFound) {
		badRequest(c, "resource_missing", "no such saved payment method for this client", "saved_payment_method_id")
		return
	} else if err != nil {
		h.internal(c, "get payment method", err)
		return
	}
	in.MethodLabel = label
	if pm != nil {
		in.PaymentMethodID = pm.ProcessorPMID
		in.OffSession = true
	}
	key, ok := requestKey(c)
	if !ok {
		return
	}
	in.IdempotencyKey, in.Scope = key, idempotencyScope(principalOf(c))
	in.RequestHash = in.Fingerprint()
	var res contract.PayResult
	if !h.update(c, inv, contract.PayUpdate, in, &res, nil) {
		return
	}
	payment := gin.H{"id": res.PaymentID, "amount": res.Amount, "status": res.Status}
	if res.Status == contract.PaymentFailed {
		c.AbortWithStatusJSON(http.StatusPaymentRequired, gin.H{"error": errorBody{Type: "card_error", Code: res.FailureCode,
			DeclineCode: res.DeclineCode, Message: res.FailureMessage}, "payment": gin.H{"id": res.PaymentID, "amount": res.Amount,
			"status": res.Status, "failure_code": res.FailureCode, "failure_message": res.FailureMessage}})
		return
	}
	if res.NextActionURL != "" {
		// As Stripe's PaymentIntent has it: send the payer to url; they come
		// back to return_url, the invoice's pay page, which shows the outcome.
		payment["next_action"] = gin.H{"type": "redirect_to_url", "redirect_to_url": gin.H{"url": res.NextActionURL, "return_url": returnURL}}
	}
	view, ok := h.freshView(c, inv.ID)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, gin.H{"payment": payment, "invoice": view})
}

// payMethod is the saved method a payment names (nil when it names a new
// one, newPM) and the label its receipt shows. The error is store.ErrNotFound
// when the client has no saved method savedID.
func (h *handlers) payMethod(ctx context.Context, clientID, savedID, newPM string) (*store.SavedPaymentMethod, string, error) {
	if savedID == "" {
		return nil, h.Cards.NewLabel(ctx, newPM), nil
	}
	pm, err := h.Cards.Get(ctx, clientID, savedID)
	if err != nil {
		return nil, "", err
	}
	return pm, cards.Label(pm.Type, pm.Brand, pm.Last4, pm.BankName), nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
