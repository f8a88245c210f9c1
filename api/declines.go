package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// Card testing: a stolen-card list tried against one pay link or one
// client's invoices shows up as declines. Past these in an hour, payers
// (not the practice's own API key) are locked out until the hour has
// passed; every declined attempt stays recorded for the practitioner.
const (
	declineWindow     = time.Hour
	maxLinkDeclines   = 5
	maxClientDeclines = 10
)

// declineLockout reports how long a payer must wait (seconds) when the
// client, or the pay link it came through, has declined too often lately.
func (h *handlers) declineLockout(c *gin.Context, clientID, payLinkID string) (int, bool, error) {
	if p := principalOf(c); p.ClientID == "" && p.InvoiceID == "" && p.PracticeID != "" && payLinkID == "" {
		return 0, false, nil
	}
	byClient, byLink, err := h.Store.Declines(c.Request.Context(), clientID, payLinkID, h.Now().Add(-declineWindow))
	if err != nil {
		return 0, false, err
	}
	if byClient >= maxClientDeclines || (payLinkID != "" && byLink >= maxLinkDeclines) {
		return int(declineWindow.Seconds()), true, nil
	}
	return 0, false, nil
}

// allowAfterDeclines answers 429 too_many_declines for the JSON routes.
func (h *handlers) allowAfterDeclines(c *gin.Context, clientID, payLinkID string) bool {
	retry, locked, err := h.declineLockout(c, clientID, payLinkID)
	if err != nil {
		h.unavailable(c, "count declines", err)
		return false
	}
	if locked {
		c.Header("Retry-After", strconv.Itoa(retry))
		apiError(c, http.StatusTooManyRequests, "rate_limit_error", "too_many_declines",
			fmt.Sprintf("too many declined payments for this client; payments are paused for %d minutes. Nothing was charged.", retry/60), "")
		return false
	}
	return true
}
