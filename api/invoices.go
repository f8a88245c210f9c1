package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/invoicestart"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/paylink"
	"github.com/billflow/billflow/store"
)

type itemReq struct {
	ServiceDate    string   `json:"service_date"`
	Description    string   `json:"description"`
	UnitAmount     *int64   `json:"unit_amount"`
	Units          *int64   `json:"units,omitempty"`
	CPTCode        string   `json:"cpt_code,omitempty"`
	Modifiers      []string `json:"modifiers,omitempty"`
	DiagnosisCodes []string `json:"diagnosis_codes,omitempty"`
	PlaceOfService string   `json:"place_of_service,omitempty"`
}

type partialReq struct {
	Enabled         bool   `json:"enabled"`
	MinimumAmount   *int64 `json:"minimum_amount,omitempty"`
	MinimumPercent  *int64 `json:"minimum_percent,omitempty"`
	MaxInstallments *int64 `json:"max_installments,omitempty"`
}

type createInvoiceReq struct {
	ClientID        string      `json:"client_id"`
	Currency        string      `json:"currency,omitempty"`
	DueDate         string      `json:"due_date"`
	Items           []itemReq   `json:"items"`
	PartialPayments *partialReq `json:"partial_payments,omitempty"`
	Memo            string      `json:"memo,omitempty"`
}

// maxAmount bounds any single amount (Stripe's own limit is 99,999,999 minor units).
const maxAmount = 99_999_999

type fieldErr struct{ param, msg string }

func (h *handlers) validateInvoice(req *createInvoiceReq, practice *store.Practice) (*store.NewInvoice, *fieldErr) {
	cur := strings.ToLower(strings.TrimSpace(req.Currency))
	if cur == "" {
		cur = practice.Currency
	}
	if !money.Supported(cur) {
		return nil, &fieldErr{"currency", fmt.Sprintf("currency %q is not a supported ISO 4217 code", req.Currency)}
	}
	due, err := time.Parse(time.DateOnly, req.DueDate)
	if err != nil {
		return nil, &fieldErr{"due_date", "due_date is required as YYYY-MM-DD"}
	}
	if len(req.Items) == 0 || len(req.Items) > 200 {
		return nil, &fieldErr{"items", "items must list 1 to 200 services"}
	}
	if len(req.Memo) > 2000 {
		return nil, &fieldErr{"memo", "memo must be at most 2000 characters"}
	}
	ni := &store.NewInvoice{Currency: cur, DueDate: due, Memo: req.Memo}
	var total int64
	for i, it := range req.Items {
		p := func(f string) string { return fmt.Sprintf("items[%d].%s", i, f) }
		sd, err := time.Parse(time.DateOnly, it.ServiceDate)
		if err != nil {
			return nil, &fieldErr{p("service_date"), p("service_date") + " is required as YYYY-MM-DD"}
		}
		desc := strings.TrimSpace(it.Description)
		if desc == "" || len(desc) > 500 {
			return nil, &fieldErr{p("description"), p("description") + " is required (1-500 characters)"}
		}
		if it.UnitAmount == nil || *it.UnitAmount < 0 || *it.UnitAmount > maxAmount {
			return nil, &fieldErr{p("unit_amount"), p("unit_amount") + fmt.Sprintf(" is required: an integer from 0 to %d in the currency's minor unit", maxAmount)}
		}
		units := int64(1)
		if it.Units != nil {
			units = *it.Units
		}
		if units < 1 || units > 1000 {
			return nil, &fieldErr{p("units"), p("units") + " must be from 1 to 1000"}
		}
		if len(it.CPTCode) > 10 || len(it.DiagnosisCodes) > 12 || len(it.PlaceOfService) > 4 || len(it.Modifiers) > 4 {
			return nil, &fieldErr{p("cpt_code"), p("") + " has a code that is too long or too many codes"}
		}
		total += *it.UnitAmount * units
		if total > maxAmount {
			return nil, &fieldErr{"items", fmt.Sprintf("the invoice total must be at most %d", maxAmount)}
		}
		ni.Items = append(ni.Items, store.Item{ServiceDate: sd, Description: desc, CPTCode: strings.TrimSpace(it.CPTCode),
			Modifiers: it.Modifiers, Units: units, UnitAmount: *it.UnitAmount, DiagnosisCodes: it.DiagnosisCodes,
			PlaceOfService: it.PlaceOfService})
	}
	if total > 0 && total < money.MinimumCharge(cur) {
		return nil, &fieldErr{"items", fmt.Sprintf("the invoice total %s is below the smallest charge in %s (%s)",
			money.Format(total, cur), strings.ToUpper(cur), money.Format(money.MinimumCharge(cur), cur))}
	}
	if pp := req.PartialPayments; pp != nil && pp.Enabled {
		ni.PartialPayments.Enabled = true
		if pp.MinimumAmount != nil && pp.MinimumPercent != nil {
			return nil, &fieldErr{"partial_payments", "give minimum_amount or minimum_percent, not both"}
		}
		if pp.MinimumAmount != nil {
			if *pp.MinimumAmount < 1 || *pp.MinimumAmount > total {
				return nil, &fieldErr{"partial_payments.minimum_amount", "partial_payments.minimum_amount must be from 1 to the invoice total"}
			}
			ni.PartialPayments.MinimumAmount = *pp.MinimumAmount
		}
		if pp.MinimumPercent != nil {
			if *pp.MinimumPercent < 1 || *pp.MinimumPercent > 100 {
				return nil, &fieldErr{"partial_payments.minimum_percent", "partial_payments.minimum_percent must be from 1 to 100"}
			}
			ni.PartialPayments.MinimumPercent = int32(*pp.MinimumPercent)
		}
		ni.PartialPayments.MaxInstallments = 2
		if pp.MaxInstallments != nil {
			if *pp.MaxInstallments < 2 || *pp.MaxInstallments > 12 {
				return nil, &fieldErr{"partial_payments.max_installments", "partial_payments.max_installments must be from 2 to 12"}
			}
			ni.PartialPayments.MaxInstallments = int32(*pp.MaxInstallments)
		}
	}
	return ni, nil
}

func (h *handlers) createInvoice(c *gin.Context) {
	var req createInvoiceReq
	if !bindJSON(c, &req) {
		return
	}
	ctx := c.Request.Context()
	pr := principalOf(c)
	practice, err := h.Store.GetPractice(ctx, pr.PracticeID)
	if err != nil {
		h.internal(c, "get practice", err)
		return
	}
	if strings.TrimSpace(req.ClientID) == "" {
		badRequest(c, "parameter_missing", "client_id is required", "client_id")
		return
	}
	cl, err := h.Store.GetClient(ctx, pr.PracticeID, req.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		badRequest(c, "resource_missing", "no such client: "+req.ClientID, "client_id")
		return
	} else if err != nil {
		h.internal(c, "get client", err)
		return
	}
	ni, ferr := h.validateInvoice(&req, practice)
	if ferr != nil {
		badRequest(c, "parameter_invalid", ferr.msg, ferr.param)
		return
	}
	ni.PracticeID, ni.ClientID = practice.ID, cl.ID
	loc, err := time.LoadLocation(practice.Timezone)
	if err != nil {
		loc = time.UTC
	}
	now := h.Now().In(loc)
	ni.IssueDate = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if ni.DueDate.Before(ni.IssueDate) {
		badRequest(c, "parameter_invalid", "due_date must not be before today ("+ni.IssueDate.Format(time.DateOnly)+")", "due_date")
		return
	}
	// The row and the workflow start are one idempotent step under the
	// request's key: when the start fails the answer is 503, and the retry
	// finds this same invoice (same ID and number) and starts its workflow.
	key, ok := requestKey(c)
	if !ok {
		return
	}
	ni.CreationKey = idempotencyScope(pr) + " " + key
	inv, _, err := h.Store.CreateInvoiceOnce(ctx, *ni)
	if errors.Is(err, store.ErrKeyReused) {
		apiError(c, http.StatusConflict, "idempotency_error", "idempotency_key_reused",
			"this Idempotency-Key already created a different invoice; use a new key for a new invoice", "Idempotency-Key")
		return
	} else if err != nil {
		h.internal(c, "create invoice", err)
		return
	}
	if err := h.startInvoiceWorkflow(c, practice, cl, inv); err != nil {
		h.unavailable(c, "start invoice workflow", err)
		return
	}
	h.writeInvoice(c, http.StatusCreated, inv)
}

// startInvoiceWorkflow starts invoice-<id> (invoicestart.Build: a
// second call for the same invoice is a no-op) and records that it is
// started, which takes the invoice off the reconciler's list.
func (h *handlers) startInvoiceWorkflow(c *gin.Context, practice *store.Practice, cl *store.Client, inv *store.Invoice) error {
	ctx := c.Request.Context()
	opts, in := invoicestart.Build(practice, cl, inv)
	tc, err := h.temporalFor(ctx, practice.ID)
	if err != nil {
		return err
	}
	_, err = tc.ExecuteWorkflow(ctx, opts, invoicestart.WorkflowType, in)
	var ended *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &ended) { // ended: it ran already, and is not run again
		return err
	}
	if err := h.Store.MarkInvoiceWorkflowStarted(ctx, inv.ID); err != nil {
		// The workflow runs: the reconciler starts it again (a no-op) and marks it.
		h.Logger.Warn("mark invoice workflow started", "invoice_id", inv.ID, "error", err.Error())
	}
	return nil
}

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

// ---- pay ----

type payReq struct {
	Amount               *int64 `json:"amount"`
	PaymentMethod        string `json:"payment_method,omitempty"`
	SavedPaymentMethodID string `json:"saved_payment_method_id,omitempty"`
	SaveCard             bool   `json:"save_card,omitempty"`
	PayerName            string `json:"payer_name,omitempty"`
	BillingZIP           string `json:"billing_zip,omitempty"`
}

func (h *handlers) payInvoice(c *gin.Context) {
	inv, ok := h.loadInvoice(c)
	if !ok {
		return
	}
	var req payReq
	if !bindJSON(c, &req) {
		return
	}
	if !h.allowPayment(c, inv.ID, inv.ClientID) {
		return
	}
	if !h.allowAfterDeclines(c, inv.ClientID, "") {
		return
	}
	if req.Amount == nil {
		badRequest(c, "parameter_missing", "amount is required, in the currency's minor unit", "amount")
		return
	}
	if *req.Amount <= 0 || *req.Amount > maxAmount {
		badRequest(c, "parameter_invalid", "amount must be a positive integer in the currency's minor unit", "amount")
		return
	}
	if (req.PaymentMethod == "") == (req.SavedPaymentMethodID == "") {
		badRequest(c, "parameter_invalid", "give exactly one of payment_method or saved_payment_method_id", "payment_method")
		return
	}
	if len(req.PayerName) > 200 || len(req.BillingZIP) > 20 || len(req.PaymentMethod) > 255 {
		badRequest(c, "parameter_invalid", "payer_name, billing_zip or payment_method is too long", "")
		return
	}
	in := &contract.PayInput{Amount: *req.Amount, PaymentMethodID: req.PaymentMethod, SavedPaymentMethodID: req.SavedPaymentMethodID,
		SaveCard: req.SaveCard, PayerName: strings.TrimSpace(req.PayerName), BillingZIP: strings.TrimSpace(req.BillingZIP)}
	// After 3-D Secure the payer's browser lands on the invoice's hosted pay
	// page, which says what became of the payment (an API URL would answer
	// a browser 401).
	returnURL, err := h.practicePayURL(c.Request.Context(), inv)
	if err != nil {
		h.internal(c, "pay url", err)
		return
	}
	in.ReturnURL = returnURL
	if req.SavedPaymentMethodID != "" {
		pm, err := h.Cards.Get(c.Request.Context(), inv.ClientID, req.SavedPaymentMethodID)
		if errors.Is(err, store.ErrNotFound) {
			badRequest(c, "resource_missing", "no such saved payment method for this client", "saved_payment_method_id")
			return
		} else if err != nil {
			h.internal(c, "get payment method", err)
			return
		}
		in.PaymentMethodID = pm.ProcessorPMID
		in.MethodLabel = cards.Label(pm.Type, pm.Brand, pm.Last4, pm.BankName)
		in.OffSession = true
	} else {
		in.MethodLabel = h.Cards.NewLabel(c.Request.Context(), req.PaymentMethod)
	}
	key, ok := requestKey(c)
	if !ok {
		return
	}
	in.IdempotencyKey, in.Scope = key, idempotencyScope(principalOf(c))
	in.RequestHash = in.Fingerprint()
	var res contract.PayResult
	if !h.update(c, inv, contract.PayUpdate, in, &res, nil) {
		return
	}
	payment := gin.H{"id": res.PaymentID, "amount": res.Amount, "status": res.Status}
	if res.Status == contract.PaymentFailed {
		c.AbortWithStatusJSON(http.StatusPaymentRequired, gin.H{"error": errorBody{Type: "card_error", Code: res.FailureCode,
			DeclineCode: res.DeclineCode, Message: res.FailureMessage}, "payment": gin.H{"id": res.PaymentID, "amount": res.Amount,
			"status": res.Status, "failure_code": res.FailureCode, "failure_message": res.FailureMessage}})
		return
	}
	if res.NextActionURL != "" {
		// As Stripe's PaymentIntent has it: send the payer to url; they come
		// back to return_url, the invoice's pay page, which shows the outcome.
		payment["next_action"] = gin.H{"type": "redirect_to_url", "redirect_to_url": gin.H{"url": res.NextActionURL, "return_url": returnURL}}
	}
	fresh, err := h.Store.GetInvoice(c.Request.Context(), inv.ID)
	if err != nil {
		h.internal(c, "get invoice", err)
		return
	}
	view, err := h.invoiceView(c, fresh)
	if err != nil {
		h.internal(c, "invoice view", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"payment": payment, "invoice": view})
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// defaultUpdateWait is Deps.UpdateWait's default.
const defaultUpdateWait = 25 * time.Second

// errUpdatePending says update's wait ran out with the Update accepted and
// still running: nothing has been written to the response.
var errUpdatePending = errors.New("update still running")

// update sends an Update and waits for its result, at most UpdateWait. The
// Idempotency-Key header is the Update ID, so a retried request gets the
// first answer, never a second charge. It answers errors itself and returns
// false; when the wait runs out it answers 503 still_processing, or calls
// pending (when not nil) to write the answer instead.
func (h *handlers) update(c *gin.Context, inv *store.Invoice, name string, arg any, out any, pending func()) bool {
	key, ok := requestKey(c)
	if !ok {
		return false
	}
	args := []any{}
	if arg != nil {
		args = append(args, arg)
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.updateWait())
	defer cancel()
	tc, err := h.temporalFor(ctx, inv.PracticeID)
	if err != nil {
		h.unavailable(c, "temporal client", err)
		return false
	}
	handle, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: contract.InvoiceWorkflowID(inv.ID), UpdateID: name + ":" + key, UpdateName: name,
		Args: args, WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err == nil {
		err = handle.Get(ctx, out)
		if err != nil && timedOut(ctx, err) && c.Request.Context().Err() == nil {
			err = errUpdatePending
		}
	}
	if err == nil {
		return true
	}
	if errors.Is(err, errUpdatePending) {
		if pending != nil {
			pending()
			return false
		}
		stillProcessing(c)
		return false
	}
	var appErr *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &appErr):
		switch appErr.Type() {
		case contract.ErrTypeInvalidState:
			apiError(c, http.StatusConflict, "invalid_request_error", "invoice_not_payable", appErr.Message(), "")
		case contract.ErrTypeInvalidPayment, contract.ErrTypeInvalidRefund:
			badRequest(c, "parameter_invalid", appErr.Message(), "amount")
		case contract.ErrTypeKeyReused:
			apiError(c, http.StatusConflict, "idempotency_error", "idempotency_key_reused", appErr.Message(), "Idempotency-Key")
		default:
			h.internal(c, "update "+name, err)
		}
	case errors.As(err, &nf):
		apiError(c, http.StatusConflict, "invalid_request_error", "invoice_closed",
			"this invoice's lifecycle has ended; it can no longer be changed", "")
	default:
		h.unavailable(c, "update "+name, err)
	}
	return false
}

// stillProcessing answers a request whose wait ran out with its work going
// on: 503 with Retry-After; the same request again (same Idempotency-Key)
// gets the result.
func stillProcessing(c *gin.Context) {
	c.Header("Retry-After", "5")
	apiError(c, http.StatusServiceUnavailable, "api_error", "still_processing",
		"this request is still being processed; send it again with the same Idempotency-Key for its result", "")
}

// updateWait is Deps.UpdateWait or its default.
func (h *handlers) updateWait() time.Duration {
	if h.UpdateWait > 0 {
		return h.UpdateWait
	}
	return defaultUpdateWait
}

// awaitRecorded waits at most UpdateWait for a balance payment's or an
// after-close refund's workflow to record its money, through the
// workflow's recorded Update; the emails that follow are not waited for.
// A workflow that has ended (or runs code from before the Update) answers
// with its result instead. errUpdatePending: the wait ran out, the work
// goes on. A business refusal is the workflow's ApplicationError.
func (h *handlers) awaitRecorded(ctx context.Context, tc client.Client, wfID string, out any) error {
	wctx, cancel := context.WithTimeout(ctx, h.updateWait())
	defer cancel()
	handle, err := tc.UpdateWorkflow(wctx, client.UpdateWorkflowOptions{WorkflowID: wfID,
		UpdateID: contract.RecordedUpdate, UpdateName: contract.RecordedUpdate, WaitForStage: client.WorkflowUpdateStageAccepted})
	if err == nil {
		err = handle.Get(wctx, out)
	}
	var appErr *temporal.ApplicationError
	if err != nil && !timedOut(wctx, err) && !(errors.As(err, &appErr) && businessError[appErr.Type()]) {
		// Ended, or no recorded Update in this run: its result.
		err = tc.GetWorkflow(wctx, wfID, "").Get(wctx, out)
	}
	if err != nil && timedOut(wctx, err) && ctx.Err() == nil {
		return errUpdatePending
	}
	return err
}

// timedOut reports whether a Temporal call failed because ctx's deadline
// passed: the server may answer DeadlineExceeded a moment before the
// deadline passes here.
func timedOut(ctx context.Context, err error) bool {
	var de *serviceerror.DeadlineExceeded
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &de)
}

// businessError are the error types of a refusal a workflow answers with.
var businessError = map[string]bool{contract.ErrTypeBalanceChanged: true, contract.ErrTypeKeyReused: true,
	contract.ErrTypeInvalidPayment: true, contract.ErrTypeGateway: true, contract.ErrTypeInvalidRefund: true,
	contract.ErrTypeInvalidState: true}

// requestKey is the request's Idempotency-Key, or one made up for it (the
// same for the whole request); false when the header is too long (answered).
func requestKey(c *gin.Context) (string, bool) {
	if k, ok := c.Get(ctxRequestKey); ok {
		return k.(string), true
	}
	key := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if len(key) > 255 {
		badRequest(c, "parameter_invalid", "Idempotency-Key must be at most 255 characters", "Idempotency-Key")
		return "", false
	}
	if key == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		key = hex.EncodeToString(b)
	}
	c.Set(ctxRequestKey, key)
	return key, true
}

const ctxRequestKey = "request_key"

// ---- refund & void ----

type refundReq struct {
	Amount    *int64 `json:"amount"`
	PaymentID string `json:"payment_id,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

func (h *handlers) refundInvoice(c *gin.Context) {
	inv, ok := h.loadInvoice(c)
	if !ok {
		return
	}
	var req refundReq
	if !bindJSON(c, &req) {
		return
	}
	if req.Amount == nil || *req.Amount <= 0 || *req.Amount > maxAmount {
		badRequest(c, "parameter_invalid", "amount must be a positive integer in the currency's minor unit", "amount")
		return
	}
	if len(req.Reason) > 500 {
		badRequest(c, "parameter_invalid", "reason must be at most 500 characters", "reason")
		return
	}
	if req.PaymentID != "" && !h.checkRefundPayment(c, inv, req.PaymentID) {
		return
	}
	var res contract.RefundResult
	tc, err := h.temporalFor(c.Request.Context(), inv.PracticeID)
	if err != nil {
		h.unavailable(c, "temporal client", err)
		return
	}
	if desc, err := tc.DescribeWorkflowExecution(c.Request.Context(), contract.InvoiceWorkflowID(inv.ID), ""); err == nil &&
		desc.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		// The lifecycle has ended (refund window over): refunds still work, in a workflow of their own.
		if !h.refundAfterClose(c, inv, &req, &res) {
			return
		}
	} else if !h.update(c, inv, contract.RefundUpdate, &contract.RefundInput{Amount: *req.Amount, PaymentID: req.PaymentID, Reason: req.Reason}, &res, nil) {
		return
	}
	fresh, err := h.Store.GetInvoice(c.Request.Context(), inv.ID)
	if err != nil {
		h.internal(c, "get invoice", err)
		return
	}
	view, err := h.invoiceView(c, fresh)
	if err != nil {
		h.internal(c, "invoice view", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"refund": gin.H{"id": res.RefundID, "payment_id": res.PaymentID, "amount": res.Amount,
		"status": res.Status, "reason": req.Reason}, "invoice": view})
}

// checkRefundPayment answers 400 naming payment_id when the refund names a
// payment that is not one of this invoice's or has taken no money.
func (h *handlers) checkRefundPayment(c *gin.Context, inv *store.Invoice, id string) bool {
	if len(id) > 255 {
		badRequest(c, "parameter_invalid", "payment_id is too long", "payment_id")
		return false
	}
	p, err := h.Store.GetPayment(c.Request.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.InvoiceID != inv.ID) {
		badRequest(c, "resource_missing", fmt.Sprintf("invoice %s has no payment %s", inv.Number, id), "payment_id")
		return false
	}
	if err != nil {
		h.internal(c, "get payment", err)
		return false
	}
	if p.Status != contract.PaymentSucceeded {
		badRequest(c, "parameter_invalid", fmt.Sprintf("payment %s is %s: only a succeeded payment can be refunded", id, p.Status), "payment_id")
		return false
	}
	return true
}

func (h *handlers) voidInvoice(c *gin.Context) {
	h.invoiceAction(c, contract.VoidUpdate, &contract.InvoiceSnapshot{})
}

// sendInvoice emails the invoice to the client again with a fresh pay link.
// The Idempotency-Key makes a retried request send nothing more.
func (h *handlers) sendInvoice(c *gin.Context) {
	h.invoiceAction(c, contract.ResendUpdate, &contract.ResendResult{})
}

// invoiceAction runs an argument-free Update (void, resend) on the invoice's
// workflow and answers with the invoice as it is afterwards.
func (h *handlers) invoiceAction(c *gin.Context, update string, out any) {
	inv, ok := h.loadInvoice(c)
	if !ok {
		return
	}
	var empty struct{}
	if !bindOptionalJSON(c, &empty) {
		return
	}
	var pending func()
	if update == contract.ResendUpdate {
		// The resend is recorded; its email goes out when the mail server
		// takes it, however long that is.
		pending = func() { h.answerInvoice(c, inv.ID, http.StatusAccepted) }
	}
	if !h.update(c, inv, update, nil, out, pending) {
		return
	}
	h.answerInvoice(c, inv.ID, http.StatusOK)
}

// answerInvoice answers with the invoice as it is now.
func (h *handlers) answerInvoice(c *gin.Context, id string, status int) {
	fresh, err := h.Store.GetInvoice(c.Request.Context(), id)
	if err != nil {
		h.internal(c, "get invoice", err)
		return
	}
	h.writeInvoice(c, status, fresh)
}

func formatMoney(amount int64, currency string) string { return money.Format(amount, currency) }

// hashKey shortens a caller's Idempotency-Key into an ID-safe token.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// refundAfterClose refunds a payment of an invoice whose workflow has ended.
func (h *handlers) refundAfterClose(c *gin.Context, inv *store.Invoice, req *refundReq, out *contract.RefundResult) bool {
	ctx := c.Request.Context()
	key := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if key == "" {
		key = store.NewID("k")
	}
	refundID := "ref_" + strings.TrimPrefix(inv.ID, "inv_") + "_c" + hashKey(key)
	tc, err := h.temporalFor(ctx, inv.PracticeID)
	if err != nil {
		h.unavailable(c, "temporal client", err)
		return false
	}
	if _, err := tc.DescribeWorkflowExecution(ctx, "refund-"+refundID, ""); err == nil {
		// A retried request: answer with the first one's result.
		return h.refundResult(c, tc, "refund-"+refundID, out)
	}
	pays, err := h.Store.ListPayments(ctx, inv.ID)
	if err != nil {
		h.internal(c, "list payments", err)
		return false
	}
	var target *store.Payment
	for i := len(pays) - 1; i >= 0; i-- {
		p := pays[i]
		if p.Status == contract.PaymentSucceeded && (p.ID == req.PaymentID || req.PaymentID == "" && p.Amount-p.AmountRefunded >= *req.Amount) {
			target = p
			break
		}
	}
	if target == nil {
		badRequest(c, "parameter_invalid", "no succeeded payment on this invoice has that much left to refund", "amount")
		return false
	}
	if left := target.Amount - target.AmountRefunded; *req.Amount > left {
		badRequest(c, "parameter_invalid", "refund of "+formatMoney(*req.Amount, inv.Currency)+" is more than the "+
			formatMoney(left, inv.Currency)+" left on payment "+target.ID, "amount")
		return false
	}
	_, err = tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "refund-" + refundID, TaskQueue: contract.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            inv.Number + " · refund " + formatMoney(*req.Amount, inv.Currency),
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.PracticeIDKey.ValueSet(inv.PracticeID),
			contract.ClientIDKey.ValueSet(inv.ClientID)),
	}, contract.RefundAfterCloseWorkflowType, &contract.RefundAfterCloseInput{InvoiceID: inv.ID, PaymentID: target.ID,
		RefundID: refundID, Amount: *req.Amount, Currency: inv.Currency, Reason: req.Reason})
	if err != nil {
		h.unavailable(c, "start refund", err)
		return false
	}
	return h.refundResult(c, tc, "refund-"+refundID, out)
}

// refundResult waits, at most UpdateWait, for the refund to be recorded
// (not for its notice email).
func (h *handlers) refundResult(c *gin.Context, tc client.Client, wfID string, out *contract.RefundResult) bool {
	if err := h.awaitRecorded(c.Request.Context(), tc, wfID, out); err != nil {
		if errors.Is(err, errUpdatePending) {
			stillProcessing(c)
			return false
		}
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			badRequest(c, "parameter_invalid", appErr.Message(), "amount")
			return false
		}
		h.unavailable(c, "refund", err)
		return false
	}
	return true
}
