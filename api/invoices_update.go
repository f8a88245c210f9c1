package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
)

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
