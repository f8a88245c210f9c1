package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// StatementRunID is the workflow ID the monthly `statement-run` Schedule starts
// (Temporal appends the scheduled time to it).
const StatementRunID = "statement-run"

// StatementRunProgressQuery answers a running statement run's progress.
const StatementRunProgressQuery = "progress"

// ErrTypeNothingToRender is a superbill asked for a period without services.
const ErrTypeNothingToRender = activities.ErrTypeNothingToRender

// Statement run defaults: clients per page, clients per run before it
// continues as new, and statements rendered at once.
const (
	DefaultStatementPageSize      = 100
	DefaultStatementContinueAfter = 500
	DefaultStatementParallelism   = 8
)

// StatementRunInput is the statement run's argument. The Schedule passes an
// empty one; continue-as-new carries the month, the cursor and the totals.
type StatementRunInput struct {
	Month         string // "2026-10"; "" = the month before workflow.Now (in TimeZone)
	AfterClientID string // resume cursor: every client up to it is done
	Totals        *StatementRunResult

	PageSize      int // 0 = DefaultStatementPageSize
	ContinueAfter int // 0 = DefaultStatementContinueAfter
	Parallelism   int // 0 = DefaultStatementParallelism
	// TimeZone is the practice's (its namespace's Schedule passes it), so
	// "last month" is the practice's. "" = UTC.
	TimeZone string `json:",omitempty"`
}

// StatementRunResult counts what the run did, over all its runs.
type StatementRunResult struct {
	Month       string
	Clients     int
	Statements  int // rendered (and stored once)
	Emailed     int
	AlreadySent int // statements emailed by an earlier run, passed over
	Failed      int
	Cursor      string // last client whose page is done
}

// StatementRunWorkflow renders and emails a statement to every client with
// ledger activity in a month. It pages through clients in Postgres (keyset by
// client ID), keeps Parallelism renders in flight, and continues as new every
// ContinueAfter clients with the cursor in its input, so an interrupted run
// resumes where it stopped. It is idempotent: a statement's PDF is stored once
// (same data, same bytes) and its email goes out once per client and month
// (the Message-ID is claimed in Postgres), so running it again sends nothing new.
func StatementRunWorkflow(ctx workflow.Context, in *StatementRunInput) (*StatementRunResult, error) {
	if in == nil {
		in = &StatementRunInput{}
	}
	var from time.Time
	if in.Month == "" {
		now := localNow(ctx, in.TimeZone)
		from = time.Date(now.Year(), now.Month()-1, 1, 0, 0, 0, 0, time.UTC)
	} else {
		m, err := time.Parse("2006-01", in.Month)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError("month must be YYYY-MM, got "+in.Month, ErrTypeInvalidState, err)
		}
		from = m
	}
	to := from.AddDate(0, 1, -1)
	month, label := from.Format("2006-01"), from.Format("Jan 2006")
	pageSize := positiveOr(in.PageSize, DefaultStatementPageSize)
	continueAfter := positiveOr(in.ContinueAfter, DefaultStatementContinueAfter)
	parallelism := positiveOr(in.Parallelism, DefaultStatementParallelism)

	res := &StatementRunResult{}
	if in.Totals != nil {
		*res = *in.Totals
	}
	res.Month, res.Cursor = month, in.AfterClientID
	if err := workflow.SetQueryHandler(ctx, StatementRunProgressQuery, func() (*StatementRunResult, error) { return res, nil }); err != nil {
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
		lctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
			Summary:             fmt.Sprintf("Find clients with activity in %s, page %d", label, pageNo),
		})
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
				rctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
					StartToCloseTimeout: 2 * time.Minute,
					// Transient failures (SMTP or Chromium down) retry for hours;
					// a client whose statement cannot be made is counted, not fatal.
					ScheduleToCloseTimeout: 6 * time.Hour,
					RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
					Summary:                summary,
					TaskQueue:              DocumentsTaskQueue,
				})
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
			return nil, workflow.NewContinueAsNewError(ctx, StatementRunWorkflow, &StatementRunInput{Month: month,
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

// Document kinds made on demand.
const (
	DocumentKindStatement = "statement"
	DocumentKindSuperbill = "superbill"
)

// DocumentInput asks for one client document over a period (dates, UTC midnight).
type DocumentInput struct {
	PracticeID string
	ClientID   string
	Kind       string // DocumentKindStatement | DocumentKindSuperbill
	From, To   time.Time
}

// DocumentResult names the stored document.
type DocumentResult struct {
	DocumentID string
}

// DocumentWorkflowID is one on-demand render per client, kind and period, so
// a double-clicked request joins the render already running.
func DocumentWorkflowID(clientID, kind string, from, to time.Time) string {
	return "document-" + clientID + "-" + kind + "-" + from.Format(time.DateOnly) + "-" + to.Format(time.DateOnly)
}

// DocumentWorkflow renders a statement or superbill on the worker (where
// Chromium runs) for the API, which waits for its result.
func DocumentWorkflow(ctx workflow.Context, in *DocumentInput) (*DocumentResult, error) {
	if in.Kind != DocumentKindStatement && in.Kind != DocumentKindSuperbill {
		return nil, temporal.NewNonRetryableApplicationError("unknown document kind "+in.Kind, ErrTypeInvalidState, nil)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 3 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5},
		Summary: fmt.Sprintf("%s for %s %s – %s", strings.ToUpper(in.Kind[:1])+in.Kind[1:], in.ClientID,
			in.From.Format(time.DateOnly), in.To.Format(time.DateOnly)),
		TaskQueue: DocumentsTaskQueue,
	})
	var r activities.DocumentResult
	var err error
	switch in.Kind {
	case DocumentKindStatement:
		err = workflow.ExecuteActivity(actx, acts.RenderStatement, &activities.StatementInput{PracticeID: in.PracticeID,
			ClientID: in.ClientID, From: in.From, To: in.To}).Get(ctx, &r)
	case DocumentKindSuperbill:
		err = workflow.ExecuteActivity(actx, acts.RenderSuperbill, &activities.SuperbillInput{PracticeID: in.PracticeID,
			ClientID: in.ClientID, From: in.From, To: in.To}).Get(ctx, &r)
	}
	if err != nil {
		return nil, err
	}
	return &DocumentResult{DocumentID: r.DocumentID}, nil
}
