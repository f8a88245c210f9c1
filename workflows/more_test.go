package workflows_test

import (
	"context"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/workflows"
)

func (s *invoiceSuite) TestProcessingThenWebhookFailsReopens() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{PaymentID: "pay_abc_1", IntentID: "pi_f",
		Status: "processing", Invoice: activities.InvoiceSnapshot{Status: "processing", AmountProcessing: 18000}}, nil).Once()
	s.env.OnActivity(acts.SyncPayment, mock.Anything, mock.Anything).Return(&activities.ChargeResult{PaymentID: "pay_abc_1",
		Status: "failed", FailureCode: "insufficient_funds", Invoice: activities.InvoiceSnapshot{Status: "open", AmountDue: 18000}}, nil).Once()
	s.sendUpdate(time.Minute, contract.PayUpdate, "k1", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_usBankAccount_insufficientFunds"}, nil)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.PaymentEventSignal, &contract.PaymentEvent{EventID: "evt_f", Type: "payment_intent.payment_failed", IntentID: "pi_f"})
	}, time.Hour)
	// The amount is open again: a card payment now goes through.
	retry := s.sendUpdate(2*time.Hour, contract.PayUpdate, "k2", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_card_visa"}, nil)
	s.env.OnActivity(acts.Charge, mock.Anything, mock.MatchedBy(func(in *activities.ChargeInput) bool { return in.PaymentID == "pay_abc_2" })).
		Return(&activities.ChargeResult{PaymentID: "pay_abc_2", Status: "succeeded", Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}}, nil).Once()
	failedNotices := 0
	s.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var in activities.NotifyInput
		if info.ActivityType.Name == "NotifyPayment" && args.Get(&in) == nil && in.PaymentID == "pay_abc_1" {
			failedNotices++
		}
	})
	var st contract.InvoiceState
	s.stateAt(90*time.Minute, &st)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.Equal(1, failedNotices, "the client is told once that the debit failed")
	s.Equal("open", string(st.Status))
	s.Equal(int64(18000), st.AmountDue)
	s.Require().Len(st.Payments, 1)
	s.Equal("failed", string(st.Payments[0].Status))
	s.NoError(retry.rejected)
	s.NoError(retry.err)
}

func (s *invoiceSuite) TestRefundAfterCloseWorkflow() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.RefundAfterCloseWorkflow)
	env.RegisterActivity(acts)
	env.OnActivity(acts.Refund, mock.Anything, &activities.RefundInput{InvoiceID: "inv_1", PaymentID: "pay_1", RefundID: "ref_1_cx", Amount: 500, Reason: "duplicate"}).
		Return(&activities.RefundResult{RefundID: "ref_1_cx", Status: "succeeded", Invoice: activities.InvoiceSnapshot{Status: "partially_refunded"}}, nil).Once()
	env.OnActivity(acts.NotifyRefund, mock.Anything, &activities.NotifyInput{InvoiceID: "inv_1", RefundID: "ref_1_cx"}).
		Return(&activities.NotifyResult{Emailed: true}, nil).Once()
	env.ExecuteWorkflow(workflows.RefundAfterCloseWorkflow, &contract.RefundAfterCloseInput{InvoiceID: "inv_1", PaymentID: "pay_1",
		RefundID: "ref_1_cx", Amount: 500, Currency: "usd", Reason: "duplicate"})
	var res contract.RefundResult
	s.NoError(env.GetWorkflowResult(&res))
	s.Equal("partially_refunded", string(res.Invoice.Status))
	env.AssertExpectations(s.T())
}

func (s *invoiceSuite) TestResendEmailsOncePerRequestNeverWhenPaid() {
	var resends []int
	s.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var in activities.InvoiceRef
		if info.ActivityType.Name == "IssueInvoice" && args.Get(&in) == nil {
			resends = append(resends, in.Resend)
		}
	})
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{PaymentID: "pay_abc_1", Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}}, nil).Once()
	r1 := s.sendUpdate(time.Minute, contract.ResendUpdate, "r1", nil, nil)
	r2 := s.sendUpdate(2*time.Minute, contract.ResendUpdate, "r2", nil, nil)
	s.sendUpdate(3*time.Minute, contract.PayUpdate, "p", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_card_visa"}, nil)
	paid := s.sendUpdate(4*time.Minute, contract.ResendUpdate, "r3", nil, nil)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.NoError(r1.rejected)
	s.NoError(r1.err)
	s.Equal(1, r1.value.(*contract.ResendResult).Sequence)
	s.Equal(2, r2.value.(*contract.ResendResult).Sequence)
	s.Equal(contract.ErrTypeInvalidState, appType(paid.rejected))
	s.Equal([]int{0, 1, 2}, resends, "the first email, then one per resend")
}
