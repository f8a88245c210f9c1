package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
)

// Statement run defaults: clients per page, clients per run before it
// continues as new, and statements rendered at once.
const (
	DefaultStatementPageSize      = 100
	DefaultStatementContinueAfter = 500
	DefaultStatementParallelism   = 8
)

// StatementRunWorkflow renders and emails a statement to every client with
// ledger activity in a month. It pages through clients in Postgres (keyset by
// client ID), keeps Parallelism renders in flight, and continues as new every
// ContinueAfter clients with the cursor in its input, so an interrupted run
// resumes where it stopped. It is idempotent: a statement's PDF is stored once
// (same data, same bytes) and its email goes out once per client and month
// (the Message-ID is claimed in Postgres), so running it again sends nothing new.
func StatementRunWorkflow(ctx workflow.Context, in *contract.StatementRunInput) (*contract.StatementRunResult, error) {
	if in == nil {
		in = &contract.StatementRunInput{}
	}
	var from time.Time
	if in.Month == "" {
		now := localNow(ctx, in.TimeZone)
		from = time.Date(now.Year(), now.Month()-1, 1, 0, 0, 0, 0, time.UTC)
	} else {
		m, err := time.Parse("2006-01", in.Month)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError("month must be YYYY-MM, got "+in.Month, contract.ErrTypeInvalidState, err)
		}
		from = m
	}
	to := from.AddDate(0, 1, -1)
	month, label := from.Format("2006-01"), from.Format("Jan 2006")
	pageSize := positiveOr(in.PageSize, DefaultStatementPageSize)
	continueAfter := positiveOr(in.ContinueAfter, DefaultStatementContinueAfter)
	parallelism := positiveOr(in.Parallelism, DefaultStatementParallelism)

	res := &contract.StatementRunResult{}
	if in.Totals != nil {
		*res = *in.Totals
	}
	res.Month, res.Cursor = month, in.AfterClientID
	if err := workflow.SetQueryHandler(ctx, contract.StatementRunProgressQuery, func() (*contract.StatementRunResult, error) { return res, nil }); err != nil {
		return nil, err
	}
	logger := workflow.GetLogger(ctx)
	runID := workflow.GetInfo(ctx).WorkflowExecution.ID

	sel := workflow.NewSelector(ctx)
	inFlight := 0
	drain := func(limit int) {
		for inFlight > limit {
			sel.Select(ctx)
			inFlight--
		}
	}
	handled := 0
	for pageNo := 1; ; pageNo++ {
		lctx := pageOptions(ctx, time.Minute, 0, fmt.Sprintf("Find clients with activity in %s, page %d", label, pageNo))
		var page activities.StatementPageResult
		if err := workflow.ExecuteActivity(lctx, acts.ListStatementClients, &activities.StatementPageInput{
			From: from, To: to, AfterClientID: res.Cursor, Limit: pageSize}).Get(ctx, &page); err != nil {
			drain(0)
			return nil, err
		}
		for _, c := range page.Clients {
			res.Clients++
			for _, cur := range c.Currencies {
				drain(parallelism - 1)
				summary := fmt.Sprintf("Statement for %s %s", c.ClientID, label)
				if len(c.Currencies) > 1 {
					summary += " " + strings.ToUpper(cur)
				}
				rctx := statementEmailOptions(ctx, summary)
				f := workflow.ExecuteActivity(rctx, acts.RenderStatement, &activities.StatementInput{PracticeID: c.PracticeID,
					ClientID: c.ClientID, Currency: cur, From: from, To: to, Email: true, RunID: runID})
				inFlight++
				clientID := c.ClientID
				sel.AddFuture(f, func(f workflow.Future) {
					var r activities.DocumentResult
					if err := f.Get(ctx, &r); err != nil {
						res.Failed++
						logger.Error("statement failed", "client_id", clientID, "error", err)
						return
					}
					if r.AlreadySent {
						res.AlreadySent++
						return
					}
					res.Statements++
					if r.Emailed {
						res.Emailed++
					}
				})
			}
		}
		handled += len(page.Clients)
		if len(page.Clients) < pageSize || page.LastClientID == "" {
			drain(0)
			return res, nil
		}
		// The cursor moves only past a page whose statements are all
		// dispatched; continue-as-new waits for them to finish.
		res.Cursor = page.LastClientID
		if handled >= continueAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			drain(0)
			totals := *res
			return nil, workflow.NewContinueAsNewError(ctx, StatementRunWorkflow, &contract.StatementRunInput{Month: month,
				AfterClientID: res.Cursor, Totals: &totals, PageSize: in.PageSize, ContinueAfter: in.ContinueAfter,
				Parallelism: in.Parallelism})
		}
	}
}

func positiveOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// DocumentWorkflow renders a statement or superbill on the worker (where
// Chromium runs) for the API, which waits for its result.
func DocumentWorkflow(ctx workflow.Context, in *contract.DocumentInput) (*contract.DocumentResult, error) {
	if in.Kind != contract.DocumentStatement && in.Kind != contract.DocumentSuperbill {
		return nil, temporal.NewNonRetryableApplicationError("unknown document kind "+string(in.Kind), contract.ErrTypeInvalidState, nil)
	}
	actx := documentOptions(ctx, fmt.Sprintf("%s for %s %s – %s", strings.ToUpper(string(in.Kind[:1]))+string(in.Kind[1:]), in.ClientID,
		in.From.Format(time.DateOnly), in.To.Format(time.DateOnly)))
	var r activities.DocumentResult
	var err error
	switch in.Kind {
	case contract.DocumentStatement:
		err = workflow.ExecuteActivity(actx, acts.RenderStatement, &activities.StatementInput{PracticeID: in.PracticeID,
			ClientID: in.ClientID, From: in.From, To: in.To}).Get(ctx, &r)
	case contract.DocumentSuperbill:
		err = workflow.ExecuteActivity(actx, acts.RenderSuperbill, &activities.SuperbillInput{PracticeID: in.PracticeID,
			ClientID: in.ClientID, From: in.From, To: in.To}).Get(ctx, &r)
	}
	if err != nil {
		return nil, err
	}
	return &contract.DocumentResult{DocumentID: r.DocumentID}, nil
}
