package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
)

// GET /v1/clients/{id}/billing and GET /v1/clients/{id}/account-history:
// what a client's Billing & Payments page shows, for a practice's own
// systems and for the client's portal token.

// Account-history ranges: the default window, and the longest one asked for.
const (
	defaultHistoryDays = 90
	maxHistoryYears    = 3
)

// billingJSON is GET /v1/clients/{id}/billing.
type billingJSON struct {
	Object     string                 `json:"object"` // "billing"
	ClientID   string                 `json:"client_id"`
	Balance    store.CurrencyAmount   `json:"balance"`  // in the practice's currency; 0 if nothing is due
	Balances   []store.CurrencyAmount `json:"balances"` // one per currency with something due
	Invoices   []*invoiceSummaryJSON  `json:"invoices"` // as GET /v1/invoices lists them; open first, newest first
	Statements []map[string]any       `json:"statements"`
	Superbills []map[string]any       `json:"superbills"`
}

func (h *handlers) getBilling(c *gin.Context) {
	cl, ok := h.loadClient(c)
	if !ok {
		return
	}
	b, err := h.Store.ClientBilling(c.Request.Context(), cl.PracticeID, cl.ID)
	if err != nil {
		h.internal(c, "client billing", err)
		return
	}
	c.JSON(http.StatusOK, billingView(cl.ID, b))
}

func billingView(clientID string, b *store.ClientBilling) *billingJSON {
	out := &billingJSON{Object: "billing", ClientID: clientID, Balance: b.Balance(), Balances: b.Balances,
		Invoices: make([]*invoiceSummaryJSON, 0, len(b.Invoices)), Statements: make([]map[string]any, 0, len(b.Statements)),
		Superbills: make([]map[string]any, 0, len(b.Superbills))}
	for _, inv := range b.Invoices {
		out.Invoices = append(out.Invoices, listItemView(inv))
	}
	for _, d := range b.Statements {
		out.Statements = append(out.Statements, documentJSON(d))
	}
	for _, d := range b.Superbills {
		out.Superbills = append(out.Superbills, documentJSON(d))
	}
	return out
}

// historyEntryJSON is one entry of GET /v1/clients/{id}/account-history.
// Which of the optional fields are set depends on the type.
type historyEntryJSON struct {
	Date          string                 `json:"date"`
	Type          string                 `json:"type"` // session | payment | refund
	InvoiceID     string                 `json:"invoice_id"`
	InvoiceNumber string                 `json:"invoice_number"`
	InvoiceStatus contract.InvoiceStatus `json:"invoice_status"` // the invoice's status now (is this session paid?)
	Amount        int64                  `json:"amount"`
	Currency      string                 `json:"currency"`

	// session
	ServiceDate string `json:"service_date,omitempty"`
	Description string `json:"description,omitempty"`
	CPTCode     string `json:"cpt_code,omitempty"`
	Units       int64  `json:"units,omitempty"`

	// payment and refund
	PaymentID   string `json:"payment_id,omitempty"`
	RefundID    string `json:"refund_id,omitempty"`
	Status      string `json:"status,omitempty"`
	MethodLabel string `json:"method_label,omitempty"`
	PayerName   string `json:"payer_name,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

func historyEntryView(e *store.HistoryEntry) historyEntryJSON {
	out := historyEntryJSON{Date: e.Date.Format(time.DateOnly), Type: string(e.Kind), InvoiceID: e.InvoiceID,
		InvoiceNumber: e.InvoiceNumber, InvoiceStatus: e.InvoiceStatus, Amount: e.Amount, Currency: e.Currency}
	switch e.Kind {
	case store.HistorySession:
		out.ServiceDate, out.Description, out.CPTCode, out.Units = out.Date, e.Description, e.CPTCode, e.Units
	case store.HistoryPayment:
		out.PaymentID, out.Status, out.PayerName = e.PaymentID, e.Status, e.PayerName
		out.MethodLabel = cards.Label(e.MethodType, e.Brand, e.Last4, e.BankName)
	case store.HistoryRefund:
		out.RefundID, out.PaymentID, out.Status, out.Reason = e.RefundID, e.PaymentID, e.Status, e.Reason
	}
	return out
}

func (h *handlers) getAccountHistory(c *gin.Context) {
	cl, ok := h.loadClient(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	practice, err := h.Store.GetPractice(ctx, cl.PracticeID)
	if err != nil {
		h.internal(c, "get practice", err)
		return
	}
	from, to, ferr := historyRange(c.Query("from"), c.Query("to"), practiceToday(practice, h.Now()))
	if ferr != nil {
		badRequest(c, "parameter_invalid", ferr.msg, ferr.param)
		return
	}
	entries, err := h.Store.AccountHistory(ctx, cl.PracticeID, cl.ID, practice.Timezone, from, to)
	if err != nil {
		h.internal(c, "account history", err)
		return
	}
	data := make([]historyEntryJSON, 0, len(entries))
	for i := range entries {
		data = append(data, historyEntryView(&entries[i]))
	}
	c.JSON(http.StatusOK, gin.H{"object": "account_history", "client_id": cl.ID, "from": from.Format(time.DateOnly),
		"to": to.Format(time.DateOnly), "data": data})
}

// practiceToday is today's date in the practice's timezone, as a UTC midnight
// like the dates read from Postgres.
func practiceToday(p *store.Practice, now time.Time) time.Time {
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		loc = time.UTC
	}
	t := now.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// historyRange reads an account-history range (YYYY-MM-DD, both optional):
// to defaults to today, from to 90 days before to. From may not be after to,
// and the range may span at most three years.
func historyRange(fromS, toS string, today time.Time) (from, to time.Time, ferr *fieldErr) {
	to = today
	if toS != "" {
		t, err := time.Parse(time.DateOnly, toS)
		if err != nil {
			return from, to, &fieldErr{"to", fmt.Sprintf("to must be a date as YYYY-MM-DD, not %q", clip(toS, 40))}
		}
		to = t
	}
	from = to.AddDate(0, 0, -defaultHistoryDays)
	if fromS != "" {
		f, err := time.Parse(time.DateOnly, fromS)
		if err != nil {
			return from, to, &fieldErr{"from", fmt.Sprintf("from must be a date as YYYY-MM-DD, not %q", clip(fromS, 40))}
		}
		from = f
	}
	if from.After(to) {
		return from, to, &fieldErr{"from", fmt.Sprintf("from (%s) must be on or before to (%s)",
			from.Format(time.DateOnly), to.Format(time.DateOnly))}
	}
	if from.AddDate(maxHistoryYears, 0, 0).Before(to) {
		return from, to, &fieldErr{"from", fmt.Sprintf("the range %s to %s is longer than %d years; choose a shorter one",
			from.Format(time.DateOnly), to.Format(time.DateOnly), maxHistoryYears)}
	}
	return from, to, nil
}

// clip shortens what a caller sent before it is echoed in a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
