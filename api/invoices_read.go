package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/paylink"
	"github.com/billflow/billflow/store"
)

// loadInvoice reads an invoice the caller may see, or answers 404.
func (h *handlers) loadInvoice(c *gin.Context) (*store.Invoice, bool) {
	inv, err := h.Store.GetInvoice(c.Request.Context(), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !principalOf(c).canSeeInvoice(inv)) {
		notFound(c, "invoice")
		return nil, false
	}
	if err != nil {
		h.internal(c, "get invoice", err)
		return nil, false
	}
	return inv, true
}

type invoiceJSON struct {
	*store.Invoice
	Object     string           `json:"object"`
	IssueDate  string           `json:"issue_date"`
	DueDate    string           `json:"due_date"`
	Items      []itemJSON       `json:"items"`
	Payments   []*store.Payment `json:"payments"`
	Refunds    []*store.Refund  `json:"refunds"`
	PayURL     string           `json:"pay_url,omitempty"`
	WorkflowID string           `json:"workflow_id"`
}

// invoiceSummaryJSON is an invoice as lists show it (GET /v1/invoices, a
// client's billing): without items, payments and refunds, which only
// GET /v1/invoices/{id} carries (lists used to show them as null).
type invoiceSummaryJSON struct {
	*store.Invoice
	Object     string     `json:"object"`
	IssueDate  string     `json:"issue_date"`
	DueDate    string     `json:"due_date"`
	Items      []itemJSON `json:"items,omitempty"` // always nil: hides the invoice's own items
	WorkflowID string     `json:"workflow_id"`
}

// listItemView is an invoice as lists show it (GET /v1/invoices, the billing
// overview).
func listItemView(inv *store.Invoice) *invoiceSummaryJSON {
	return &invoiceSummaryJSON{Invoice: inv, Object: "invoice", IssueDate: inv.IssueDate.Format(time.DateOnly),
		DueDate: inv.DueDate.Format(time.DateOnly), WorkflowID: contract.InvoiceWorkflowID(inv.ID)}
}

type itemJSON struct {
	store.Item
	ServiceDate string `json:"service_date"`
}

func (h *handlers) invoiceView(c *gin.Context, inv *store.Invoice) (*invoiceJSON, error) {
	ctx := c.Request.Context()
	pays, err := h.Store.ListPayments(ctx, inv.ID)
	if err != nil {
		return nil, err
	}
	refs, err := h.Store.ListRefunds(ctx, inv.ID)
	if err != nil {
		return nil, err
	}
	v := detailView(&store.InvoiceDetail{Invoice: inv, Payments: pays, Refunds: refs})
	if v.PayURL, err = h.practicePayURL(ctx, inv); err != nil {
		return nil, err
	}
	return v, nil
}

// payURL is the invoice's pay link while it has a balance to pay, "" when
// it has none. The token is derived (paylink.Derived: the same all day, and
// recognised without a stored hash), so showing it costs no write.
func (h *handlers) payURL(inv *store.Invoice, daysAfterDue int32) (string, error) {
	if inv.AmountDue <= 0 || (inv.Status != store.StatusOpen && inv.Status != store.StatusPartiallyPaid) {
		return "", nil
	}
	exp := paylink.Expiry(inv.DueDate, int(daysAfterDue))
	if now := h.Now().UTC(); exp.Before(now.Add(7 * 24 * time.Hour)) {
		// Past (or near) the link's usual end it still works for a week.
		exp = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 8)
	}
	tok, err := paylink.Derived(h.Config.PayLinkSecret, inv.ID, exp)
	if err != nil {
		return "", err
	}
	return paylink.URL(h.Config.PublicBaseURL, tok), nil
}

// practicePayURL is payURL for a caller without the practice at hand.
func (h *handlers) practicePayURL(ctx context.Context, inv *store.Invoice) (string, error) {
	if inv.AmountDue <= 0 {
		return "", nil
	}
	practice, err := h.Store.GetPractice(ctx, inv.PracticeID)
	if err != nil {
		return "", err
	}
	return h.payURL(inv, practice.PayLinkDaysAfterDue)
}

func (h *handlers) writeInvoice(c *gin.Context, status int, inv *store.Invoice) {
	v, err := h.invoiceView(c, inv)
	if err != nil {
		h.internal(c, "invoice view", err)
		return
	}
	c.JSON(status, v)
}

// getInvoice is the hottest read: one round trip to Postgres.
func (h *handlers) getInvoice(c *gin.Context) {
	d, err := h.Store.GetInvoiceDetail(c.Request.Context(), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !principalOf(c).canSeeInvoice(d.Invoice)) {
		notFound(c, "invoice")
		return
	}
	if err != nil {
		h.internal(c, "get invoice", err)
		return
	}
	v := detailView(d)
	if v.PayURL, err = h.payURL(d.Invoice, d.PayLinkDaysAfterDue); err != nil {
		h.internal(c, "pay url", err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func detailView(d *store.InvoiceDetail) *invoiceJSON {
	inv := d.Invoice
	out := &invoiceJSON{Invoice: inv, Object: "invoice", IssueDate: inv.IssueDate.Format(time.DateOnly),
		DueDate: inv.DueDate.Format(time.DateOnly), Payments: d.Payments, Refunds: d.Refunds,
		WorkflowID: contract.InvoiceWorkflowID(inv.ID), Items: []itemJSON{}}
	if out.Payments == nil {
		out.Payments = []*store.Payment{}
	}
	if out.Refunds == nil {
		out.Refunds = []*store.Refund{}
	}
	for _, it := range inv.Items {
		out.Items = append(out.Items, itemJSON{Item: it, ServiceDate: it.ServiceDate.Format(time.DateOnly)})
	}
	return out
}

func (h *handlers) listInvoices(c *gin.Context) {
	pr := principalOf(c)
	f := store.InvoiceFilter{PracticeID: pr.PracticeID, ClientID: c.Query("client_id"), Status: c.Query("status"),
		After: c.Query("starting_after")}
	if pr.ClientID != "" {
		if f.ClientID != "" && f.ClientID != pr.ClientID {
			notFound(c, "client")
			return
		}
		f.ClientID = pr.ClientID
	}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			badRequest(c, "parameter_invalid", "limit must be from 1 to 100", "limit")
			return
		}
		f.Limit = n
	}
	if f.Limit == 0 {
		f.Limit = 25
	}
	if f.Status != "" && !contract.InvoiceStatus(f.Status).Valid() {
		badRequest(c, "parameter_invalid", "status must be one of "+contract.InvoiceStatusList(), "status")
		return
	}
	page, err := h.Store.ListInvoices(c.Request.Context(), store.InvoiceFilter{PracticeID: f.PracticeID, ClientID: f.ClientID,
		Status: f.Status, After: f.After, Limit: f.Limit + 1})
	if err != nil {
		h.internal(c, "list invoices", err)
		return
	}
	more := len(page) > f.Limit
	if more {
		page = page[:f.Limit]
	}
	data := make([]*invoiceSummaryJSON, 0, len(page))
	for _, inv := range page {
		data = append(data, listItemView(inv))
	}
	resp := gin.H{"object": "list", "data": data, "has_more": more}
	if more {
		resp["next_cursor"] = page[len(page)-1].ID
	}
	c.JSON(http.StatusOK, resp)
}
