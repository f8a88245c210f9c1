package workflows_test

import (
	"errors"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
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
		env.OnSignalExternalWorkflow(mock.Anything, contract.InvoiceWorkflowID(a.InvoiceID), "", contract.PaymentAppliedSignal, mock.Anything).
			Run(func(args mock.Arguments) { order = append(order, args.String(1)) }).Return(nil).Once()
	}
	env.OnActivity(acts.SendBalanceReceipt, mock.Anything, &activities.BalanceReceiptInput{BalancePaymentID: "bal_1", PracticeID: "p", ClientID: "c"}).
		Return(&activities.NotifyResult{Emailed: true}, nil).Once()
	env.ExecuteWorkflow(workflows.BalancePaymentWorkflow, &contract.BalancePaymentInput{BalancePaymentID: "bal_1", PracticeID: "p",
		ClientID: "c", Currency: "usd", Total: 26000, InvoiceIDs: []string{"inv_a", "inv_b", "inv_c"}, PaymentMethodID: "pm_card_visa"})
	s.NoError(env.GetWorkflowError())
	var res contract.BalancePaymentResult
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
	env.ExecuteWorkflow(workflows.BalancePaymentWorkflow, &contract.BalancePaymentInput{BalancePaymentID: "bal_2", Total: 100, Currency: "usd"})
	var res contract.BalancePaymentResult
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
		s.env.SignalWorkflow(contract.PaymentAppliedSignal, &contract.PaymentApplied{PaymentID: "bal_1_1", Amount: 18000, Status: "succeeded"})
	}, 0)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.NoError(s.env.GetWorkflowError())
}

// TestBalancePaymentRecordedBeforeReceipt: the recorded Update answers as
// soon as the charge is recorded, while the receipt email is still failing
// (SMTP down) and retried with backoff; the email then goes out once.
func (s *invoiceSuite) TestBalancePaymentRecordedBeforeReceipt() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.BalancePaymentWorkflow)
	env.RegisterActivity(acts)
	allocs := []activities.Allocation{{InvoiceID: "inv_a", PaymentID: "bal_3_1", Amount: 6000}}
	env.OnActivity(acts.ChargeBalance, mock.Anything, mock.Anything).Return(&activities.ChargeBalanceResult{
		ChargeResult: activities.ChargeResult{IntentID: "pi_3", Status: "succeeded"}, Allocations: allocs}, nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, "invoice-inv_a", "", contract.PaymentAppliedSignal, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.SendBalanceReceipt, mock.Anything, mock.Anything).Return(nil, errors.New("smtp: connection refused")).Times(4)
	var emailedAt time.Time
	env.OnActivity(acts.SendBalanceReceipt, mock.Anything, mock.Anything).Run(func(mock.Arguments) { emailedAt = env.Now() }).
		Return(&activities.NotifyResult{Emailed: true}, nil).Once()
	var recordedAt time.Time
	var got contract.BalancePaymentResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.RecordedUpdate, "recorded", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { s.Fail("rejected", err.Error()) }, OnAccept: func() {},
			OnComplete: func(v any, err error) {
				s.Require().NoError(err)
				got, recordedAt = *v.(*contract.BalancePaymentResult), env.Now()
			}})
	}, 0)
	start := env.Now()
	env.ExecuteWorkflow(workflows.BalancePaymentWorkflow, &contract.BalancePaymentInput{BalancePaymentID: "bal_3", PracticeID: "p",
		ClientID: "c", Currency: "usd", Total: 6000, InvoiceIDs: []string{"inv_a"}, PaymentMethodID: "pm_card_visa"})
	s.NoError(env.GetWorkflowError())
	s.Equal("succeeded", string(got.Status))
	s.Equal(allocs, got.Allocations)
	s.False(recordedAt.IsZero())
	s.Less(recordedAt.Sub(start), time.Second, "answered at once")
	s.Greater(emailedAt.Sub(recordedAt), 10*time.Second, "the receipt followed, after its retries")
	env.AssertExpectations(s.T())
}

// TestBalancePaymentRecordedRefusal: a stale balance is refused through the
// recorded Update too, with its error type.
func (s *invoiceSuite) TestBalancePaymentRecordedRefusal() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.BalancePaymentWorkflow)
	env.RegisterActivity(acts)
	env.OnActivity(acts.ChargeBalance, mock.Anything, mock.Anything).Return(nil,
		temporal.NewNonRetryableApplicationError("the balance changed", contract.ErrTypeBalanceChanged, nil)).Once()
	var got error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.RecordedUpdate, "recorded", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { s.Fail("rejected", err.Error()) }, OnAccept: func() {},
			OnComplete: func(_ any, err error) { got = err }})
	}, 0)
	env.ExecuteWorkflow(workflows.BalancePaymentWorkflow, &contract.BalancePaymentInput{BalancePaymentID: "bal_4", Total: 100, Currency: "usd"})
	var appErr *temporal.ApplicationError
	s.Require().ErrorAs(got, &appErr)
	s.Equal(contract.ErrTypeBalanceChanged, appErr.Type())
	s.Error(env.GetWorkflowError())
}

// TestRefundAfterCloseRecordedBeforeNotice: the refund's recorded Update
// answers once the refund is recorded; the notice follows its retries.
func (s *invoiceSuite) TestRefundAfterCloseRecordedBeforeNotice() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.RefundAfterCloseWorkflow)
	env.RegisterActivity(acts)
	env.OnActivity(acts.Refund, mock.Anything, mock.Anything).Return(&activities.RefundResult{RefundID: "ref_1", Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "refunded", AmountPaid: 9000, AmountRefunded: 9000}}, nil).Once()
	env.OnActivity(acts.NotifyRefund, mock.Anything, mock.Anything).Return(nil, errors.New("smtp: connection refused")).Times(3)
	var emailedAt time.Time
	env.OnActivity(acts.NotifyRefund, mock.Anything, mock.Anything).Run(func(mock.Arguments) { emailedAt = env.Now() }).
		Return(&activities.NotifyResult{Emailed: true}, nil).Once()
	var recordedAt time.Time
	var got contract.RefundResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.RecordedUpdate, "recorded", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { s.Fail("rejected", err.Error()) }, OnAccept: func() {},
			OnComplete: func(v any, err error) {
				s.Require().NoError(err)
				got, recordedAt = *v.(*contract.RefundResult), env.Now()
			}})
	}, 0)
	start := env.Now()
	env.ExecuteWorkflow(workflows.RefundAfterCloseWorkflow, &contract.RefundAfterCloseInput{InvoiceID: "inv_a", PaymentID: "pay_a_1",
		RefundID: "ref_1", Amount: 9000, Currency: "usd"})
	s.NoError(env.GetWorkflowError())
	s.Equal("succeeded", string(got.Status))
	s.Equal(int64(9000), got.Amount)
	s.Less(recordedAt.Sub(start), time.Second)
	s.Greater(emailedAt.Sub(recordedAt), 5*time.Second)
	env.AssertExpectations(s.T())
}

// TestRefundOfABalancePaymentInHand: a balance payment's payment-applied
// signal is in hand (waiting for the payment lock, held by a card payment in
// flight, or, on a real worker, delivered in the same workflow task as the
// refund, whose Update is handled first) when a refund of that payment
// arrives. The refund is not refused as "not a payment of this invoice": it
// waits for the signal to be taken in, then refunds. A payment that no signal
// brings is still refused.
func (s *invoiceSuite) TestRefundOfABalancePaymentInHand() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).After(10*time.Minute).Return(&activities.ChargeResult{PaymentID: "pay_abc_1", Status: "succeeded",
		MethodLabel: "Visa •••• 4242", Invoice: activities.InvoiceSnapshot{Status: "partially_paid", AmountPaid: 5000}}, nil).Once()
	s.env.OnActivity(acts.RefreshInvoice, mock.Anything, &activities.InvoiceRef{InvoiceID: "inv_abc"}).
		Return(&activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}, nil).Once()
	s.env.OnActivity(acts.Refund, mock.Anything, &activities.RefundInput{InvoiceID: "inv_abc", PaymentID: "bal_1_1", RefundID: "ref_abc_1", Amount: 13000}).
		Return(&activities.RefundResult{RefundID: "ref_abc_1", Status: "succeeded", Invoice: activities.InvoiceSnapshot{Status: "partially_refunded", AmountPaid: 18000, AmountRefunded: 13000}}, nil).Once()
	pay := s.sendUpdate(time.Minute, contract.PayUpdate, "p", &contract.PayInput{Amount: 5000, PaymentMethodID: "pm_card_visa"}, nil)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.PaymentAppliedSignal, &contract.PaymentApplied{PaymentID: "bal_1_1", Amount: 13000, Status: "succeeded"})
	}, 2*time.Minute)
	r := s.sendUpdate(3*time.Minute, contract.RefundUpdate, "r1", &contract.RefundInput{Amount: 13000, PaymentID: "bal_1_1"}, nil)
	unknown := s.sendUpdate(30*time.Minute, contract.RefundUpdate, "r2", &contract.RefundInput{Amount: 100, PaymentID: "pay_nope"}, nil)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(true))
	s.NoError(pay.err)
	s.True(r.done)
	s.NoError(r.rejected)
	s.NoError(r.err)
	s.Equal("partially_refunded", string(r.value.(*contract.RefundResult).Invoice.Status))
	s.True(unknown.done)
	s.Equal(contract.ErrTypeInvalidRefund, appType(errors.Join(unknown.rejected, unknown.err)))
}
