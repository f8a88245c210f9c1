package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/store"
)

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
	view, ok := h.freshView(c, inv.ID)
	if !ok {
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
	if view, ok := h.freshView(c, id); ok {
		c.JSON(status, view)
	}
}

// freshView reads the invoice again after a change and gives its view; when
// it cannot, it has answered 500 and says false.
func (h *handlers) freshView(c *gin.Context, id string) (*invoiceJSON, bool) {
	fresh, err := h.Store.GetInvoice(c.Request.Context(), id)
	if err != nil {
		h.internal(c, "get invoice", err)
		return nil, false
	}
	view, err := h.invoiceView(c, fresh)
	if err != nil {
		h.internal(c, "invoice view", err)
		return nil, false
	}
	return view, true
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
