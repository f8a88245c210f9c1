package api

// The hosted pay page: GET and POST /pay/{token}, no login. The token in the
// link is the only credential, and it reaches exactly one invoice.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/paylink"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/templates"
)

// pageTmpl holds every page of the pay flow; parsed once, at start-up, so a
// broken template fails the process rather than a payer.
var pageTmpl = template.Must(template.New("pages").ParseFS(templates.FS, "pages/*.html"))

// ---- link resolution ----

type linkState int

const (
	linkLive linkState = iota
	linkInvalid
	linkDead // expired, revoked or void
)

// payLink is a resolved token: the invoice it pays and its practice.
type payLink struct {
	Token    string
	Invoice  *store.Invoice
	Practice *store.Practice
	// Portal is set when the visitor also holds the client's portal session
	// (the page is served under /portal/pay/, where the cookie is sent).
	// Only then are the client's saved cards listed and usable: a pay link
	// alone (a forwarded or leaked email) offers a new card or bank debit.
	Portal bool
}

// URL is the page's own path: under /portal/pay/ for a portal session.
func (pl *payLink) URL() string {
	if pl.Portal {
		return portalPath + "/pay/" + pl.Token
	}
	return "/pay/" + pl.Token
}

// resolvePayLink checks the token in the URL. A forged or unknown token is
// 404 ("not valid"); an expired or revoked one, or one for a void invoice, is
// 410 with the practice's contact details. It renders those pages itself.
func (h *handlers) resolvePayLink(c *gin.Context) (*payLink, bool) {
	tok := c.Param("token")
	ctx := c.Request.Context()
	tk, err := paylink.Verify(h.Config.PayLinkSecret, tok, h.Now())
	if errors.Is(err, paylink.ErrForged) || len(tok) > 512 {
		h.renderPage(c, http.StatusNotFound, "link_invalid", pageData{Title: "Payment link not valid"})
		return nil, false
	}
	expired := errors.Is(err, paylink.ErrExpired)
	stored, err := h.Store.PayLinkByHash(ctx, paylink.Hash(tok))
	if errors.Is(err, store.ErrNotFound) && paylink.IsDerived(h.Config.PayLinkSecret, tok, tk) {
		// A derived link (an invoice's pay_url) is stored nowhere; it dies
		// with its expiry or when the invoice is voided, as stored ones do.
		stored, err = &store.PayLink{InvoiceID: tk.InvoiceID, ExpiresAt: tk.ExpiresAt}, nil
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && stored.InvoiceID != tk.InvoiceID) {
		h.renderPage(c, http.StatusNotFound, "link_invalid", pageData{Title: "Payment link not valid"})
		return nil, false
	} else if err != nil {
		h.pageUnavailable(c, "pay link", err)
		return nil, false
	}
	inv, err := h.Store.GetInvoice(ctx, stored.InvoiceID)
	if err != nil {
		h.pageUnavailable(c, "get invoice", err)
		return nil, false
	}
	practice, err := h.Store.GetPractice(ctx, inv.PracticeID)
	if err != nil {
		h.pageUnavailable(c, "get practice", err)
		return nil, false
	}
	now := h.Now()
	if inv.Status == store.StatusVoid {
		// Voiding revokes the invoice's links; the payer is told why.
		h.renderPage(c, http.StatusGone, "link_voided", pageData{Title: "Invoice voided",
			Practice: practiceViewOf(practice), Number: inv.Number})
		return nil, false
	}
	if expired || stored.RevokedAt != nil || !now.Before(stored.ExpiresAt) {
		h.renderPage(c, http.StatusGone, "link_expired", pageData{Title: "Payment link expired",
			Practice: practiceViewOf(practice), Number: inv.Number})
		return nil, false
	}
	pl := &payLink{Token: tok, Invoice: inv, Practice: practice}
	if strings.HasPrefix(c.FullPath(), portalPath+"/") {
		pl.Portal = h.holdsPortalSession(c, inv)
	}
	return pl, true
}

// holdsPortalSession says whether the request carries a portal session of
// the invoice's own client. A missing, expired or other client's session is
// simply not one; the page still works as a plain pay link.
func (h *handlers) holdsPortalSession(c *gin.Context, inv *store.Invoice) bool {
	tok, err := c.Cookie(portalCookie)
	if err != nil || tok == "" || len(tok) > maxTokenLen || !store.IsPortalToken(tok) {
		return false
	}
	practiceID, clientID, err := h.Store.ClientForPortalToken(c.Request.Context(), tok, h.Now())
	return err == nil && practiceID == inv.PracticeID && clientID == inv.ClientID
}

// ---- security headers and rendering ----

// testMode says whether Stripe's test IDs work: a test key, or an API base
// that is not Stripe's (the sandbox or stripe-mock).
func (h *handlers) testMode() bool {
	return strings.HasPrefix(h.Config.StripeSecretKey, "sk_test_") || h.Config.StripeSecretKey == "" || h.sandboxOrigin() != ""
}

// sandboxOrigin is the origin of a non-Stripe API base (the sandbox's 3-D
// Secure page lives there), or "".
func (h *handlers) sandboxOrigin() string {
	if h.Config.StripeAPIBase == "" {
		return ""
	}
	u, err := url.Parse(h.Config.StripeAPIBase)
	if err != nil || u.Host == "" || u.Host == "api.stripe.com" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// elements says whether the card field is Stripe Elements: only with a
// publishable key and the real Stripe API (the sandbox cannot tokenize).
func (h *handlers) elements() bool {
	return h.Config.StripePublishableKey != "" && h.sandboxOrigin() == ""
}

// pageHeaders keep the page out of caches and referrers (the token is in the
// URL) and lock it down: nothing external loads unless Elements needs it.
func (h *handlers) pageHeaders(c *gin.Context, scriptNonce string) {
	formAction := "'self'"
	if o := h.sandboxOrigin(); o != "" {
		formAction += " " + o
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'; form-action " + formAction
	if scriptNonce != "" {
		script := "'nonce-" + scriptNonce + "'"
		if h.elements() {
			script += " https://js.stripe.com"
			csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data: https://*.stripe.com; base-uri 'none'; frame-ancestors 'none'" +
				"; frame-src https://js.stripe.com https://hooks.stripe.com; connect-src https://api.stripe.com" +
				"; form-action " + formAction + " https://hooks.stripe.com"
		}
		csp += "; script-src " + script
	}
	hd := c.Writer.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("Cache-Control", "no-store")
	hd.Set("Pragma", "no-cache")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Robots-Tag", "noindex, nofollow")
}

// renderPage executes a page into a buffer first, so a template error is a
// clean 500 and never half a page.
func (h *handlers) renderPage(c *gin.Context, status int, name string, d pageData) {
	nonce := ""
	if d.Form != nil {
		nonce = d.Form.ScriptNonce
	}
	h.writePage(c, status, "pay page", name, nonce, d)
}

// writePage sends the page headers and executes template name with d into
// a buffer first, so a template error is a clean 500 and never half a page;
// what names the page in the log. The pay pages and the portal share it.
func (h *handlers) writePage(c *gin.Context, status int, what, name, nonce string, d any) {
	h.pageHeaders(c, nonce)
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, name, d); err != nil {
		h.Logger.Error("render "+what, "request_id", c.GetString(ctxRequestID), "page", name, "error", err.Error())
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("Something went wrong. Please try again."))
		c.Abort()
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
	c.Abort()
}

func (h *handlers) pageMessage(c *gin.Context, status int, pl *payLink, heading, text string) {
	d := pageData{Title: heading, Heading: heading, Text: text}
	if pl != nil {
		d.Practice = practiceViewOf(pl.Practice)
		d.BackURL = pl.URL()
	}
	h.renderPage(c, status, "message", d)
}

// pageUnavailable logs the cause; the payer learns only that it is temporary.
func (h *handlers) pageUnavailable(c *gin.Context, op string, err error) {
	h.Logger.Error(op, "request_id", c.GetString(ctxRequestID), "error", err.Error())
	h.pageMessage(c, http.StatusServiceUnavailable, nil, "Something went wrong on our side",
		"The payment page is unavailable right now. Please try again in a few minutes.")
}

// ---- CSRF and idempotency ----

// csrfToken binds the form to its link. There is no session to bind it to,
// and the link's token is the credential; a cross-site form cannot read the
// page, so it cannot learn this value.
func (h *handlers) csrfToken(tok string) string {
	m := hmac.New(sha256.New, h.Config.PayLinkSecret)
	m.Write([]byte("billflow pay page csrf\x00" + tok))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// idempotencyKey makes the pay Update's ID from the link and the nonce of the
// rendered form: the same form submitted twice is one payment; a new render
// (after a decline, say) is a new attempt.
func (h *handlers) idempotencyKey(tok, nonce string) string {
	m := hmac.New(sha256.New, h.Config.PayLinkSecret)
	m.Write([]byte("billflow pay page idempotency\x00" + tok + "\x00" + nonce))
	return "paypage-" + hex.EncodeToString(m.Sum(nil)[:16])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var nonceRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ---- GET ----

func (h *handlers) payPage(c *gin.Context) {
	pl, ok := h.resolvePayLink(c)
	if !ok {
		return
	}
	d, err := h.payPageData(c, pl, nil)
	if err != nil {
		h.pageUnavailable(c, "pay page", err)
		return
	}
	if pi := c.Query("payment_intent"); pi != "" && len(pi) < 255 {
		d.Notice = h.returnNotice(c, pl.Invoice, pi)
	}
	h.renderPage(c, http.StatusOK, "pay", *d)
}

// ---- PDF ----

// payPagePDF serves the invoice's latest PDF to the link's holder: the
// receipt once paid, the invoice before.
func (h *handlers) payPagePDF(c *gin.Context) {
	pl, ok := h.resolvePayLink(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	doc, err := h.Store.LatestInvoiceDocument(ctx, pl.Invoice.ID)
	paid := pl.Invoice.AmountDue == 0 && pl.Invoice.AmountProcessing == 0
	if errors.Is(err, store.ErrNotFound) || (err == nil && paid && doc.Kind != "receipt") {
		c.Header("Retry-After", "30")
		h.pageMessage(c, http.StatusNotFound, pl, "Your document is being prepared",
			"It will be ready in a minute or two; it is also emailed to you. Please try again shortly.")
		return
	} else if err != nil {
		h.pageUnavailable(c, "latest invoice document", err)
		return
	}
	content, err := h.Store.DocumentContent(ctx, doc.ID)
	if err != nil {
		h.pageUnavailable(c, "document content", err)
		return
	}
	name := "Invoice-" + pl.Invoice.Number + ".pdf"
	if doc.Kind == "receipt" {
		name = "Receipt-" + pl.Invoice.Number + ".pdf"
	}
	h.pageHeaders(c, "")
	c.Header("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": name}))
	c.Header("Last-Modified", doc.CreatedAt.UTC().Format(time.RFC1123))
	c.Data(http.StatusOK, "application/pdf", content)
}
