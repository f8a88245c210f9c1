package workflows_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/workflows"
)

var acts *activities.Activities

type invoiceSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
}

func TestInvoiceWorkflow(t *testing.T) { suite.Run(t, new(invoiceSuite)) }

func (s *invoiceSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.RegisterWorkflow(workflows.InvoiceWorkflow)
	s.env.RegisterActivity(acts)
	s.env.OnActivity(acts.IssueInvoice, mock.Anything, mock.Anything).Return(&activities.NotifyResult{DocumentID: "doc_1", Emailed: true}, nil).Maybe()
	s.env.OnActivity(acts.NotifyPayment, mock.Anything, mock.Anything).Return(&activities.NotifyResult{Emailed: true}, nil).Maybe()
	s.env.OnActivity(acts.NotifyRefund, mock.Anything, mock.Anything).Return(&activities.NotifyResult{Emailed: true}, nil).Maybe()
}

func (s *invoiceSuite) TearDownTest() { s.env.AssertExpectations(s.T()) }

func input(partial bool) *contract.InvoiceInput {
	return &contract.InvoiceInput{InvoiceID: "inv_abc", Number: "INV-0001", PracticeID: "prac_1", ClientID: "cli_1",
		Currency: "usd", Total: 18000, DueDate: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Partial:      contract.PartialTerms{Enabled: partial, MinimumAmount: 5000, MaxInstallments: 2},
		RefundWindow: 24 * time.Hour}
}

type updateResult struct {
	rejected error
	err      error
	value    any
	done     bool
}

// sendUpdate delivers an Update at the given (skipped) time and captures the outcome.
func (s *invoiceSuite) sendUpdate(at time.Duration, name, id string, arg any, out any) *updateResult {
	r := &updateResult{}
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { r.rejected, r.done = err, true },
			OnAccept: func() {},
			OnComplete: func(v any, err error) {
				r.value, r.err, r.done = v, err, true
			},
		}, arg)
	}, at)
	return r
}

func appType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return ""
}

func (s *invoiceSuite) TestFullPaymentThenWindowCloses() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.MatchedBy(func(in *activities.ChargeInput) bool {
		return in.Amount == 18000 && in.PaymentID == "pay_abc_1" && in.PaymentMethodID == "pm_card_visa"
	})).Return(&activities.ChargeResult{PaymentID: "pay_abc_1", IntentID: "pi_1", Status: "succeeded", MethodLabel: "Visa •••• 4242",
		Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}}, nil).Once()
	r := s.sendUpdate(time.Minute, contract.PayUpdate, "k1", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_card_visa"}, nil)
	var st *contract.InvoiceState
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(contract.StateQuery)
		s.Require().NoError(err)
		s.Require().NoError(v.Get(&st))
	}, 2*time.Minute)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.True(s.env.IsWorkflowCompleted())
	s.NoError(s.env.GetWorkflowError())
	s.Require().True(r.done)
	s.NoError(r.err)
	s.Equal("paid", string(st.Status))
	s.Equal(int64(0), st.AmountDue)
	s.Len(st.Payments, 1)
	s.Require().NotNil(st.ClosesAt)
}

func (s *invoiceSuite) TestValidationRules() {
	cases := []struct {
		name    string
		partial bool
		in      *contract.PayInput
		errType string
	}{
		{"zero", true, &contract.PayInput{Amount: 0, PaymentMethodID: "pm_card_visa"}, contract.ErrTypeInvalidPayment},
		{"over due", true, &contract.PayInput{Amount: 18001, PaymentMethodID: "pm_card_visa"}, contract.ErrTypeInvalidPayment},
		{"partial not enabled", false, &contract.PayInput{Amount: 9000, PaymentMethodID: "pm_card_visa"}, contract.ErrTypeInvalidPayment},
		{"below minimum", true, &contract.PayInput{Amount: 4999, PaymentMethodID: "pm_card_visa"}, contract.ErrTypeInvalidPayment},
		{"no method", true, &contract.PayInput{Amount: 18000}, contract.ErrTypeInvalidPayment},
	}
	for _, c := range cases {
		s.Run(c.name, func() {
			s.SetupTest()
			r := s.sendUpdate(time.Minute, contract.PayUpdate, "k", c.in, nil)
			s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, time.Hour)
			s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(c.partial))
			s.Require().True(r.done)
			s.Require().Error(r.rejected, "validator must reject before history")
			s.Equal(c.errType, appType(r.rejected))
		})
	}
}

func (s *invoiceSuite) TestDeclineChangesNothing() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{PaymentID: "pay_abc_1", Status: "failed",
		FailureCode: "card_declined", DeclineCode: "generic_decline", FailureMessage: "Your card was declined.",
		Invoice: activities.InvoiceSnapshot{Status: "open", AmountDue: 18000}}, nil).Once()
	r := s.sendUpdate(time.Minute, contract.PayUpdate, "k1", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_card_chargeDeclined"}, nil)
	var st contract.InvoiceState
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(contract.StateQuery)
		s.Require().NoError(err)
		s.Require().NoError(v.Get(&st))
		s.env.CancelWorkflow()
	}, time.Hour)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.Require().True(r.done)
	s.Require().NoError(r.err)
	res := r.value.(*contract.PayResult)
	s.Equal("failed", string(res.Status))
	s.Equal("card_declined", res.FailureCode)
	s.Equal("open", string(st.Status))
	s.Equal(int64(18000), st.AmountDue)
	s.Empty(st.Payments)
}

func (s *invoiceSuite) TestTwoInstallmentsAndThirdRejected() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.MatchedBy(func(in *activities.ChargeInput) bool { return in.PaymentID == "pay_abc_1" })).
		Return(&activities.ChargeResult{PaymentID: "pay_abc_1", Status: "succeeded",
			Invoice: activities.InvoiceSnapshot{Status: "partially_paid", AmountPaid: 6000, AmountDue: 12000}}, nil).Once()
	first := s.sendUpdate(time.Minute, contract.PayUpdate, "k1", &contract.PayInput{Amount: 6000, PaymentMethodID: "pm_card_visa"}, nil)
	// With max 2 installments, a second partial payment is refused: it must pay the rest.
	second := s.sendUpdate(2*time.Minute, contract.PayUpdate, "k2", &contract.PayInput{Amount: 6000, PaymentMethodID: "pm_card_mastercard"}, nil)
	s.env.OnActivity(acts.Charge, mock.Anything, mock.MatchedBy(func(in *activities.ChargeInput) bool { return in.PaymentID == "pay_abc_2" })).
		Return(&activities.ChargeResult{PaymentID: "pay_abc_2", Status: "succeeded",
			Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000, AmountDue: 0}}, nil).Once()
	third := s.sendUpdate(3*time.Minute, contract.PayUpdate, "k3", &contract.PayInput{Amount: 12000, PaymentMethodID: "pm_card_mastercard"}, nil)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(true))
	s.NoError(first.err)
	s.Equal(contract.ErrTypeInvalidPayment, appType(second.rejected))
	s.NoError(third.err)
	s.Equal("paid", string(third.value.(*contract.PayResult).Invoice.Status))
	s.True(s.env.IsWorkflowCompleted())
}

func (s *invoiceSuite) TestPaidInvoiceRejectsPayment() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}}, nil).Once()
	s.sendUpdate(time.Minute, contract.PayUpdate, "k1", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_card_visa"}, nil)
	again := s.sendUpdate(2*time.Minute, contract.PayUpdate, "k2", &contract.PayInput{Amount: 100, PaymentMethodID: "pm_card_visa"}, nil)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.Equal(contract.ErrTypeInvalidState, appType(again.rejected))
}

func (s *invoiceSuite) TestProcessingThenWebhookSucceeds() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{PaymentID: "pay_abc_1", IntentID: "pi_b",
		Status: "processing", Invoice: activities.InvoiceSnapshot{Status: "processing", AmountProcessing: 18000}}, nil).Once()
	s.env.OnActivity(acts.SyncPayment, mock.Anything, &activities.SyncPaymentInput{InvoiceID: "inv_abc", PaymentID: "pay_abc_1", IntentID: "pi_b"}).
		Return(&activities.ChargeResult{PaymentID: "pay_abc_1", Status: "succeeded", Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}}, nil).Once()
	r := s.sendUpdate(time.Minute, contract.PayUpdate, "k1", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_usBankAccount"}, nil)
	var during contract.InvoiceState
	s.env.RegisterDelayedCallback(func() {
		v, _ := s.env.QueryWorkflow(contract.StateQuery)
		s.Require().NoError(v.Get(&during))
		s.env.SignalWorkflow(contract.PaymentEventSignal, &contract.PaymentEvent{EventID: "evt_1", Type: "payment_intent.succeeded", IntentID: "pi_b"})
	}, time.Hour)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.NoError(r.err)
	s.Equal("processing", string(during.Status))
	s.True(s.env.IsWorkflowCompleted())
	s.NoError(s.env.GetWorkflowError())
}

func (s *invoiceSuite) TestRefundAndOverRefund() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{PaymentID: "pay_abc_1", Status: "succeeded",
		MethodLabel: "Visa •••• 4242", Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}}, nil).Once()
	s.env.OnActivity(acts.Refund, mock.Anything, &activities.RefundInput{InvoiceID: "inv_abc", PaymentID: "pay_abc_1", RefundID: "ref_abc_1", Amount: 5000, Reason: "duplicate session"}).
		Return(&activities.RefundResult{RefundID: "ref_abc_1", Status: "succeeded", Invoice: activities.InvoiceSnapshot{Status: "partially_refunded", AmountPaid: 18000, AmountRefunded: 5000}}, nil).Once()
	s.sendUpdate(time.Minute, contract.PayUpdate, "p", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_card_visa"}, nil)
	ok := s.sendUpdate(2*time.Minute, contract.RefundUpdate, "r1", &contract.RefundInput{Amount: 5000, Reason: "duplicate session"}, nil)
	over := s.sendUpdate(3*time.Minute, contract.RefundUpdate, "r2", &contract.RefundInput{Amount: 13001, PaymentID: "pay_abc_1"}, nil)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.NoError(ok.err)
	s.Equal("partially_refunded", string(ok.value.(*contract.RefundResult).Invoice.Status))
	s.Equal(contract.ErrTypeInvalidRefund, appType(over.rejected))
}

func (s *invoiceSuite) TestVoidClosesAndRejectsPayment() {
	s.env.OnActivity(acts.VoidInvoice, mock.Anything, &activities.InvoiceRef{InvoiceID: "inv_abc"}).
		Return(&activities.InvoiceSnapshot{Status: "void"}, nil).Once()
	v := s.sendUpdate(time.Minute, contract.VoidUpdate, "v", nil, nil)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.Require().True(v.done)
	s.NoError(v.err)
	s.True(s.env.IsWorkflowCompleted())
}

func TestWorkflowIDRoundTrip(t *testing.T) {
	id, ok := contract.InvoiceIDFromWorkflowID(contract.InvoiceWorkflowID("inv_x1"))
	require.True(t, ok)
	require.Equal(t, "inv_x1", id)
	_, ok = contract.InvoiceIDFromWorkflowID("statement-run")
	require.False(t, ok)
}

func (s *invoiceSuite) TestContinueAsNewCarriesState() {
	in := input(true)
	in.MaxHistoryEvents = 20
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "partially_paid", AmountPaid: 6000, AmountDue: 12000}}, nil).Once()
	s.sendUpdate(time.Minute, contract.PayUpdate, "k1", &contract.PayInput{Amount: 6000, PaymentMethodID: "pm_card_visa"}, nil)
	// The history grows past the run's limit; the next wake-up continues as new.
	s.env.RegisterDelayedCallback(func() { s.env.SetCurrentHistoryLength(25) }, 2*time.Minute)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.ReminderSignal, &contract.ReminderDue{Today: day("2026-11-01")})
	}, 3*time.Minute)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, in)
	s.True(s.env.IsWorkflowCompleted())
	err := s.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	s.Require().ErrorAs(err, &can)
	var next contract.InvoiceInput
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Require().NotNil(next.State, "state travels into the next run")
	s.Equal("partially_paid", string(next.State.Status))
	s.Equal(int64(12000), next.State.AmountDue)
	s.Len(next.State.Payments, 1)
	s.Equal(1, next.State.PaymentSeq, "payment IDs keep counting: no idempotency key is reused")
	s.True(next.State.Issued)
}

// A payment event still being handled when the history outgrows the run is
// finished first: continue-as-new carries its outcome (the debit settled,
// the receipt owed), where it used to carry the state from before it.
func (s *invoiceSuite) TestContinueAsNewWaitsForASignalInHand() {
	in := input(false)
	in.MaxHistoryEvents = 20
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{Status: "processing", IntentID: "pi_1",
		Invoice: activities.InvoiceSnapshot{Status: "processing", AmountDue: 0}}, nil).Once()
	s.sendUpdate(time.Minute, contract.PayUpdate, "k1", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_usBankAccount"}, nil)
	// The bank confirms; asking the processor takes a while.
	s.env.OnActivity(acts.SyncPayment, mock.Anything, mock.Anything).After(time.Minute).Return(&activities.ChargeResult{Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000, AmountDue: 0}}, nil).Once()
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.PaymentEventSignal, &contract.PaymentEvent{Type: "payment_intent.succeeded", IntentID: "pi_1", PaymentID: "pay_abc_1"})
	}, 2*time.Minute)
	// Meanwhile the history outgrows the run, and a reminder wakes it.
	s.env.RegisterDelayedCallback(func() { s.env.SetCurrentHistoryLength(25) }, 2*time.Minute+time.Second)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.ReminderSignal, &contract.ReminderDue{Today: day("2026-11-01")})
	}, 2*time.Minute+2*time.Second)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, in)
	s.True(s.env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &can)
	var next contract.InvoiceInput
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Require().NotNil(next.State)
	s.Require().Len(next.State.Payments, 1)
	s.Equal("succeeded", string(next.State.Payments[0].Status), "the event in hand was handled before continuing")
	s.Equal("paid", string(next.State.Status))
}
