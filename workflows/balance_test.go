package workflows_test

import (
	"github.com/stretchr/testify/mock"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/workflows"
)

func (s *invoiceSuite) TestBalancePaymentAcrossThreeInvoices() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.BalancePaymentWorkflow)
	env.RegisterActivity(acts)
	allocs := []activities.Allocation{{InvoiceID: "inv_a", PaymentID: "bal_1_1", Amount: 6000},
		{InvoiceID: "inv_b", PaymentID: "bal_1_2", Amount: 12000}, {InvoiceID: "inv_c", PaymentID: "bal_1_3", Amount: 8000}}
	env.OnActivity(acts.ChargeBalance, mock.Anything, mock.MatchedBy(func(in *activities.ChargeBalanceInput) bool {
		return in.Total == 26000 && len(in.InvoiceIDs) == 3
	})).Return(&activities.ChargeBalanceResult{ChargeResult: activities.ChargeResult{IntentID: "pi_1", Status: "succeeded"},
		Allocations: allocs}, nil).Once()
	var order []string
	for _, a := range allocs {
		env.OnSignalExternalWorkflow(mock.Anything, workflows.InvoiceWorkflowID(a.InvoiceID), "", workflows.PaymentAppliedSignal, mock.Anything).
			Run(func(args mock.Arguments) { order = append(order, args.String(1)) }).Return(nil).Once()
	}
	env.OnActivity(acts.SendBalanceReceipt, mock.Anything, &activities.BalanceReceiptInput{BalancePaymentID: "bal_1", PracticeID: "p", ClientID: "c"}).
		Return(&activities.NotifyResult{Emailed: true}, nil).Once()
	env.ExecuteWorkflow(workflows.BalancePaymentWorkflow, &workflows.BalancePaymentInput{BalancePaymentID: "bal_1", PracticeID: "p",
		ClientID: "c", Currency: "usd", Total: 26000, InvoiceIDs: []string{"inv_a", "inv_b", "inv_c"}, PaymentMethodID: "pm_card_visa"})
	s.NoError(env.GetWorkflowError())
	var res workflows.BalancePaymentResult
	s.NoError(env.GetWorkflowResult(&res))
	s.Equal("succeeded", string(res.Status))
	s.Equal([]string{"invoice-inv_a", "invoice-inv_b", "invoice-inv_c"}, order, "oldest invoice first")
	env.AssertExpectations(s.T())
}

func (s *invoiceSuite) TestBalancePaymentDeclinedAppliesNothing() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.BalancePaymentWorkflow)
	env.RegisterActivity(acts)
	env.OnActivity(acts.ChargeBalance, mock.Anything, mock.Anything).Return(&activities.ChargeBalanceResult{
		ChargeResult: activities.ChargeResult{Status: "failed", FailureCode: "card_declined"}}, nil).Once()
	env.ExecuteWorkflow(workflows.BalancePaymentWorkflow, &workflows.BalancePaymentInput{BalancePaymentID: "bal_2", Total: 100, Currency: "usd"})
	var res workflows.BalancePaymentResult
	s.NoError(env.GetWorkflowResult(&res))
	s.Equal("card_declined", res.FailureCode)
	env.AssertExpectations(s.T())
}

func (s *invoiceSuite) TestPaymentAppliedByBalancePayment() {
	// A fresh environment without the catch-all notification mocks.
	s.env = s.NewTestWorkflowEnvironment()
	s.env.RegisterWorkflow(workflows.InvoiceWorkflow)
	s.env.RegisterActivity(acts)
	s.env.OnActivity(acts.IssueInvoice, mock.Anything, mock.Anything).Return(&activities.NotifyResult{}, nil).Once()
	s.env.OnActivity(acts.RefreshInvoice, mock.Anything, &activities.InvoiceRef{InvoiceID: "inv_abc"}).
		Return(&activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}, nil).Once()
	s.env.OnActivity(acts.NotifyPayment, mock.Anything, &activities.NotifyInput{InvoiceID: "inv_abc", PaymentID: "bal_1_1", ReceiptOnly: true}).
		Return(&activities.NotifyResult{DocumentID: "doc_r"}, nil).Once()
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(workflows.PaymentAppliedSignal, &workflows.PaymentApplied{PaymentID: "bal_1_1", Amount: 18000, Status: "succeeded"})
	}, 0)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.NoError(s.env.GetWorkflowError())
}
