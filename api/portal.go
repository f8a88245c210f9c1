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
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/paylink"
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

// ---- rendering ----

// portalData is every portal page's data.
type portalData struct {
	Title      string
	Practice   *practiceView
	ClientName string
	CSRF       string
	Notice     *notice
	Error      string

	// balance
	Balance       string
	OtherBalances []string
	Processing    string
	CanPayBalance bool
	BalanceNote   string

	Invoices   []portalInvoice
	Statements []portalDoc
	Superbills []portalDoc

	Cards          []portalCard
	CanRemoveCards bool

	// account history
	From, To, RangeLabel, HistoryError string
	History                            []portalEntry

	// the balance pay page
	PayInvoices []portalInvoice
	Form        *formView

	// messages
	Heading, Text string
}

type portalInvoice struct {
	ID, Number, IssueDate, DueDate, Total, Due, Status, StatusClass string
	Payable                                                         bool
}

type portalDoc struct{ ID, Kind, Period, Created string }

type portalCard struct{ ID, Label, Expiry string }

type portalEntry struct{ Type, ISODate, Date, Kind, Detail, Invoice, InvoiceStatus, Amount string }

// historyStatusLabels name a session's invoice status in the account history.
var historyStatusLabels = map[contract.InvoiceStatus]string{contract.InvoiceOpen: "Open", contract.InvoiceProcessing: "Processing",
	contract.InvoicePartiallyPaid: "Partially paid", contract.InvoicePaid: "Paid", contract.InvoicePartiallyRefunded: "Partially refunded",
	contract.InvoiceRefunded: "Refunded"}

const dateLabel = "Jan 2, 2006"

func (h *handlers) renderPortalPage(c *gin.Context, status int, name string, d *portalData) {
	nonce := ""
	if d.Form != nil {
		nonce = d.Form.ScriptNonce
	}
	h.pageHeaders(c, nonce)
	var buf strings.Builder
	if err := pageTmpl.ExecuteTemplate(&buf, name, d); err != nil {
		h.Logger.Error("render portal page", "request_id", c.GetString(ctxRequestID), "page", name, "error", err.Error())
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("Something went wrong. Please try again."))
		c.Abort()
		return
	}
	c.Data(status, "text/html; charset=utf-8", []byte(buf.String()))
	c.Abort()
}

func (h *handlers) portalDenied(c *gin.Context) {
	c.Header("WWW-Authenticate", `Bearer realm="billflow portal"`)
	h.renderPortalPage(c, http.StatusUnauthorized, "portal_denied", &portalData{Title: "Link expired · Billing & Payments"})
}

func (h *handlers) portalMessage(c *gin.Context, status int, heading, text string) {
	d := &portalData{Title: heading, Heading: heading, Text: text}
	if s := sessionOf(c); s != nil {
		d.Practice = practiceViewOf(s.Practice)
	}
	h.renderPortalPage(c, status, "portal_message", d)
}

// portalUnavailable logs the cause; the client learns only that it is temporary.
func (h *handlers) portalUnavailable(c *gin.Context, op string, err error) {
	h.Logger.Error(op, "request_id", c.GetString(ctxRequestID), "error", err.Error())
	h.portalMessage(c, http.StatusServiceUnavailable, "Something went wrong on our side",
		"Your billing page is unavailable right now. Please try again in a few minutes.")
}

// portalStatus names an invoice's state the way a client reads it.
func portalStatus(inv *store.Invoice, today time.Time) (label, class string) {
	switch {
	case inv.Status == store.StatusRefunded:
		return "Refunded", ""
	case inv.Status == store.StatusPartiallyRefunded:
		return "Partially refunded", ""
	case inv.AmountDue > 0 && inv.DueDate.Before(today):
		return "Overdue", "overdue"
	case inv.AmountDue == 0 && inv.AmountProcessing > 0:
		return "Processing", ""
	case inv.AmountDue == 0:
		return "Paid", "paid"
	case inv.AmountPaid > 0 || inv.AmountProcessing > 0:
		return "Partially paid", "partial"
	}
	return "Open", "open"
}

func portalInvoiceOf(inv *store.Invoice, today time.Time) portalInvoice {
	label, class := portalStatus(inv, today)
	return portalInvoice{ID: inv.ID, Number: inv.Number, IssueDate: inv.IssueDate.Format(dateLabel),
		DueDate: inv.DueDate.Format(dateLabel), Total: money.Format(inv.Total, inv.Currency),
		Due: money.Format(inv.AmountDue, inv.Currency), Status: label, StatusClass: class,
		Payable: inv.AmountDue > 0 && inv.Status != store.StatusVoid}
}

func portalDocOf(d *store.Document) portalDoc {
	out := portalDoc{ID: d.ID, Kind: d.Kind, Created: d.CreatedAt.Format(dateLabel)}
	switch {
	case d.PeriodFrom != nil && d.PeriodTo != nil:
		out.Period = d.PeriodFrom.Format(dateLabel) + " – " + d.PeriodTo.Format(dateLabel)
	default:
		out.Period = d.CreatedAt.Format(dateLabel)
	}
	return out
}

func portalEntryOf(e *store.HistoryEntry) portalEntry {
	v := historyEntryView(e)
	out := portalEntry{Type: v.Type, ISODate: v.Date, Date: e.Date.Format(dateLabel), Invoice: e.InvoiceNumber,
		Amount: money.Format(e.Amount, e.Currency)}
	switch e.Kind {
	case store.HistorySession:
		out.Kind, out.Detail = "Session", e.Description
		out.InvoiceStatus = historyStatusLabels[e.InvoiceStatus]
		if e.CPTCode != "" {
			out.Detail += " (" + e.CPTCode + ")"
		}
		if e.Units > 1 {
			out.Detail += fmt.Sprintf(" × %d", e.Units)
		}
	case store.HistoryPayment:
		out.Kind, out.Detail = "Payment", v.MethodLabel
		if e.PayerName != "" {
			out.Detail += ", paid by " + e.PayerName
		}
		if e.Status == string(contract.PaymentProcessing) {
			out.Detail += " (processing)"
		}
	case store.HistoryRefund:
		out.Kind, out.Detail = "Refund", "to your payment method"
		if e.Reason != "" {
			out.Detail += ": " + e.Reason
		}
		if e.Status != string(contract.RefundSucceeded) {
			out.Detail += " (" + e.Status + ")"
		}
	}
	return out
}

// renderPortal is the Billing & Payments page: balance and Pay Now,
// invoices, statements, superbills, saved cards, and the account history of
// the range in the query (?from=&to=, the API's defaults).
func (h *handlers) renderPortal(c *gin.Context, s *portalSession) {
	ctx := c.Request.Context()
	today := practiceToday(s.Practice, h.Now())
	b, err := h.Store.ClientBilling(ctx, s.Practice.ID, s.Client.ID)
	if err != nil {
		h.portalUnavailable(c, "client billing", err)
		return
	}
	status := http.StatusOK
	d := &portalData{Title: "Billing & Payments · " + s.Practice.Name, Practice: practiceViewOf(s.Practice),
		ClientName: s.Client.Name, CSRF: h.portalCSRF(s.Token), CanRemoveCards: s.Practice.AllowClientCardRemoval}

	bal := b.Balance()
	d.Balance = money.Format(bal.AmountDue, bal.Currency)
	due := 0
	for _, cb := range b.Balances {
		due++
		if cb.Currency != bal.Currency {
			d.OtherBalances = append(d.OtherBalances, money.Format(cb.AmountDue, cb.Currency))
		}
	}
	switch {
	case due == 1:
		d.CanPayBalance = true
		if bal.AmountDue == 0 {
			// The one currency due is not the practice's: show that one.
			d.Balance, d.OtherBalances = d.OtherBalances[0], nil
		}
	case due > 1:
		d.BalanceNote = "Your invoices are in more than one currency: pay them one by one below."
	default:
		d.BalanceNote = "Nothing is due. Thank you!"
	}
	var processing int64
	cur := ""
	for _, inv := range b.Invoices {
		d.Invoices = append(d.Invoices, portalInvoiceOf(inv, today))
		if inv.AmountProcessing > 0 {
			processing += inv.AmountProcessing
			cur = inv.Currency
		}
	}
	if processing > 0 {
		d.Processing = "A bank payment of " + money.Format(processing, cur)
	}
	for _, doc := range b.Statements {
		d.Statements = append(d.Statements, portalDocOf(doc))
	}
	for _, doc := range b.Superbills {
		d.Superbills = append(d.Superbills, portalDocOf(doc))
	}

	pms, err := h.Cards.List(ctx, s.Client.ID)
	if err != nil {
		h.portalUnavailable(c, "list payment methods", err)
		return
	}
	for _, m := range pms {
		card := portalCard{ID: m.ID, Label: cards.Label(m.Type, m.Brand, m.Last4, m.BankName)}
		if m.ExpMonth > 0 && m.ExpYear > 0 {
			card.Expiry = fmt.Sprintf("%02d/%d", m.ExpMonth, m.ExpYear)
		}
		d.Cards = append(d.Cards, card)
	}

	from, to, ferr := historyRange(c.Query("from"), c.Query("to"), today)
	if ferr != nil {
		status = http.StatusBadRequest
		d.HistoryError = capitalize(ferr.msg) + ". Showing the last 90 days instead."
		from, to, _ = historyRange("", "", today)
	}
	d.From, d.To = from.Format(time.DateOnly), to.Format(time.DateOnly)
	d.RangeLabel = from.Format(dateLabel) + " to " + to.Format(dateLabel)
	entries, err := h.Store.AccountHistory(ctx, s.Practice.ID, s.Client.ID, s.Practice.Timezone, from, to)
	if err != nil {
		h.portalUnavailable(c, "account history", err)
		return
	}
	for i := len(entries) - 1; i >= 0; i-- {
		d.History = append(d.History, portalEntryOf(&entries[i]))
	}

	d.Notice = h.portalNotice(c, s)
	h.renderPortalPage(c, status, "portal", d)
}

// portalNotice confirms what the last form did. Only fixed texts, or facts
// read back from the store for this client: nothing from the URL is echoed.
func (h *handlers) portalNotice(c *gin.Context, s *portalSession) *notice {
	if c.Query("notice") == "card_removed" {
		return &notice{"ok", "The card was removed."}
	}
	id := c.Query("paid")
	if id == "" || len(id) > 100 {
		return nil
	}
	pays, err := h.Store.PaymentsOfBalance(c.Request.Context(), id)
	if err != nil || len(pays) == 0 {
		return nil
	}
	var total int64
	for _, p := range pays {
		if p.ClientID != s.Client.ID || p.PracticeID != s.Practice.ID {
			return nil
		}
		total += p.Amount
	}
	amount := money.Format(total, pays[0].Currency)
	switch pays[0].Status {
	case contract.PaymentSucceeded:
		return &notice{"ok", "Your payment of " + amount + " was received. Thank you! A receipt is on its way by email."}
	case contract.PaymentProcessing:
		return &notice{"info", "Your bank payment of " + amount + " is processing. It usually takes a few days; we'll email you when it clears."}
	}
	return nil
}

// ---- paying the entire balance ----

// portalPayForm is Pay Now next to the balance: the invoices it pays and
// the same card form as the hosted pay page.
func (h *handlers) portalPayForm(c *gin.Context) {
	h.renderPortalPay(c, http.StatusOK, nil, "")
}

func (h *handlers) renderPortalPay(c *gin.Context, status int, in *formInput, errMsg string) {
	s := sessionOf(c)
	ctx := c.Request.Context()
	open, err := h.Store.OpenInvoicesOldestFirst(ctx, s.Client.ID)
	if err != nil {
		h.portalUnavailable(c, "open invoices", err)
		return
	}
	if len(open) == 0 {
		if errMsg == "" {
			h.pageHeaders(c, "")
			c.Redirect(http.StatusSeeOther, portalPath)
			c.Abort()
			return
		}
		h.portalMessage(c, status, "Nothing to pay", errMsg)
		return
	}
	cur := open[0].Currency
	var total int64
	today := practiceToday(s.Practice, h.Now())
	d := &portalData{Title: "Pay your balance · " + s.Practice.Name, Practice: practiceViewOf(s.Practice), Error: errMsg}
	for _, inv := range open {
		if inv.Currency != cur {
			h.portalMessage(c, http.StatusBadRequest, "Pay your invoices one by one",
				"Your invoices are in more than one currency, so they cannot be paid together. Use Pay Now next to each invoice.")
			return
		}
		total += inv.AmountDue
		d.PayInvoices = append(d.PayInvoices, portalInvoiceOf(inv, today))
	}
	d.Balance = money.Format(total, cur)
	f := &formView{Action: portalPath + "/pay", CSRF: h.portalCSRF(s.Token), Nonce: randomHex(16), ScriptNonce: randomHex(16),
		Symbol: currencySymbol(cur), Exponent: money.Exponent(cur), FullFormatted: d.Balance, FullMinor: total,
		TestMode: h.testMode(), Elements: h.elements(), PublishableKey: h.Config.StripePublishableKey}
	saved, err := h.Cards.List(ctx, s.Client.ID)
	if err != nil {
		h.portalUnavailable(c, "list payment methods", err)
		return
	}
	for _, m := range saved {
		f.Saved = append(f.Saved, savedView{ID: m.ID, Label: cards.Label(m.Type, m.Brand, m.Last4, m.BankName)})
	}
	if in == nil {
		in = &formInput{testCard: "pm_card_visa"}
		if len(f.Saved) > 0 {
			in.method = "saved:" + f.Saved[0].ID
		}
		if f.Elements {
			in.testCard = ""
		}
	}
	for i := range f.Saved {
		f.Saved[i].Checked = in.method == "saved:"+f.Saved[i].ID
	}
	f.NewChosen = in.method == "new" || in.method == ""
	for _, tc := range testCards {
		f.TestCards = append(f.TestCards, optionView{Value: tc.Value, Label: tc.Label, Selected: tc.Value == in.testCard})
	}
	f.Name, f.ZIP, f.SaveCard = in.name, in.zip, in.saveCard
	f.ButtonText = "Pay " + d.Balance
	d.Form = f
	h.renderPortalPage(c, status, "portal_pay", d)
}

// portalIdempotencyKey makes the balance payment's key from the client and
// the rendered form's nonce: the same form submitted twice is one charge.
func (h *handlers) portalIdempotencyKey(clientID, nonce string) string {
	m := hmac.New(sha256.New, h.Config.PayLinkSecret)
	m.Write([]byte("billflow portal balance\x00" + clientID + "\x00" + nonce))
	return "portal-" + hex.EncodeToString(m.Sum(nil)[:16])
}

// portalPaySubmit pays the entire balance as POST
// /v1/clients/{id}/balance-payments does (runBalancePayment), for the
// amount the client saw.
func (h *handlers) portalPaySubmit(c *gin.Context) {
	s := sessionOf(c)
	vals, problem := readPayForm(c)
	if problem != "" {
		h.portalMessage(c, http.StatusBadRequest, "We couldn't read that payment", problem+" Nothing was charged.")
		return
	}
	if !h.portalFormOK(c, vals) || !nonceRe.MatchString(vals.Get("nonce")) {
		h.portalMessage(c, http.StatusForbidden, "This form has expired",
			"Please go back to Billing & Payments, reload the page and try again. Nothing was charged.")
		return
	}
	in := formInputOf(vals)
	amount, err := strconv.ParseInt(in.full, 10, 64)
	if in.choice != "full" || err != nil || amount <= 0 || amount > maxAmount {
		h.renderPortalPay(c, http.StatusBadRequest, in, "The amount could not be read; please reload the page.")
		return
	}
	var pay contract.PayInput
	if msg := h.payMethodFromForm(c, s.Client.ID, in, &pay); msg != "" {
		h.renderPortalPay(c, http.StatusBadRequest, in, msg)
		return
	}
	req := &balanceReq{Amount: &amount, SavedPaymentMethodID: pay.SavedPaymentMethodID, SaveCard: pay.SaveCard,
		PayerName: pay.PayerName, BillingZIP: pay.BillingZIP}
	if req.SavedPaymentMethodID == "" {
		req.PaymentMethod = pay.PaymentMethodID
	}
	if retry, limited := h.pageLimited(c, "", s.Client.ID); limited {
		c.Header("Retry-After", strconv.Itoa(retry))
		h.renderPortalPay(c, http.StatusTooManyRequests, in,
			fmt.Sprintf("Too many payment attempts. Please wait %d seconds and try again. Nothing was charged.", retry))
		return
	}
	res, fail := h.runBalancePayment(c.Request.Context(), s.Client, req, h.portalIdempotencyKey(s.Client.ID, vals.Get("nonce")), true)
	if fail != nil {
		switch {
		case fail.pending:
			h.renderPortalPay(c, http.StatusServiceUnavailable, in, "Your payment is still being processed. "+
				"Please check Billing & Payments in a minute before trying again: once it has gone through, it shows there.")
		case fail.status >= 500:
			h.Logger.Error(fail.op, "request_id", c.GetString(ctxRequestID), "error", fail.cause.Error())
			h.renderPortalPay(c, http.StatusServiceUnavailable, in, "We couldn't confirm your payment just now. "+
				"Please check Billing & Payments before trying again: if the payment went through, it shows there.")
		case fail.code == "amount_mismatch" || fail.code == "balance_changed":
			h.renderPortalPay(c, http.StatusConflict, nil, "Your balance changed since you opened this page. "+
				"Review the new amount and pay again. Nothing was charged.")
		case fail.code == "no_balance":
			h.renderPortalPay(c, http.StatusConflict, nil, "You have no balance to pay.")
		default:
			h.renderPortalPay(c, fail.status, in, capitalize(fail.message)+". Nothing was charged.")
		}
		return
	}
	switch {
	case res.Status == contract.PaymentFailed:
		msg := res.FailureMessage
		if msg == "" {
			msg = "Your payment was declined."
		}
		h.renderPortalPay(c, http.StatusPaymentRequired, in, msg+" Nothing was charged; you can try another card.")
		return
	case res.NextActionURL != "":
		c.Redirect(http.StatusSeeOther, res.NextActionURL)
		c.Abort()
		return
	}
	h.pageHeaders(c, "")
	c.Redirect(http.StatusSeeOther, portalPath+"?paid="+url.QueryEscape(res.BalancePaymentID)+"#balance")
	c.Abort()
}

// ---- one invoice ----

// portalInvoice reads an invoice of the signed-in client, or renders 404.
func (h *handlers) portalInvoice(c *gin.Context) (*store.Invoice, bool) {
	inv, err := h.Store.GetInvoice(c.Request.Context(), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (!principalOf(c).canSeeInvoice(inv) ||
		inv.Status == store.StatusVoid || inv.Status == contract.InvoiceDraft)) {
		h.portalMessage(c, http.StatusNotFound, "Invoice not found", "This invoice is not on your account.")
		return nil, false
	}
	if err != nil {
		h.portalUnavailable(c, "get invoice", err)
		return nil, false
	}
	return inv, true
}

// portalPayInvoice is Pay Now next to an invoice: a fresh link to the hosted
// pay page (links are stored hashed, so an old one cannot be handed out again).
func (h *handlers) portalPayInvoice(c *gin.Context) {
	inv, ok := h.portalInvoice(c)
	if !ok {
		return
	}
	if inv.AmountDue <= 0 {
		h.pageHeaders(c, "")
		c.Redirect(http.StatusSeeOther, portalPath+"#invoices")
		c.Abort()
		return
	}
	exp := h.Now().Add(portalPayLinkTTL)
	tok, err := paylink.New(h.Config.PayLinkSecret, inv.ID, exp)
	if err == nil {
		err = h.Store.SavePayLink(c.Request.Context(), inv.ID, paylink.Hash(tok), exp)
	}
	if err != nil {
		h.portalUnavailable(c, "portal pay link", err)
		return
	}
	h.pageHeaders(c, "")
	c.Redirect(http.StatusSeeOther, portalPath+"/pay/"+tok)
	c.Abort()
}

// portalInvoicePDF streams the invoice, or its receipt once paid.
func (h *handlers) portalInvoicePDF(c *gin.Context) {
	inv, ok := h.portalInvoice(c)
	if !ok {
		return
	}
	doc, err := h.Store.LatestInvoiceDocument(c.Request.Context(), inv.ID)
	if errors.Is(err, store.ErrNotFound) {
		c.Header("Retry-After", "30")
		h.portalMessage(c, http.StatusNotFound, "Your document is being prepared",
			"The PDF of invoice "+inv.Number+" will be ready in a minute or two. Please try again shortly.")
		return
	} else if err != nil {
		h.portalUnavailable(c, "latest invoice document", err)
		return
	}
	h.pageHeaders(c, "")
	h.streamDocumentAs(c, doc, doc.Filename(inv.Number), "attachment")
}

// portalDocumentPDF streams a statement or superbill of the signed-in client.
func (h *handlers) portalDocumentPDF(c *gin.Context) {
	s := sessionOf(c)
	ctx := c.Request.Context()
	doc, err := h.Store.GetDocument(ctx, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (doc.PracticeID != s.Practice.ID || doc.ClientID != s.Client.ID)) {
		h.portalMessage(c, http.StatusNotFound, "Document not found", "This document is not on your account.")
		return
	} else if err != nil {
		h.portalUnavailable(c, "get document", err)
		return
	}
	number := ""
	if doc.InvoiceID != "" {
		inv, err := h.Store.GetInvoice(ctx, doc.InvoiceID)
		if err != nil {
			h.portalUnavailable(c, "get invoice", err)
			return
		}
		number = inv.Number
	}
	h.pageHeaders(c, "")
	h.streamDocumentAs(c, doc, doc.Filename(number), "attachment")
}

// ---- saved cards and signing out ----

var csrfOnly = map[string]bool{"csrf": true}

// portalRemoveCard removes a saved card, where the practice lets clients.
func (h *handlers) portalRemoveCard(c *gin.Context) {
	s := sessionOf(c)
	vals, problem := readForm(c, csrfOnly)
	if problem != "" || !h.portalFormOK(c, vals) {
		h.portalMessage(c, http.StatusForbidden, "This form has expired",
			"Please go back to Billing & Payments, reload the page and try again. Nothing was changed.")
		return
	}
	_, err := h.Cards.Remove(c.Request.Context(), s.Practice, s.Client.ID, c.Param("pm"), true)
	switch {
	case errors.Is(err, cards.ErrRemovalNotAllowed):
		h.portalMessage(c, http.StatusForbidden, "Contact your practice to remove a card",
			s.Practice.Name+" does not let saved cards be removed here. Please contact them to remove it.")
		return
	case errors.Is(err, store.ErrNotFound):
		h.portalMessage(c, http.StatusNotFound, "Card not found", "That card is not saved on your account.")
		return
	case err != nil:
		h.portalUnavailable(c, "remove card", err)
		return
	}
	h.pageHeaders(c, "")
	c.Redirect(http.StatusSeeOther, portalPath+"?notice=card_removed#cards")
	c.Abort()
}

// portalSignOut forgets the cookie; the link in the email still works until
// it expires (the practice can revoke it).
func (h *handlers) portalSignOut(c *gin.Context) {
	vals, problem := readForm(c, csrfOnly)
	if problem != "" || !h.portalFormOK(c, vals) {
		h.portalMessage(c, http.StatusForbidden, "This form has expired", "Please reload the page and try again.")
		return
	}
	h.setPortalCookie(c, "", true)
	h.renderPortalPage(c, http.StatusOK, "portal_message", &portalData{Title: "Signed out", Heading: "You're signed out",
		Text: "To see your Billing & Payments page again, open the link from your practice's email."})
}
