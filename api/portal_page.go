package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/store"
)

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
	h.writePage(c, status, "portal page", name, nonce, d)
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
