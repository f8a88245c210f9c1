package api

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/store"
)

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
