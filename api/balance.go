package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
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
	if !h.allowPayment(c, "", cl.ID) || !h.allowAfterDeclines(c, cl.ID, "") {
		return
	}
	key := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if len(key) > 255 {
		badRequest(c, "parameter_invalid", "Idempotency-Key must be at most 255 characters", "Idempotency-Key")
		return
	}
	replay := key != ""
	if !replay {
		key = store.NewID("k")
	}
	res, fail := h.runBalancePayment(c.Request.Context(), cl, &req, key, replay)
	if fail != nil {
		h.balanceFailed(c, fail)
		return
	}
	if res.Status == contract.PaymentFailed {
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

// balanceFailure is why a balance payment did not go through to a charge
// result, for the API to answer in JSON and the portal in HTML.
type balanceFailure struct {
	status               int
	pending              bool // the wait ran out; the same request again gets the result
	code, message, param string
	op                   string
	cause                error // logged, never shown
}

func (h *handlers) balanceFailed(c *gin.Context, f *balanceFailure) {
	switch {
	case f.pending:
		stillProcessing(c)
	case f.status == http.StatusInternalServerError:
		h.internal(c, f.op, f.cause)
	case f.status == http.StatusServiceUnavailable:
		h.unavailable(c, f.op, f.cause)
	default:
		apiError(c, f.status, "invalid_request_error", f.code, f.message, f.param)
	}
}

// runBalancePayment pays a client's entire balance in one charge, through
// the balance-payment workflow whose ID comes from key. With replay, a key
// already used gets that first payment's result, even though the balance is
// paid by now. The API and the portal's Pay Now both come here.
func (h *handlers) runBalancePayment(ctx context.Context, cl *store.Client, req *balanceReq, key string, replay bool) (*contract.BalancePaymentResult, *balanceFailure) {
	wfID := contract.BalancePaymentWorkflowID(cl.ID, hashKey(key))
	tc, err := h.temporalFor(ctx, cl.PracticeID)
	if err != nil {
		return nil, &balanceFailure{status: http.StatusServiceUnavailable, op: "temporal client", cause: err}
	}
	if replay {
		if _, err := tc.DescribeWorkflowExecution(ctx, wfID, ""); err == nil {
			return h.balanceResult(ctx, tc, wfID)
		}
	}
	open, err := h.Store.OpenInvoicesOldestFirst(ctx, cl.ID)
	if err != nil {
		return nil, &balanceFailure{status: http.StatusInternalServerError, op: "open invoices", cause: err}
	}
	if len(open) == 0 {
		return nil, &balanceFailure{status: http.StatusBadRequest, code: "no_balance", message: "this client has no balance to pay"}
	}
	in := &contract.BalancePaymentInput{PracticeID: cl.PracticeID, ClientID: cl.ID, Currency: open[0].Currency,
		PaymentMethodID: req.PaymentMethod, SavedPaymentMethodID: req.SavedPaymentMethodID, SaveCard: req.SaveCard,
		PayerName: strings.TrimSpace(req.PayerName), BillingZIP: strings.TrimSpace(req.BillingZIP),
		// After 3-D Secure the client lands on its Billing & Payments page.
		ReturnURL: h.Config.PublicBaseURL + portalPath + "#balance"}
	for _, inv := range open {
		if inv.Currency != in.Currency {
			return nil, &balanceFailure{status: http.StatusBadRequest, code: "mixed_currencies",
				message: "this client's invoices are in more than one currency; pay them one by one"}
		}
		in.Total += inv.AmountDue
		in.InvoiceIDs = append(in.InvoiceIDs, inv.ID)
	}
	if req.Amount != nil && *req.Amount != in.Total {
		return nil, &balanceFailure{status: http.StatusBadRequest, code: "amount_mismatch",
			message: "amount must equal the current balance of " + formatMoney(in.Total, in.Currency), param: "amount"}
	}
	_, label, err := h.payMethod(ctx, cl.ID, req.SavedPaymentMethodID, req.PaymentMethod)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &balanceFailure{status: http.StatusBadRequest, code: "resource_missing",
			message: "no such saved payment method for this client", param: "saved_payment_method_id"}
	} else if err != nil {
		return nil, &balanceFailure{status: http.StatusInternalServerError, op: "get payment method", cause: err}
	}
	in.MethodLabel = label
	in.BalancePaymentID = "bal_" + strings.TrimPrefix(cl.ID, "cli_") + "_" + hashKey(key)
	in.Scope, in.IdempotencyKey = "balance", key
	in.RequestHash = (&contract.PayInput{Amount: in.Total, PaymentMethodID: in.PaymentMethodID,
		SavedPaymentMethodID: in.SavedPaymentMethodID, SaveCard: in.SaveCard, PayerName: in.PayerName, BillingZIP: in.BillingZIP}).Fingerprint()
	_, err = tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: wfID, TaskQueue: contract.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:            "Balance payment " + formatMoney(in.Total, in.Currency),
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.PracticeIDKey.ValueSet(cl.PracticeID),
			contract.ClientIDKey.ValueSet(cl.ID)),
	}, contract.BalancePaymentWorkflowType, in)
	if err != nil {
		return nil, &balanceFailure{status: http.StatusServiceUnavailable, op: "start balance payment", cause: err}
	}
	return h.balanceResult(ctx, tc, wfID)
}

// balanceResult waits, at most UpdateWait, for the balance payment to be
// recorded (not for its receipt email).
func (h *handlers) balanceResult(ctx context.Context, tc client.Client, wfID string) (*contract.BalancePaymentResult, *balanceFailure) {
	var res contract.BalancePaymentResult
	if err := h.awaitRecorded(ctx, tc, wfID, &res); err != nil {
		if errors.Is(err, errUpdatePending) {
			return nil, &balanceFailure{status: http.StatusServiceUnavailable, pending: true, op: "balance payment", cause: err}
		}
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeBalanceChanged {
			return nil, &balanceFailure{status: http.StatusConflict, code: "balance_changed", message: appErr.Message()}
		}
		if errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeKeyReused {
			return nil, &balanceFailure{status: http.StatusConflict, code: "idempotency_key_reused", message: appErr.Message(),
				param: "Idempotency-Key"}
		}
		if errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeInvalidPayment {
			return nil, &balanceFailure{status: http.StatusBadRequest, code: "parameter_invalid", message: appErr.Message()}
		}
		if errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeGateway {
			return nil, &balanceFailure{status: http.StatusBadRequest, code: "payment_method_invalid", message: appErr.Message(),
				param: "payment_method"}
		}
		return nil, &balanceFailure{status: http.StatusServiceUnavailable, op: "balance payment", cause: err}
	}
	return &res, nil
}
