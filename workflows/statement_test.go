package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/workflows"
)

var stActs *activities.Activities

// fakeAccounts serves ListStatementClients from a sorted list of client IDs
// and records every RenderStatement, with the most renders seen at once.
type fakeAccounts struct {
	clients  []string
	multi    map[string]bool // clients with a second currency
	failFor  string
	mu       sync.Mutex
	rendered map[string]int // client/currency → renders
	inFlight int
	maxIn    int
	periods  map[string]bool
	pages    int
}

func newFakeAccounts(n int) *fakeAccounts {
	f := &fakeAccounts{rendered: map[string]int{}, periods: map[string]bool{}, multi: map[string]bool{}}
	for i := 1; i <= n; i++ {
		f.clients = append(f.clients, fmt.Sprintf("cli_%05d", i))
	}
	return f
}

func (f *fakeAccounts) list(_ context.Context, in *activities.StatementPageInput) (*activities.StatementPageResult, error) {
	f.mu.Lock()
	f.pages++
	f.periods[in.From.Format(time.DateOnly)+"/"+in.To.Format(time.DateOnly)] = true
	f.mu.Unlock()
	out := &activities.StatementPageResult{}
	for _, c := range f.clients {
		if c <= in.AfterClientID {
			continue
		}
		if len(out.Clients) == in.Limit {
			break
		}
		curs := []string{"usd"}
		if f.multi[c] {
			curs = append(curs, "eur")
		}
		out.Clients = append(out.Clients, activities.StatementClient{PracticeID: "prc_1", ClientID: c, Currencies: curs})
		out.LastClientID = c
	}
	return out, nil
}

func (f *fakeAccounts) render(_ context.Context, in *activities.StatementInput) (*activities.DocumentResult, error) {
	f.mu.Lock()
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	f.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if !in.Email {
		return nil, errors.New("the statement run must email")
	}
	if in.ClientID == f.failFor {
		return nil, temporal.NewNonRetryableApplicationError("client gone", "NotFound", nil)
	}
	f.rendered[in.ClientID+"/"+in.Currency]++
	return &activities.DocumentResult{DocumentID: "doc_" + in.ClientID, Kind: "statement", Emailed: true}, nil
}

// runStatement runs one StatementRunWorkflow execution on a fresh test
// environment and returns its result, or the input of the run it continued as.
func runStatement(t *testing.T, f *fakeAccounts, in *contract.StatementRunInput) (*contract.StatementRunResult, *contract.StatementRunInput) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartTime(time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC))
	env.RegisterWorkflow(workflows.StatementRunWorkflow)
	env.RegisterActivity(stActs)
	env.OnActivity(stActs.ListStatementClients, mock.Anything, mock.Anything).Return(f.list)
	env.OnActivity(stActs.RenderStatement, mock.Anything, mock.Anything).Return(f.render)
	env.ExecuteWorkflow(workflows.StatementRunWorkflow, in)
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if errors.As(err, &can) {
		var next contract.StatementRunInput
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
		return nil, &next
	}
	require.NoError(t, err)
	var res contract.StatementRunResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return &res, nil
}

func TestStatementRunPagesAndContinuesAsNew(t *testing.T) {
	f := newFakeAccounts(1234)
	f.multi["cli_00007"] = true
	in := &contract.StatementRunInput{}
	var res *contract.StatementRunResult
	var cursors []string
	for runs := 0; res == nil; runs++ {
		require.Less(t, runs, 10, "the run never finished")
		var next *contract.StatementRunInput
		res, next = runStatement(t, f, in)
		if next != nil {
			require.Equal(t, "2026-10", next.Month, "the month is fixed when the first run starts")
			cursors = append(cursors, next.AfterClientID)
			in = next
		}
	}
	// 500 clients per run: two continue-as-new, at the 500th and 1000th client.
	require.Equal(t, []string{"cli_00500", "cli_01000"}, cursors)
	require.Equal(t, map[string]bool{"2026-10-01/2026-10-31": true}, f.periods)
	require.Equal(t, "2026-10", res.Month)
	require.Equal(t, 1234, res.Clients)
	require.Equal(t, 1235, res.Statements, "one per client and currency")
	require.Equal(t, 1235, res.Emailed)
	require.Zero(t, res.Failed)
	require.Len(t, f.rendered, 1235)
	for k, n := range f.rendered {
		require.Equal(t, 1, n, "%s rendered more than once", k)
	}
	require.Equal(t, 1, f.rendered["cli_00007/eur"])
	require.LessOrEqual(t, f.maxIn, workflows.DefaultStatementParallelism, "bounded parallelism")
	require.Greater(t, f.maxIn, 1, "statements render in parallel")
	require.Equal(t, 13, f.pages, "13 pages of 100, the last one short")
}

func TestStatementRunCountsFailuresAndGoesOn(t *testing.T) {
	f := newFakeAccounts(30)
	f.failFor = "cli_00003"
	res, next := runStatement(t, f, &contract.StatementRunInput{Month: "2025-02", PageSize: 10, Parallelism: 3})
	require.Nil(t, next)
	require.Equal(t, 30, res.Clients)
	require.Equal(t, 29, res.Statements)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, map[string]bool{"2025-02-01/2025-02-28": true}, f.periods)
	require.LessOrEqual(t, f.maxIn, 3)
	require.Equal(t, 4, f.pages, "three full pages, then an empty one")
}

func TestStatementRunRejectsABadMonth(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(stActs)
	env.ExecuteWorkflow(workflows.StatementRunWorkflow, &contract.StatementRunInput{Month: "October"})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	require.Contains(t, appErr.Error(), "YYYY-MM")
}

func TestDocumentWorkflow(t *testing.T) {
	from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	t.Run("superbill", func(t *testing.T) {
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterActivity(stActs)
		env.OnActivity(stActs.RenderSuperbill, mock.Anything, &activities.SuperbillInput{PracticeID: "prc_1", ClientID: "cli_1",
			From: from, To: to}).Return(&activities.DocumentResult{DocumentID: "doc_1", Kind: "superbill"}, nil).Once()
		env.ExecuteWorkflow(workflows.DocumentWorkflow, &contract.DocumentInput{PracticeID: "prc_1", ClientID: "cli_1",
			Kind: contract.DocumentSuperbill, From: from, To: to})
		require.NoError(t, env.GetWorkflowError())
		var res contract.DocumentResult
		require.NoError(t, env.GetWorkflowResult(&res))
		require.Equal(t, "doc_1", res.DocumentID)
		env.AssertExpectations(t)
	})
	t.Run("statement on demand does not email", func(t *testing.T) {
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterActivity(stActs)
		env.OnActivity(stActs.RenderStatement, mock.Anything, mock.MatchedBy(func(in *activities.StatementInput) bool {
			return !in.Email && in.ClientID == "cli_1" && in.From.Equal(from) && in.To.Equal(to)
		})).Return(&activities.DocumentResult{DocumentID: "doc_2"}, nil).Once()
		env.ExecuteWorkflow(workflows.DocumentWorkflow, &contract.DocumentInput{PracticeID: "prc_1", ClientID: "cli_1",
			Kind: contract.DocumentStatement, From: from, To: to})
		require.NoError(t, env.GetWorkflowError())
		env.AssertExpectations(t)
	})
	t.Run("nothing to render is a typed failure", func(t *testing.T) {
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterActivity(stActs)
		env.OnActivity(stActs.RenderSuperbill, mock.Anything, mock.Anything).Return(nil,
			temporal.NewNonRetryableApplicationError("none", contract.ErrTypeNothingToRender, nil)).Once()
		env.ExecuteWorkflow(workflows.DocumentWorkflow, &contract.DocumentInput{ClientID: "cli_1", Kind: contract.DocumentSuperbill, From: from, To: to})
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, env.GetWorkflowError(), &appErr)
		require.Equal(t, contract.ErrTypeNothingToRender, appErr.Type())
	})
	t.Run("unknown kind", func(t *testing.T) {
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterActivity(stActs)
		env.ExecuteWorkflow(workflows.DocumentWorkflow, &contract.DocumentInput{ClientID: "cli_1", Kind: "invoice"})
		require.Error(t, env.GetWorkflowError())
	})
	require.Equal(t, "document-cli_1-superbill-2026-01-01-2026-03-31", contract.DocumentWorkflowID("cli_1", "superbill", from, to))
}
