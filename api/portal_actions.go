package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/paylink"
	"github.com/billflow/billflow/store"
)

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
