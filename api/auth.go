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

// practiceAuth accepts `Authorization: Bearer <practice API key>` only.
func (h *handlers) practiceAuth(c *gin.Context) { h.authenticate(c, false) }

// practiceOrClientAuth also accepts a client portal token, which narrows the
// caller to that one client's data.
func (h *handlers) practiceOrClientAuth(c *gin.Context) { h.authenticate(c, true) }

func (h *handlers) authenticate(c *gin.Context, clientOK bool) {
	auth := c.GetHeader("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		c.Header("WWW-Authenticate", `Bearer realm="billflow"`)
		apiError(c, http.StatusUnauthorized, "authentication_error", "missing_api_key",
			"send your practice API key (or a client portal token) as Authorization: Bearer <key>", "")
		return
	}
	if store.IsPortalToken(key) {
		practiceID, clientID, err := h.Store.ClientForPortalToken(c.Request.Context(), key, h.Now())
		switch {
		case errors.Is(err, store.ErrNotFound):
			apiError(c, http.StatusUnauthorized, "authentication_error", "invalid_portal_token",
				"the portal token is not valid or has expired; ask your practice for a new link", "")
		case err != nil:
			h.unavailable(c, "authenticate", err)
		case !clientOK:
			// A client credential never reaches practice-only routes; like any
			// other data it may not see, they answer 404.
			notFound(c, "route")
		default:
			c.Set(ctxPrincipal, principal{PracticeID: practiceID, ClientID: clientID})
			c.Next()
		}
		return
	}
	practiceID, err := h.Store.PracticeIDForAPIKey(c.Request.Context(), key)
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
