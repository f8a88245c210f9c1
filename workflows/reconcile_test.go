package workflows_test

import (
	"github.com/stretchr/testify/mock"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/workflows"
)

// A full reconcile run starts the workflows of invoices whose request never
// did, page by page, before it settles payments; a run for one attempt does not.
func (s *invoiceSuite) TestReconcileStartsUnstartedInvoices() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.ReconcileWorkflow)
	env.RegisterActivity(acts)
	env.OnActivity(acts.StartUnstartedInvoices, mock.Anything, &activities.StartInvoicesInput{}).
		Return(&activities.StartInvoicesResult{Checked: 100, Started: 100, More: true}, nil).Once()
	env.OnActivity(acts.StartUnstartedInvoices, mock.Anything, &activities.StartInvoicesInput{}).
		Return(&activities.StartInvoicesResult{Checked: 3, Started: 2, Errors: 1}, nil).Once()
	env.OnActivity(acts.ReconcilePayments, mock.Anything, mock.Anything).Return(&activities.ReconcileResult{Checked: 1}, nil).Once()
	env.ExecuteWorkflow(workflows.ReconcileWorkflow, &contract.ReconcileInput{})
	s.NoError(env.GetWorkflowError())
	var out contract.ReconcileResult
	s.NoError(env.GetWorkflowResult(&out))
	s.Equal(102, out.InvoicesStarted)
	s.Equal(1, out.Errors)
	s.Equal(1, out.Checked)
	env.AssertExpectations(s.T())

	one := s.NewTestWorkflowEnvironment()
	one.RegisterWorkflow(workflows.ReconcileWorkflow)
	one.RegisterActivity(acts)
	one.OnActivity(acts.ReconcilePayments, mock.Anything, mock.Anything).Return(&activities.ReconcileResult{Checked: 1}, nil).Once()
	one.ExecuteWorkflow(workflows.ReconcileWorkflow, &contract.ReconcileInput{AttemptID: "pay_1"})
	s.NoError(one.GetWorkflowError())
	one.AssertExpectations(s.T())
	one.AssertNotCalled(s.T(), "StartUnstartedInvoices", mock.Anything, mock.Anything)
}
