package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/store"
)

// maxPeriodDays bounds an on-demand statement or superbill.
const maxPeriodDays = 366

// renderWait bounds how long a request waits for its document to render.
const renderWait = 90 * time.Second

// getInvoicePDF streams the invoice's newest document: the receipt once paid,
// else the invoice.
func (h *handlers) getInvoicePDF(c *gin.Context) {
	inv, ok := h.loadInvoice(c)
	if !ok {
		return
	}
	doc, err := h.Store.LatestInvoiceDocument(c.Request.Context(), inv.ID)
	if errors.Is(err, store.ErrNotFound) {
		apiError(c, http.StatusNotFound, "invalid_request_error", "document_not_ready",
			"the PDF of invoice "+inv.Number+" is not ready yet; try again in a few seconds", "")
		return
	}
	if err != nil {
		h.internal(c, "latest invoice document", err)
		return
	}
	h.streamDocument(c, doc, doc.Filename(inv.Number))
}

// getDocumentPDF streams any document the caller may see.
func (h *handlers) getDocumentPDF(c *gin.Context) {
	ctx := c.Request.Context()
	doc, err := h.Store.GetDocument(ctx, c.Param("id"))
	pr := principalOf(c)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (doc.PracticeID != pr.PracticeID ||
		(pr.ClientID != "" && doc.ClientID != pr.ClientID))) {
		notFound(c, "document")
		return
	}
	if err != nil {
		h.internal(c, "get document", err)
		return
	}
	number := ""
	if doc.InvoiceID != "" {
		inv, err := h.Store.GetInvoice(ctx, doc.InvoiceID)
		if err != nil {
			h.internal(c, "get invoice", err)
			return
		}
		if !pr.canSeeInvoice(inv) {
			notFound(c, "document")
			return
		}
		number = inv.Number
	}
	h.streamDocument(c, doc, doc.Filename(number))
}

func (h *handlers) streamDocument(c *gin.Context, doc *store.Document, filename string) {
	h.streamDocumentAs(c, doc, filename, "inline")
}

// streamDocumentAs is streamDocument with a Content-Disposition of "inline"
// (shown in the browser) or "attachment" (saved, for a Download link).
func (h *handlers) streamDocumentAs(c *gin.Context, doc *store.Document, filename, disposition string) {
	content, err := h.Store.DocumentContent(c.Request.Context(), doc.ID)
	if err != nil {
		h.internal(c, "document content", err)
		return
	}
	c.Header("Content-Disposition", disposition+`; filename="`+strings.NewReplacer(`"`, "", `\`, "", "\r", "", "\n", "").Replace(filename)+`"`)
	c.Header("Content-Length", strconv.Itoa(len(content)))
	c.Header("Cache-Control", "private, no-store")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "application/pdf", content)
}

type periodReq struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// parsePeriod validates {from, to}: dates, from ≤ to, at most a year.
func parsePeriod(req *periodReq) (from, to time.Time, ferr *fieldErr) {
	from, err := time.Parse(time.DateOnly, req.From)
	if err != nil {
		return from, to, &fieldErr{"from", "from is required as YYYY-MM-DD"}
	}
	to, err = time.Parse(time.DateOnly, req.To)
	if err != nil {
		return from, to, &fieldErr{"to", "to is required as YYYY-MM-DD"}
	}
	if to.Before(from) {
		return from, to, &fieldErr{"to", "to must not be before from"}
	}
	if to.Sub(from) > (maxPeriodDays-1)*24*time.Hour {
		return from, to, &fieldErr{"to", fmt.Sprintf("the period must be at most %d days", maxPeriodDays)}
	}
	return from, to, nil
}

func (h *handlers) createStatement(c *gin.Context) {
	h.createClientDocument(c, contract.DocumentStatement)
}
func (h *handlers) createSuperbill(c *gin.Context) {
	h.createClientDocument(c, contract.DocumentSuperbill)
}

// createClientDocument renders a statement or superbill on the worker, where
// Chromium runs, through a short workflow, and answers with the stored document.
func (h *handlers) createClientDocument(c *gin.Context, kind contract.DocumentKind) {
	cl, ok := h.loadClient(c)
	if !ok {
		return
	}
	var req periodReq
	if !bindJSON(c, &req) {
		return
	}
	from, to, ferr := parsePeriod(&req)
	if ferr != nil {
		badRequest(c, "parameter_invalid", ferr.msg, ferr.param)
		return
	}
	if retry, limited := h.renderLimited(c, cl.ID); limited {
		tooMany(c, retry, "too_many_documents", "documents requested")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), renderWait)
	defer cancel()
	tc, err := h.temporalFor(ctx, cl.PracticeID)
	if err != nil {
		h.unavailable(c, "temporal client", err)
		return
	}
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       contract.DocumentWorkflowID(cl.ID, kind, from, to),
		TaskQueue:                contract.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowExecutionTimeout: 5 * time.Minute,
		StaticSummary:            fmt.Sprintf("%s for %s, %s – %s", kind, cl.ID, from.Format(time.DateOnly), to.Format(time.DateOnly)),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.PracticeIDKey.ValueSet(cl.PracticeID),
			contract.ClientIDKey.ValueSet(cl.ID),
		),
	}, contract.DocumentWorkflowType, &contract.DocumentInput{PracticeID: cl.PracticeID, ClientID: cl.ID, Kind: kind, From: from, To: to})
	if err != nil {
		h.unavailable(c, "start document workflow", err)
		return
	}
	var res contract.DocumentResult
	if err := run.Get(ctx, &res); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == contract.ErrTypeNothingToRender {
			badRequest(c, "no_services_in_period", fmt.Sprintf("the client has no billed services from %s to %s",
				from.Format(time.DateOnly), to.Format(time.DateOnly)), "from")
			return
		}
		h.unavailable(c, "render "+string(kind), err)
		return
	}
	doc, err := h.Store.GetDocument(c.Request.Context(), res.DocumentID)
	if err != nil {
		h.internal(c, "get document", err)
		return
	}
	c.JSON(http.StatusCreated, documentJSON(doc))
}

// documentJSON is a document as the API shows it.
func documentJSON(d *store.Document) gin.H {
	out := gin.H{"id": d.ID, "object": "document", "kind": d.Kind, "client_id": d.ClientID, "size": d.Size,
		"pdf_url": "/v1/documents/" + d.ID + "/pdf", "created_at": d.CreatedAt.UTC().Format(time.RFC3339)}
	if d.InvoiceID != "" {
		out["invoice_id"] = d.InvoiceID
	}
	if d.PeriodFrom != nil {
		out["period_from"] = d.PeriodFrom.Format(time.DateOnly)
	}
	if d.PeriodTo != nil {
		out["period_to"] = d.PeriodTo.Format(time.DateOnly)
	}
	return out
}
