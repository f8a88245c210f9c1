package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

type balanceReq struct {
	Amount               *int64 `json:"amount,omitempty"`
	PaymentMethod        string `json:"payment_method,omitempty"`
	SavedPaymentMethodID string `json:"saved_payment_method_id,omitempty"`
	SaveCard             bool   `json:"save_card,omitempty"`
	PayerName            string `json:"payer_name,omitempty"`
	BillingZIP           string `json:"billing_zip,omitempty"`
}

// payBalance charges a client's entire balance once; the balance-payment
// workflow applies it oldest invoice first through each invoice workflow.
func (h *handlers) payBalance(c *gin.Context) {
	cl, ok := h.loadClient(c)
	if !ok {
		return
	}
	var req balanceReq
	if !bindJSON(c, &req) {
		return
	}
	if (req.PaymentMethod == "") == (req.SavedPaymentMethodID == "") {
		badRequest(c, "parameter_invalid", "give exactly one of payment_method or saved_payment_method_id", "payment_method")
		return
	}
	if !h.allowPayment(c, "", cl.ID) {
		return
	}
	ctx := c.Request.Context()
	key := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if len(key) > 255 {
		badRequest(c, "parameter_invalid", "Idempotency-Key must be at most 255 characters", "Idempotency-Key")
		return
	}
	if key != "" {
		// A retried request gets the first request's answer, even though the balance is now paid.
		wfID := workflows.BalancePaymentWorkflowID(cl.ID, hashKey(key))
		if _, err := h.Temporal.DescribeWorkflowExecution(ctx, wfID, ""); err == nil {
			h.balanceResult(c, h.Temporal.GetWorkflow(ctx, wfID, ""))
			return
		}
	} else {
		key = store.NewID("k")
	}
	open, err := h.Store.OpenInvoicesOldestFirst(ctx, cl.ID)
	if err != nil {
		h.internal(c, "open invoices", err)
		return
	}
	if len(open) == 0 {
		badRequest(c, "no_balance", "this client has no balance to pay", "")
		return
	}
	in := &workflows.BalancePaymentInput{PracticeID: cl.PracticeID, ClientID: cl.ID, Currency: open[0].Currency,
		PaymentMethodID: req.PaymentMethod, SavedPaymentMethodID: req.SavedPaymentMethodID, SaveCard: req.SaveCard,
		PayerName: strings.TrimSpace(req.PayerName), BillingZIP: strings.TrimSpace(req.BillingZIP)}
	for _, inv := range open {
		if inv.Currency != in.Currency {
			badRequest(c, "mixed_currencies", "this client's invoices are in more than one currency; pay them one by one", "")
			return
		}
		in.Total += inv.AmountDue
		in.InvoiceIDs = append(in.InvoiceIDs, inv.ID)
	}
	if req.Amount != nil && *req.Amount != in.Total {
		badRequest(c, "amount_mismatch", "amount must equal the current balance of "+formatMoney(in.Total, in.Currency), "amount")
		return
	}
	if req.SavedPaymentMethodID != "" {
		pm, err := h.Store.GetPaymentMethod(ctx, cl.ID, req.SavedPaymentMethodID)
		if errors.Is(err, store.ErrNotFound) {
			badRequest(c, "resource_missing", "no such saved payment method for this client", "saved_payment_method_id")
			return
		} else if err != nil {
			h.internal(c, "get payment method", err)
			return
		}
		in.MethodLabel = methodLabel(pm.Type, pm.Brand, pm.Last4, pm.BankName)
	} else {
		in.MethodLabel = labelForNewMethod(req.PaymentMethod)
	}
	in.BalancePaymentID = "bal_" + strings.TrimPrefix(cl.ID, "cli_") + "_" + hashKey(key)
	run, err := h.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.BalancePaymentWorkflowID(cl.ID, hashKey(key)), TaskQueue: workflows.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:            "Balance payment " + formatMoney(in.Total, in.Currency),
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.PracticeIDKey.ValueSet(cl.PracticeID),
			workflows.ClientIDKey.ValueSet(cl.ID)),
	}, workflows.BalancePaymentWorkflow, in)
	if err != nil {
		h.unavailable(c, "start balance payment", err)
		return
	}
	h.balanceResult(c, run)
}

func (h *handlers) balanceResult(c *gin.Context, run client.WorkflowRun) {
	var res workflows.BalancePaymentResult
	if err := run.Get(c.Request.Context(), &res); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == workflows.ErrTypeBalanceChanged {
			apiError(c, http.StatusConflict, "invalid_request_error", "balance_changed", appErr.Message(), "")
			return
		}
		if errors.As(err, &appErr) && appErr.Type() == workflows.ErrTypeGateway {
			badRequest(c, "payment_method_invalid", appErr.Message(), "payment_method")
			return
		}
		h.unavailable(c, "balance payment", err)
		return
	}
	if res.Status == "failed" {
		c.AbortWithStatusJSON(http.StatusPaymentRequired, gin.H{"error": errorBody{Type: "card_error", Code: res.FailureCode,
			DeclineCode: res.DeclineCode, Message: res.FailureMessage}})
		return
	}
	allocs := make([]gin.H, 0, len(res.Allocations))
	for _, a := range res.Allocations {
		allocs = append(allocs, gin.H{"invoice_id": a.InvoiceID, "payment_id": a.PaymentID, "amount": a.Amount})
	}
	out := gin.H{"id": res.BalancePaymentID, "object": "balance_payment", "amount": res.Amount, "currency": res.Currency,
		"status": res.Status, "allocations": allocs}
	if res.NextActionURL != "" {
		out["next_action"] = gin.H{"type": "redirect_to_url", "redirect_to_url": gin.H{"url": res.NextActionURL}}
	}
	c.JSON(http.StatusOK, out)
}
