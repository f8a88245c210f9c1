package api

// The hosted pay page: GET and POST /pay/{token}, no login. The token in the
// link is the only credential, and it reaches exactly one invoice.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/paylink"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/templates"
)

// pageTmpl holds every page of the pay flow; parsed once, at start-up, so a
// broken template fails the process rather than a payer.
var pageTmpl = template.Must(template.New("pages").ParseFS(templates.FS, "pages/*.html"))

// testCards are the Stripe test PaymentMethods the sandbox selector offers,
// labelled as in Stripe's testing docs.
var testCards = []struct{ Value, Label string }{
	{"pm_card_visa", "Visa — succeeds (pm_card_visa)"},
	{"pm_card_mastercard", "Mastercard — succeeds (pm_card_mastercard)"},
	{"pm_card_amex", "American Express — succeeds (pm_card_amex)"},
	{"pm_card_chargeDeclined", "Generic decline (pm_card_chargeDeclined)"},
	{"pm_card_chargeDeclinedInsufficientFunds", "Insufficient funds decline (pm_card_chargeDeclinedInsufficientFunds)"},
	{"pm_card_authenticationRequired", "3D Secure required (pm_card_authenticationRequired)"},
	{"pm_usBankAccount", "US bank account — ACH Direct Debit (pm_usBankAccount)"},
}

func isTestCard(v string) bool {
	for _, c := range testCards {
		if c.Value == v {
			return true
		}
	}
	return false
}

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

// ---- page data ----

type practiceView struct {
	Name, Email, Phone string
	Address            []string
}

func practiceViewOf(p *store.Practice) *practiceView {
	return &practiceView{Name: p.Name, Email: p.Email, Phone: p.Phone, Address: p.AddressLines}
}

type itemView struct{ Date, Description, Amount string }

type notice struct{ Kind, Text string }

type savedView struct {
	ID, Label string
	Checked   bool
}

type optionView struct {
	Value, Label string
	Selected     bool
}

// formView is the pay form as rendered: what the payer chose last time is
// kept, except the payment method token.
type formView struct {
	Action, CSRF, Nonce, ScriptNonce  string
	Symbol                            string
	Exponent                          int
	FullFormatted                     string
	Partial, PartChosen               bool
	PartValue, MinMajor, MinFormatted string
	InstallmentsNote                  string
	Saved                             []savedView
	NewChosen                         bool
	TestMode, Elements                bool
	PublishableKey                    string
	TestCards                         []optionView
	Name, ZIP                         string
	SaveCard                          bool
	ButtonText                        string
	FullMinor                         int64
}

type pageData struct {
	Title    string
	Practice *practiceView

	// invoice review
	Number, StatusLabel, IssueDate, DueDate, Memo string
	Items                                         []itemView
	Total, Paid, Refunded, Processing, Due        string
	PaidInFull, ProcessingOnly, RefundedInFull    bool
	PartialTerms                                  string
	PDFURL, PDFLabel                              string
	Notice                                        *notice
	Error                                         string
	Form                                          *formView

	// results and messages
	Outcome, Amount, Heading, Text, BackURL string
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
	h.pageHeaders(c, nonce)
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, name, d); err != nil {
		h.Logger.Error("render pay page", "request_id", c.GetString(ctxRequestID), "page", name, "error", err.Error())
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

// formInput is what the payer submitted, kept to re-render the form.
type formInput struct {
	choice, part, full, method, testCard, pmID, name, zip string
	saveCard                                              bool
}

func formInputOf(vals url.Values) *formInput {
	return &formInput{choice: vals.Get("amount_choice"), part: strings.TrimSpace(vals.Get("amount_part")), full: vals.Get("full_amount"),
		method: vals.Get("method"), testCard: vals.Get("test_card"), pmID: strings.TrimSpace(vals.Get("payment_method")),
		name: strings.TrimSpace(vals.Get("cardholder_name")), zip: strings.TrimSpace(vals.Get("billing_zip")),
		saveCard: vals.Get("save_card") == "1"}
}

// payPageData builds the review and, when the invoice can be paid, the form.
func (h *handlers) payPageData(c *gin.Context, pl *payLink, in *formInput) (*pageData, error) {
	ctx := c.Request.Context()
	inv := pl.Invoice
	cur := inv.Currency
	d := &pageData{Title: "Invoice " + inv.Number + " · " + pl.Practice.Name, Practice: practiceViewOf(pl.Practice),
		Number: inv.Number, IssueDate: inv.IssueDate.Format("Jan 2, 2006"), DueDate: inv.DueDate.Format("Jan 2, 2006"),
		Memo: inv.Memo, Total: money.Format(inv.Total, cur), Paid: money.Format(inv.AmountPaid, cur),
		Due: money.Format(inv.AmountDue, cur), StatusLabel: statusLabel(inv)}
	if inv.AmountRefunded > 0 {
		d.Refunded = money.Format(inv.AmountRefunded, cur)
	}
	if inv.AmountProcessing > 0 {
		d.Processing = money.Format(inv.AmountProcessing, cur)
	}
	for _, it := range inv.Items {
		d.Items = append(d.Items, itemView{Date: it.ServiceDate.Format("Jan 2, 2006"), Description: it.Description,
			Amount: money.Format(it.Amount, cur)})
	}
	d.PDFURL, d.PDFLabel = "/pay/"+pl.Token+"/pdf", "Download invoice (PDF)"
	d.PaidInFull = inv.AmountDue == 0 && inv.AmountProcessing == 0 && inv.Total > 0
	d.ProcessingOnly = inv.AmountDue == 0 && inv.AmountProcessing > 0
	if d.PaidInFull {
		d.PDFLabel = "Download receipt (PDF)"
		// A refunded invoice is not "paid in full": say where the money went.
		d.RefundedInFull = inv.Status == store.StatusRefunded
		return d, nil
	}
	if d.ProcessingOnly || inv.AmountDue <= 0 {
		return d, nil
	}

	pays, err := h.Store.ListPayments(ctx, inv.ID)
	if err != nil {
		return nil, err
	}
	used := 0
	for _, p := range pays {
		if p.Status == contract.PaymentSucceeded || p.Status == contract.PaymentProcessing {
			used++
		}
	}
	pp := inv.PartialPayments
	maxInst := int(pp.MaxInstallments)
	if maxInst <= 0 {
		maxInst = 2
	}
	minimum := max(inv.MinimumPayment(), money.MinimumCharge(cur))
	f := &formView{Action: pl.URL(), CSRF: h.csrfToken(pl.Token), Nonce: randomHex(16), ScriptNonce: randomHex(16),
		Symbol: currencySymbol(cur), Exponent: money.Exponent(cur), FullFormatted: money.Format(inv.AmountDue, cur),
		TestMode: h.testMode(), Elements: h.elements(), PublishableKey: h.Config.StripePublishableKey,
		FullMinor: inv.AmountDue}
	f.Partial = pp.Enabled && used+1 < maxInst && minimum < inv.AmountDue
	if pp.Enabled {
		d.PartialTerms = fmt.Sprintf("Partial payments are allowed on this invoice: up to %d payments, at least %s each (or the rest). No interest or late fees.",
			maxInst, money.Format(minimum, cur))
	}
	if f.Partial {
		f.MinMajor = majorString(minimum, cur)
		f.MinFormatted = money.Format(minimum, cur)
		if left := maxInst - used; left == 2 {
			f.InstallmentsNote = "After this payment, one more payment pays the rest."
		} else {
			f.InstallmentsNote = fmt.Sprintf("This invoice allows %d more payments, including this one.", left)
		}
	}
	if pl.Portal {
		saved, err := h.Cards.List(ctx, inv.ClientID)
		if err != nil {
			return nil, err
		}
		for _, m := range saved {
			f.Saved = append(f.Saved, savedView{ID: m.ID, Label: cards.Label(m.Type, m.Brand, m.Last4, m.BankName)})
		}
	}
	if in == nil {
		in = &formInput{choice: "full", testCard: "pm_card_visa"}
		if len(f.Saved) > 0 {
			in.method = "saved:" + f.Saved[0].ID
		}
		if f.Elements {
			in.testCard = ""
		}
	}
	f.PartChosen = f.Partial && in.choice == "part"
	f.PartValue = in.part
	f.Name, f.ZIP, f.SaveCard = in.name, in.zip, in.saveCard
	for i := range f.Saved {
		f.Saved[i].Checked = in.method == "saved:"+f.Saved[i].ID
	}
	f.NewChosen = in.method == "new" || in.method == ""
	for _, tc := range testCards {
		f.TestCards = append(f.TestCards, optionView{Value: tc.Value, Label: tc.Label, Selected: tc.Value == in.testCard})
	}
	f.ButtonText = "Pay " + f.FullFormatted
	if f.PartChosen {
		if amt, err := parseMajor(in.part, cur); err == nil {
			f.ButtonText = "Pay " + money.Format(amt, cur)
		} else {
			f.ButtonText = "Pay"
		}
	}
	d.Form = f
	return d, nil
}

func statusLabel(inv *store.Invoice) string {
	switch {
	case inv.Status == store.StatusVoid:
		return "Void"
	case inv.Status == store.StatusRefunded:
		return "Refunded"
	case inv.Status == store.StatusPartiallyRefunded:
		return "Partially refunded"
	case inv.AmountDue == 0 && inv.AmountProcessing > 0:
		return "Processing"
	case inv.AmountDue == 0 && inv.Total > 0:
		return "Paid"
	case inv.AmountPaid > 0 || inv.AmountProcessing > 0:
		return "Partially paid — " + money.Format(inv.AmountDue, inv.Currency) + " remaining"
	}
	return "Open"
}

// currencySymbol is what money.Format puts before the digits ("$", "CHF ").
func currencySymbol(cur string) string {
	s := money.Format(0, cur)
	if i := strings.IndexAny(s, "0123456789"); i >= 0 {
		return s[:i]
	}
	return ""
}

// majorString writes minor units as a plain decimal ("50.00"), for inputs.
func majorString(amount int64, cur string) string {
	exp := money.Exponent(cur)
	if exp == 0 {
		return strconv.FormatInt(amount, 10)
	}
	div := int64(math.Pow10(exp))
	return fmt.Sprintf("%d.%0*d", amount/div, exp, amount%div)
}

// parseMajor reads an amount typed in major units ("90.50", "1,200",
// "$75") into minor units with integer arithmetic only.
func parseMajor(s, cur string) (int64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSpace(strings.TrimPrefix(s, strings.TrimSpace(currencySymbol(cur))))
	s = strings.ReplaceAll(s, ",", "")
	if s == "" {
		return 0, errors.New("enter the amount you want to pay")
	}
	exp := money.Exponent(cur)
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" {
		whole = "0"
	}
	if hasDot && exp == 0 {
		return 0, fmt.Errorf("%s has no decimal places: enter a whole amount", strings.ToUpper(cur))
	}
	if len(frac) > exp {
		return 0, fmt.Errorf("enter the amount with at most %d decimal places", exp)
	}
	if hasDot && frac == "" {
		return 0, errors.New("enter the amount as a number, like " + majorString(9050, cur))
	}
	if !allDigits(whole) || !allDigits(frac) {
		return 0, errors.New("enter the amount as a number, like " + majorString(9050, cur))
	}
	if len(strings.TrimLeft(whole, "0")) > 9 {
		return 0, errors.New("that amount is too large")
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, errors.New("that amount is too large")
	}
	frac += strings.Repeat("0", exp-len(frac))
	var f int64
	if frac != "" {
		if f, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return 0, errors.New("enter the amount as a number")
		}
	}
	mul := int64(1)
	for range exp {
		mul *= 10
	}
	amt := w*mul + f
	if amt > maxAmount {
		return 0, errors.New("that amount is too large")
	}
	return amt, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ---- POST ----

// payFormFields are the only fields the form sends; anything else is refused.
var payFormFields = map[string]bool{"csrf": true, "nonce": true, "amount_choice": true, "amount_part": true, "method": true,
	"test_card": true, "payment_method": true, "full_amount": true, "cardholder_name": true, "billing_zip": true, "save_card": true}

var (
	pmIDRe = regexp.MustCompile(`^pm_[A-Za-z0-9_]{1,250}$`)
	zipRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 -]{1,8}[A-Za-z0-9]$`)
)

const maxFormBody = 16 << 10

// readPayForm parses the body strictly: form-encoded, bounded, each known
// field at most once, nothing unknown.
func readPayForm(c *gin.Context) (url.Values, string) { return readForm(c, payFormFields) }

// readForm is readPayForm for a form with the given fields.
func readForm(c *gin.Context, fields map[string]bool) (url.Values, string) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, "The form was not sent as a web form. Please use the Pay button on the page."
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBody))
	if err != nil {
		return nil, "The form is too large."
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, "The form could not be read."
	}
	for k, v := range vals {
		if !fields[k] {
			return nil, fmt.Sprintf("The form has an unexpected field %q.", k)
		}
		if len(v) != 1 {
			return nil, fmt.Sprintf("The form has the field %q more than once.", k)
		}
	}
	return vals, ""
}

// sameOrigin rejects a browser POST whose Origin is another site. Requests
// without Origin (non-browser clients), and the page's own posts, which
// carry "Origin: null" under its no-referrer policy, rely on the CSRF token.
func (h *handlers) sameOrigin(c *gin.Context) bool {
	o := c.GetHeader("Origin")
	if o == "" || o == "null" {
		return true
	}
	if base, err := url.Parse(h.Config.PublicBaseURL); err == nil && o == base.Scheme+"://"+base.Host {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == c.Request.Host
}

func (h *handlers) payPageSubmit(c *gin.Context) {
	pl, ok := h.resolvePayLink(c)
	if !ok {
		return
	}
	vals, problem := readPayForm(c)
	if problem != "" {
		h.pageMessage(c, http.StatusBadRequest, pl, "We couldn't read that payment", problem+" Nothing was charged.")
		return
	}
	csrf := vals.Get("csrf")
	if !h.sameOrigin(c) || csrf == "" || !hmac.Equal([]byte(csrf), []byte(h.csrfToken(pl.Token))) {
		h.pageMessage(c, http.StatusForbidden, pl, "This form has expired",
			"Please go back to the invoice, reload the page and try again. Nothing was charged.")
		return
	}
	nonce := vals.Get("nonce")
	if !nonceRe.MatchString(nonce) {
		h.pageMessage(c, http.StatusBadRequest, pl, "This form has expired",
			"Please go back to the invoice, reload the page and try again. Nothing was charged.")
		return
	}
	in := formInputOf(vals)
	d, err := h.payPageData(c, pl, in)
	if err != nil {
		h.pageUnavailable(c, "pay page", err)
		return
	}
	fail := func(status int, msg string) {
		d.Error = msg
		h.renderPage(c, status, "pay", *d)
	}
	// Only the form's own shape is checked here. Whether the amount is
	// allowed now (partial terms, minimum, installments, paid already) is the
	// workflow's to say: a double-submit must reach it with the same Update
	// ID and get the first answer, even though the invoice has changed since.
	if !pl.Portal {
		if refused, err := h.savedCardWithoutPortal(c, pl, in); err != nil {
			h.pageUnavailable(c, "payment methods", err)
			return
		} else if refused {
			fail(http.StatusForbidden, "Saved cards can be used only from your Billing & Payments portal. "+
				"Sign in to the portal to use one, or pay here with a new card. Nothing was charged.")
			return
		}
	}
	pay, msg := h.payInputFromForm(c, pl, in)
	if msg != "" {
		fail(http.StatusBadRequest, msg)
		return
	}
	if retry, limited := h.payPageLimited(c, pl.Invoice); limited {
		c.Header("Retry-After", strconv.Itoa(retry))
		fail(http.StatusTooManyRequests, fmt.Sprintf("Too many payment attempts. Please wait %d seconds and try again. Nothing was charged.", retry))
		return
	}

	pay.PayLinkID = hashKey(pl.Token)
	if retry, locked, err := h.declineLockout(c, pl.Invoice.ClientID, pay.PayLinkID); err != nil {
		h.pageUnavailable(c, "count declines", err)
		return
	} else if locked {
		c.Header("Retry-After", strconv.Itoa(retry))
		fail(http.StatusTooManyRequests, "Too many declined payments on this invoice. Payments are paused for an hour; nothing was charged. Please contact the practice.")
		return
	}
	res, err := h.sendPay(c, pl.Invoice, h.idempotencyKey(pl.Token, nonce), pay)
	if err != nil {
		status, msg := h.payPageError(c, err)
		if status == http.StatusConflict || status == http.StatusGone {
			// The invoice changed under the payer: show it as it is now.
			if fresh, gerr := h.Store.GetInvoice(c.Request.Context(), pl.Invoice.ID); gerr == nil {
				pl.Invoice = fresh
				if nd, derr := h.payPageData(c, pl, in); derr == nil {
					d = nd
				}
			}
		}
		fail(status, msg)
		return
	}
	switch res.Status {
	case contract.PaymentFailed:
		msg := res.FailureMessage
		if msg == "" {
			msg = "Your payment was declined."
		}
		fail(http.StatusPaymentRequired, msg+" Nothing was charged; you can try another card.")
		return
	case contract.PaymentRequiresAction:
		if res.NextActionURL != "" {
			c.Redirect(http.StatusSeeOther, res.NextActionURL)
			c.Abort()
			return
		}
	}
	fresh, err := h.Store.GetInvoice(c.Request.Context(), pl.Invoice.ID)
	if err != nil {
		h.pageUnavailable(c, "get invoice", err)
		return
	}
	out := pageData{Title: "Payment received · " + pl.Practice.Name, Practice: practiceViewOf(pl.Practice),
		Number: fresh.Number, Amount: money.Format(res.Amount, fresh.Currency), StatusLabel: statusLabel(fresh),
		Paid: money.Format(fresh.AmountPaid, fresh.Currency), Due: money.Format(fresh.AmountDue, fresh.Currency),
		PaidInFull: fresh.AmountDue == 0 && fresh.AmountProcessing == 0, BackURL: pl.URL(), Outcome: string(res.Status)}
	if res.Status == contract.PaymentProcessing {
		out.Title = "Payment processing · " + pl.Practice.Name
	}
	h.renderPage(c, http.StatusOK, "result", out)
}

// savedCardWithoutPortal says whether a pay-link-only visitor asked for one
// of the client's saved cards: by its billflow ID, or by the processor's
// PaymentMethod ID posted as if it were a newly entered card.
func (h *handlers) savedCardWithoutPortal(c *gin.Context, pl *payLink, in *formInput) (bool, error) {
	if strings.HasPrefix(in.method, "saved:") {
		return true, nil
	}
	if in.method != "new" || in.pmID == "" {
		return false, nil
	}
	saved, err := h.Cards.List(c.Request.Context(), pl.Invoice.ClientID)
	if err != nil {
		return false, err
	}
	for _, m := range saved {
		if m.ProcessorPMID == in.pmID {
			return true, nil
		}
	}
	return false, nil
}

// payInputFromForm turns the form into the pay Update's input, or a message
// that names what to fix.
func (h *handlers) payInputFromForm(c *gin.Context, pl *payLink, in *formInput) (*contract.PayInput, string) {
	cur := pl.Invoice.Currency
	pay := &contract.PayInput{ReturnURL: h.Config.PublicBaseURL + pl.URL()}
	switch in.choice {
	case "full":
		// The amount the payer saw on the button, not whatever is due by now.
		amt, err := strconv.ParseInt(in.full, 10, 64)
		if err != nil || amt <= 0 || amt > maxAmount {
			return nil, "The amount could not be read; please reload the page."
		}
		pay.Amount = amt
	case "part":
		amt, err := parseMajor(in.part, cur)
		if err != nil {
			return nil, "Amount: " + err.Error() + "."
		}
		if amt <= 0 {
			return nil, "Amount: enter an amount greater than zero."
		}
		pay.Amount = amt
	default:
		return nil, "Choose whether to pay in full or pay part."
	}

	if msg := h.payMethodFromForm(c, pl.Invoice.ClientID, in, pay); msg != "" {
		return nil, msg
	}
	return pay, ""
}

// payMethodFromForm fills in how the payer pays (a saved method, a test
// card, or a card tokenized by Stripe.js) and who they are, or returns a
// message that names what to fix. The pay page and the portal share it.
func (h *handlers) payMethodFromForm(c *gin.Context, clientID string, in *formInput, pay *contract.PayInput) string {
	testMode, elements := h.testMode(), h.elements()
	switch {
	case strings.HasPrefix(in.method, "saved:"):
		m, err := h.Cards.Get(c.Request.Context(), clientID, strings.TrimPrefix(in.method, "saved:"))
		if err != nil {
			return "That saved card is no longer available; choose another payment method."
		}
		pay.SavedPaymentMethodID = m.ID
		pay.PaymentMethodID = m.ProcessorPMID
		pay.MethodLabel = cards.Label(m.Type, m.Brand, m.Last4, m.BankName)
		pay.PayerName = firstNonEmpty(in.name, m.CardholderName)
		pay.BillingZIP = firstNonEmpty(in.zip, m.BillingZIP)
	case in.method == "new":
		switch {
		case in.testCard != "" && testMode:
			if !isTestCard(in.testCard) {
				return "Choose one of the listed test cards."
			}
			pay.PaymentMethodID = in.testCard
		case in.pmID != "" && elements:
			if !pmIDRe.MatchString(in.pmID) {
				return "The card could not be read; please enter it again."
			}
			pay.PaymentMethodID = in.pmID
		case in.testCard != "" || in.pmID != "":
			return "That payment method is not accepted here."
		default:
			return "Enter your card information."
		}
		bank := strings.HasPrefix(pay.PaymentMethodID, "pm_usBankAccount")
		if in.name == "" {
			if bank {
				return "Enter the account holder's name."
			}
			return "Enter the cardholder name as it appears on the card."
		}
		if !bank && in.zip == "" {
			return "Enter the billing ZIP code of the card."
		}
		pay.PayerName, pay.BillingZIP = in.name, in.zip
		pay.SaveCard = in.saveCard
		pay.MethodLabel = h.Cards.NewLabel(c.Request.Context(), pay.PaymentMethodID)
	default:
		return "Choose a payment method."
	}
	if len(pay.PayerName) > 200 {
		return "The cardholder name is too long (200 characters at most)."
	}
	if strings.ContainsRune(pay.PayerName, 0) || !utf8.ValidString(pay.PayerName) {
		return "The cardholder name contains characters that cannot be used; type it again."
	}
	if pay.BillingZIP != "" && !zipRe.MatchString(pay.BillingZIP) {
		return "Enter a valid billing ZIP or postal code."
	}
	return ""
}

// payPageLimited applies the payment-attempt limits (per link's invoice, per
// client, per IP) that guard against card testing on this public page.
func (h *handlers) payPageLimited(c *gin.Context, inv *store.Invoice) (int, bool) {
	return h.pageLimited(c, inv.ID, inv.ClientID)
}

// sendPay sends the pay Update as the API's payments route does (same Update
// name and ID scheme, the same UpdateWait bound), but returns the error so
// the page can explain it in HTML rather than JSON. errUpdatePending: the
// wait ran out with the payment still going on.
func (h *handlers) sendPay(c *gin.Context, inv *store.Invoice, key string, in *contract.PayInput) (*contract.PayResult, error) {
	in.IdempotencyKey, in.Scope, in.RequestHash = key, "paypage", in.Fingerprint()
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.updateWait())
	defer cancel()
	tc, err := h.temporalFor(ctx, inv.PracticeID)
	if err != nil {
		return nil, err
	}
	handle, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: contract.InvoiceWorkflowID(inv.ID), UpdateID: contract.PayUpdate + ":" + key,
		UpdateName: contract.PayUpdate, Args: []any{in}, WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	var res contract.PayResult
	if err == nil {
		err = handle.Get(ctx, &res)
	}
	if err != nil && timedOut(ctx, err) && c.Request.Context().Err() == nil {
		return nil, errUpdatePending
	}
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// payPageError maps an Update failure to a status and words for the payer.
func (h *handlers) payPageError(c *gin.Context, err error) (int, string) {
	var appErr *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case errors.Is(err, errUpdatePending):
		c.Header("Retry-After", "5")
		return http.StatusServiceUnavailable, "Your payment is still being processed. Please reload this page in a minute " +
			"before trying again: once it has gone through, it shows here."
	case errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeInvalidPayment:
		return http.StatusBadRequest, capitalize(appErr.Message()) + ". Nothing was charged."
	case errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeInvalidState:
		return http.StatusConflict, capitalize(appErr.Message()) + "."
	case errors.As(err, &nf):
		return http.StatusConflict, "This invoice can no longer be paid online. Please contact the practice."
	}
	h.Logger.Error("pay page update", "request_id", c.GetString(ctxRequestID), "error", err.Error())
	return http.StatusServiceUnavailable, "We couldn't confirm your payment just now. Please reload this page before trying again: " +
		"if the payment went through, it will show here."
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
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
