package workflows_test

import (
	"context"
	"errors"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/workflows"
)

// smtp stands in for the mail server behind SendReminder: while down, every
// attempt fails as a refused connection does.
type smtp struct {
	up       bool
	attempts int
	sent     []int // steps emailed
}

func (s *invoiceSuite) reminderSMTP() *smtp {
	m := &smtp{}
	s.env.OnActivity(acts.SendReminder, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in *activities.ReminderInput) (*activities.NotifyResult, error) {
			m.attempts++
			if !m.up {
				return nil, errors.New("send reminder email: dial tcp 127.0.0.1:1025: connect: connection refused")
			}
			m.sent = append(m.sent, in.Step)
			return &activities.NotifyResult{Emailed: true}, nil
		}).Maybe()
	return m
}

// SMTP down: a reminder falls due and keeps failing; a payment meanwhile
// completes at once. When SMTP is back the reminder goes out once and its
// step is recorded once, however often the run signals that day.
func (s *invoiceSuite) TestReminderRetryingDoesNotBlockPayment() {
	m := s.reminderSMTP()
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "partially_paid", AmountPaid: 6000, AmountDue: 12000}}, nil).Once()
	s.remind(time.Hour, "2026-12-01") // the due date: step 2, SMTP down
	// The test environment gives up on an activity after 10 attempts
	// (about 13 minutes of this backoff): the outage ends before that.
	pay := s.sendUpdate(time.Hour+5*time.Minute, contract.PayUpdate, "k", &contract.PayInput{Amount: 6000, PaymentMethodID: "pm_card_visa"}, nil)
	s.remind(time.Hour+5*time.Minute+30*time.Second, "2026-12-01") // the run triggered again during the outage
	var during contract.InvoiceState
	paidDuringOutage, attemptsBeforePay := false, 0
	s.env.RegisterDelayedCallback(func() { attemptsBeforePay = m.attempts }, time.Hour+4*time.Minute)
	s.env.RegisterDelayedCallback(func() {
		paidDuringOutage = pay.done && len(m.sent) == 0
		v, err := s.env.QueryWorkflow(contract.StateQuery)
		s.Require().NoError(err)
		s.Require().NoError(v.Get(&during))
		m.up = true
	}, time.Hour+6*time.Minute)
	s.remind(3*time.Hour, "2026-12-01") // and again after it
	var end contract.InvoiceState
	s.stateAt(4*time.Hour, &end)
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 5*time.Hour)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(true))

	s.Greater(attemptsBeforePay, 3, "the reminder was retrying when the client paid")
	s.True(paidDuringOutage, "the payment completed while the reminder was still failing")
	s.Require().True(pay.done)
	s.NoError(pay.rejected)
	s.NoError(pay.err)
	s.Equal("partially_paid", string(during.Status))
	s.Empty(during.RemindersSent)
	s.Require().NotEmpty(during.Pending)
	s.Equal("reminder", string(during.Pending[0].Kind))
	s.Equal(2, during.Pending[0].Step)
	s.Equal(3, during.NextReminderStep, "the owed step counts as taken")
	s.Equal([]int{2}, m.sent, "sent once, after SMTP came back")
	s.Equal([]int{2}, end.RemindersSent)
	s.Empty(end.Pending)
}

// Paid in full while the reminder waits out an SMTP outage: the reminder is
// dropped (no "please pay" to a client who has) and the receipt behind it
// goes out.
func (s *invoiceSuite) TestReminderOwedWhenPaidInFullIsDropped() {
	m := s.reminderSMTP()
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{PaymentID: "pay_abc_1", Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}}, nil).Once()
	receipts := 0
	s.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var in activities.NotifyInput
		if info.ActivityType.Name == "NotifyPayment" && args.Get(&in) == nil && in.PaymentID == "pay_abc_1" {
			receipts++
		}
	})
	s.remind(time.Hour, "2026-12-08")
	pay := s.sendUpdate(time.Hour+5*time.Minute, contract.PayUpdate, "k", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_card_visa"}, nil)
	s.env.RegisterDelayedCallback(func() { m.up = true }, time.Hour+6*time.Minute)
	var end contract.InvoiceState
	s.stateAt(3*time.Hour, &end)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))

	s.NoError(s.env.GetWorkflowError())
	s.Require().True(pay.done)
	s.NoError(pay.err)
	s.Positive(m.attempts)
	s.Empty(m.sent)
	s.Equal(1, receipts)
	s.Equal("paid", string(end.Status))
	s.Empty(end.RemindersSent)
	s.Empty(end.Pending)
}

// A reminder owed when the workflow continued as new is carried in its state
// and sent once by the next run.
func (s *invoiceSuite) TestOwedReminderSurvivesContinueAsNew() {
	m := s.reminderSMTP()
	m.up = true
	in := input(false)
	in.State = &contract.InvoiceState{InvoiceID: in.InvoiceID, Number: in.Number, Status: "open", Currency: "usd", Total: 18000,
		AmountDue: 18000, DueDate: in.DueDate, Issued: true, RemindersSent: []int{1},
		Pending: []contract.Notice{{Kind: "reminder", Step: 2, Steps: 4, Today: day("2026-12-01")}}}
	s.remind(time.Hour, "2026-12-01") // the same day's run again: already owed
	var end contract.InvoiceState
	s.stateAt(2*time.Hour, &end)
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 3*time.Hour)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, in)
	s.Equal([]int{2}, m.sent)
	s.Equal([]int{1, 2}, end.RemindersSent)
	s.Empty(end.Pending)
	s.Equal(3, end.NextReminderStep)
}

// SMTP down while the practice resends the invoice: the resend waits the
// outage out, but holds no lock, so a payment meanwhile completes at once.
func (s *invoiceSuite) TestResendRetryingDoesNotBlockPayment() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.InvoiceWorkflow)
	env.RegisterActivity(acts)
	up, resent := false, 0
	env.OnActivity(acts.IssueInvoice, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in *activities.InvoiceRef) (*activities.NotifyResult, error) {
			if in.Resend == 0 {
				return &activities.NotifyResult{Emailed: true}, nil
			}
			if !up {
				return nil, errors.New("send invoice_issued email: dial tcp 127.0.0.1:1025: connect: connection refused")
			}
			resent++
			return &activities.NotifyResult{Emailed: true}, nil
		})
	env.OnActivity(acts.NotifyPayment, mock.Anything, mock.Anything).Return(&activities.NotifyResult{Emailed: true}, nil).Maybe()
	env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "partially_paid", AmountPaid: 6000, AmountDue: 12000}}, nil).Once()
	var resend, pay updateResult
	callback := func(r *updateResult) *testsuite.TestUpdateCallback {
		return &testsuite.TestUpdateCallback{OnReject: func(err error) { r.rejected, r.done = err, true }, OnAccept: func() {},
			OnComplete: func(v any, err error) { r.value, r.err, r.done = v, err, true }}
	}
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(contract.ResendUpdate, "r", callback(&resend)) }, time.Hour)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.PayUpdate, "p", callback(&pay), &contract.PayInput{Amount: 6000, PaymentMethodID: "pm_card_visa"})
	}, time.Hour+5*time.Minute)
	paidDuringOutage := false
	env.RegisterDelayedCallback(func() {
		paidDuringOutage = pay.done && !resend.done
		up = true
	}, time.Hour+6*time.Minute)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 2*time.Hour)
	env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(true))

	s.True(paidDuringOutage, "the payment completed while the resend was still failing")
	s.NoError(pay.err)
	s.Require().True(resend.done)
	s.NoError(resend.err)
	s.Equal(1, resend.value.(*contract.ResendResult).Sequence)
	s.Equal(1, resent)
	env.AssertExpectations(s.T())
}
