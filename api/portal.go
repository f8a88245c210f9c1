package api

// The client portal's Billing & Payments page: GET /portal and what it links
// to. A client portal token (bf_pt_…, made by POST /v1/clients/{id}/portal-token
// and sent in the statement email's link) is the only credential: it arrives
// once in the URL and then lives in a cookie scoped to /portal. Practice API
// keys are not accepted here.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/store"
)

const (
	// portalCookie holds the portal token. Session-only (no Max-Age): on a
	// shared computer it ends when the browser closes; the token's own expiry
	// still applies on the server.
	portalCookie = "bf_portal"
	portalPath   = "/portal"
	// portalPayLinkTTL is how long a pay link made from the portal works:
	// the portal makes a fresh one whenever it is needed.
	portalPayLinkTTL = 24 * time.Hour
	// maxTokenLen bounds what is looked up as a token.
	maxTokenLen = 200
)

func (h *handlers) portalRoutes(r *gin.Engine) {
	r.GET(portalPath, h.portalHome)
	g := r.Group(portalPath, h.portalAuth)
	g.GET("/pay", h.portalPayForm)
	g.POST("/pay", h.portalPaySubmit)
	g.GET("/invoices/:id/pay", h.portalPayInvoice)
	// The pay page again, under /portal so that the session cookie comes
	// along and the client's saved cards are offered. Without a session it is
	// the plain pay page.
	r.GET(portalPath+"/pay/:token", h.payPage)
	r.POST(portalPath+"/pay/:token", h.payPageSubmit)
	g.GET("/invoices/:id/pdf", h.portalInvoicePDF)
	g.GET("/documents/:id/pdf", h.portalDocumentPDF)
	g.POST("/payment-methods/:pm/remove", h.portalRemoveCard)
	g.POST("/sign-out", h.portalSignOut)
}

// portalSession is the signed-in client.
type portalSession struct {
	Token    string
	Practice *store.Practice
	Client   *store.Client
}

const ctxPortal = "portal_session"

func sessionOf(c *gin.Context) *portalSession {
	v, _ := c.Get(ctxPortal)
	s, _ := v.(*portalSession)
	return s
}

// ---- signing in ----

// portalHome is GET /portal. With ?token= it signs in: the token goes into
// the cookie and the browser is sent to /portal without it, so the token does
// not sit in history or leak in a Referer. Without, the cookie must be there.
func (h *handlers) portalHome(c *gin.Context) {
	if tok, ok := c.GetQuery("token"); ok {
		h.portalSignIn(c, strings.TrimSpace(tok))
		return
	}
	if !h.portalAuthenticate(c) {
		return
	}
	h.renderPortal(c, sessionOf(c))
}

func (h *handlers) portalSignIn(c *gin.Context, tok string) {
	ctx := c.Request.Context()
	if tok == "" || len(tok) > maxTokenLen || !store.IsPortalToken(tok) {
		h.portalDenied(c)
		return
	}
	if _, _, err := h.Store.ClientForPortalToken(ctx, tok, h.Now()); errors.Is(err, store.ErrNotFound) {
		h.portalDenied(c)
		return
	} else if err != nil {
		h.portalUnavailable(c, "portal token", err)
		return
	}
	h.setPortalCookie(c, tok, false)
	h.pageHeaders(c, "")
	c.Redirect(http.StatusSeeOther, portalPath)
	c.Abort()
}

// setPortalCookie sets (or, with clear, deletes) the session cookie:
// HttpOnly, SameSite=Strict, Secure whenever the site is served over https.
func (h *handlers) setPortalCookie(c *gin.Context, tok string, clear bool) {
	ck := &http.Cookie{Name: portalCookie, Value: tok, Path: portalPath, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.Request.TLS != nil || strings.HasPrefix(h.Config.PublicBaseURL, "https://") ||
			strings.EqualFold(c.GetHeader("X-Forwarded-Proto"), "https")}
	if clear {
		ck.Value, ck.MaxAge = "", -1
	}
	http.SetCookie(c.Writer, ck)
}

// portalAuth guards every page under /portal/.
func (h *handlers) portalAuth(c *gin.Context) {
	if h.portalAuthenticate(c) {
		c.Next()
	}
}

// portalAuthenticate reads the cookie and loads the client and practice, or
// renders the page that says why not.
func (h *handlers) portalAuthenticate(c *gin.Context) bool {
	ctx := c.Request.Context()
	tok, err := c.Cookie(portalCookie)
	if err != nil || tok == "" {
		// A SameSite=Strict cookie is withheld when the navigation began on
		// another site (the link in a webmail page, followed by our redirect
		// from ?token=). One same-site hop brings it along.
		if c.Request.Method == http.MethodGet && c.GetHeader("Sec-Fetch-Site") == "cross-site" {
			h.pageHeaders(c, "")
			var buf strings.Builder
			if err := pageTmpl.ExecuteTemplate(&buf, "portal_continue", gin.H{"Title": "Billing & Payments",
				"Next": c.Request.URL.RequestURI()}); err == nil {
				c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(buf.String()))
				c.Abort()
				return false
			}
		}
		h.portalDenied(c)
		return false
	}
	if len(tok) > maxTokenLen || !store.IsPortalToken(tok) {
		h.setPortalCookie(c, "", true)
		h.portalDenied(c)
		return false
	}
	practiceID, clientID, err := h.Store.ClientForPortalToken(ctx, tok, h.Now())
	if errors.Is(err, store.ErrNotFound) {
		h.setPortalCookie(c, "", true)
		h.portalDenied(c)
		return false
	} else if err != nil {
		h.portalUnavailable(c, "portal token", err)
		return false
	}
	practice, err := h.Store.GetPractice(ctx, practiceID)
	if err != nil {
		h.portalUnavailable(c, "get practice", err)
		return false
	}
	cl, err := h.Store.GetClient(ctx, practiceID, clientID)
	if err != nil {
		h.portalUnavailable(c, "get client", err)
		return false
	}
	c.Set(ctxPortal, &portalSession{Token: tok, Practice: practice, Client: cl})
	// The JSON handlers' isolation rules apply here too.
	c.Set(ctxPrincipal, principal{PracticeID: practiceID, ClientID: clientID})
	return true
}

// portalCSRF binds the portal's forms to the session's token, as the pay
// page binds its form to the link. The cookie is also SameSite=Strict.
func (h *handlers) portalCSRF(tok string) string {
	m := hmac.New(sha256.New, h.Config.PayLinkSecret)
	m.Write([]byte("billflow portal csrf\x00" + tok))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// portalFormOK checks a POST's origin and CSRF token.
func (h *handlers) portalFormOK(c *gin.Context, vals url.Values) bool {
	csrf := vals.Get("csrf")
	return h.sameOrigin(c) && csrf != "" && hmac.Equal([]byte(csrf), []byte(h.portalCSRF(sessionOf(c).Token)))
}
