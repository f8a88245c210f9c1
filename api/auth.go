package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/store"
)

// principal is who is calling: a practice (API key) today; portal and pay-link
// credentials narrow it to one client or one invoice.
type principal struct {
	PracticeID string
	ClientID   string // set for a client portal token
	InvoiceID  string // set for a pay-link token
}

const ctxPrincipal = "principal"

func principalOf(c *gin.Context) principal {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(principal)
	return pr
}

// practiceAuth accepts `Authorization: Bearer <practice API key>`.
func (h *handlers) practiceAuth(c *gin.Context) {
	auth := c.GetHeader("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(key) == "" {
		c.Header("WWW-Authenticate", `Bearer realm="billflow"`)
		apiError(c, http.StatusUnauthorized, "authentication_error", "missing_api_key",
			"send your practice API key as Authorization: Bearer <key>", "")
		return
	}
	practiceID, err := h.Store.PracticeIDForAPIKey(c.Request.Context(), strings.TrimSpace(key))
	if errors.Is(err, store.ErrNotFound) {
		c.Header("WWW-Authenticate", `Bearer realm="billflow", error="invalid_token"`)
		apiError(c, http.StatusUnauthorized, "authentication_error", "invalid_api_key", "the API key is not valid", "")
		return
	}
	if err != nil {
		h.unavailable(c, "authenticate", err)
		return
	}
	c.Set(ctxPrincipal, principal{PracticeID: practiceID})
	c.Next()
}

// canSeeInvoice is the one isolation rule for invoices: anything else is 404.
func (p principal) canSeeInvoice(inv *store.Invoice) bool {
	if inv.PracticeID != p.PracticeID {
		return false
	}
	if p.ClientID != "" && inv.ClientID != p.ClientID {
		return false
	}
	if p.InvoiceID != "" && inv.ID != p.InvoiceID {
		return false
	}
	return true
}
