package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/billflow/billflow/invoicestart"
	"github.com/billflow/billflow/money"
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
