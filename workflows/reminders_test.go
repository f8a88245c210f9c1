package workflows_test

import (
	"context"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/workflows"
)

// due is input(false)'s due date: 2026-12-01. Offsets -3, 0, 7, 14.
func day(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }

func (s *invoiceSuite) remind(at time.Duration, today string) {
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.ReminderSignal, &contract.ReminderDue{Today: day(today)})
	}, at)
}

func (s *invoiceSuite) expectReminder(step int) {
	s.env.OnActivity(acts.SendReminder, mock.Anything, mock.MatchedBy(func(in *activities.ReminderInput) bool {
		return in.Step == step && in.Steps == 4
	})).Return(&activities.NotifyResult{Emailed: true}, nil).Once()
}

func (s *invoiceSuite) stateAt(at time.Duration, st *contract.InvoiceState) {
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(contract.StateQuery)
		s.Require().NoError(err)
		s.Require().NoError(v.Get(st))
	}, at)
}

func (s *invoiceSuite) TestRemindersAtEachOffsetNeverTwice() {
	for i := 1; i <= 4; i++ {
		s.expectReminder(i)
	}
	s.remind(1*time.Hour, "2026-11-27") // 4 days before due: nothing yet
	s.remind(2*time.Hour, "2026-11-28") // -3: step 1
	s.remind(3*time.Hour, "2026-11-28") // the run triggered twice in a day: nothing new
	s.remind(4*time.Hour, "2026-12-01") // due date: step 2
	s.remind(5*time.Hour, "2026-12-08") // +7: step 3
	s.remind(6*time.Hour, "2026-12-15") // +14: step 4
	s.remind(7*time.Hour, "2026-12-30") // nothing after the last step
	var mid, end contract.InvoiceState
	s.stateAt(150*time.Minute, &mid)
	s.stateAt(8*time.Hour, &end)
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 9*time.Hour)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.Equal([]int{1}, mid.RemindersSent)
	s.Require().NotNil(mid.NextReminderAt)
	s.Equal(day("2026-12-01"), *mid.NextReminderAt)
	s.Equal(2, mid.NextReminderStep)
	s.Equal([]int{1, 2, 3, 4}, end.RemindersSent)
	s.Nil(end.NextReminderAt)
}

func (s *invoiceSuite) TestReminderAfterDowntimeSendsOnlyLatest() {
	s.expectReminder(3)
	s.remind(time.Hour, "2026-12-09") // the first run after a week down: only step 3
	s.remind(2*time.Hour, "2026-12-10")
	var st contract.InvoiceState
	s.stateAt(3*time.Hour, &st)
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 4*time.Hour)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.Equal([]int{3}, st.RemindersSent)
	s.Equal(4, st.NextReminderStep)
}

func (s *invoiceSuite) TestNoRemindersForPaidOrVoid() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "paid", AmountPaid: 18000}}, nil).Once()
	s.sendUpdate(time.Minute, contract.PayUpdate, "k", &contract.PayInput{Amount: 18000, PaymentMethodID: "pm_card_visa"}, nil)
	s.remind(time.Hour, "2026-12-08")
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.env.AssertNotCalled(s.T(), "SendReminder", mock.Anything, mock.Anything)

	s.SetupTest()
	s.env.OnActivity(acts.VoidInvoice, mock.Anything, mock.Anything).Return(&activities.InvoiceSnapshot{Status: "void"}, nil).Once()
	s.sendUpdate(time.Minute, contract.VoidUpdate, "v", nil, nil)
	s.remind(time.Hour, "2026-12-08")
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(false))
	s.env.AssertNotCalled(s.T(), "SendReminder", mock.Anything, mock.Anything)
}

func (s *invoiceSuite) TestReminderAfterPartialPaymentChasesRemainder() {
	s.env.OnActivity(acts.Charge, mock.Anything, mock.Anything).Return(&activities.ChargeResult{Status: "succeeded",
		Invoice: activities.InvoiceSnapshot{Status: "partially_paid", AmountPaid: 6000, AmountDue: 12000}}, nil).Once()
	s.sendUpdate(time.Minute, contract.PayUpdate, "k", &contract.PayInput{Amount: 6000, PaymentMethodID: "pm_card_visa"}, nil)
	s.expectReminder(2)
	s.remind(time.Hour, "2026-12-01")
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 2*time.Hour)
	s.env.ExecuteWorkflow(workflows.InvoiceWorkflow, input(true))
}

func (s *invoiceSuite) TestReminderRunPages() {
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.ReminderRunWorkflow)
	env.RegisterActivity(acts)
	env.OnActivity(acts.SignalReminders, mock.Anything, mock.MatchedBy(func(in *activities.SignalRemindersInput) bool { return in.AfterID == "" })).
		Return(&activities.SignalRemindersResult{Count: 500, Signalled: 498, LastID: "inv_500"}, nil).Once()
	env.OnActivity(acts.SignalReminders, mock.Anything, mock.MatchedBy(func(in *activities.SignalRemindersInput) bool { return in.AfterID == "inv_500" })).
		Return(&activities.SignalRemindersResult{Count: 12, Signalled: 12, LastID: "inv_512"}, nil).Once()
	env.ExecuteWorkflow(workflows.ReminderRunWorkflow, &contract.ReminderRunInput{Today: day("2026-12-01")})
	s.NoError(env.GetWorkflowError())
	var res contract.ReminderRunResult
	s.NoError(env.GetWorkflowResult(&res))
	s.Equal(510, res.Signalled)
	env.AssertExpectations(s.T())
}

// A practice's reminder run dates "today" by the practice's calendar: at
// 05:00 UTC on Dec 7 it is still Dec 6 in Honolulu, so an invoice due Dec 7
// is not yet "due today" there (the walk saw it arrive the evening before).
func (s *invoiceSuite) TestReminderRunDatesTodayInThePracticeTimeZone() {
	for tz, want := range map[string]string{"Pacific/Honolulu": "2026-12-06", "": "2026-12-07", "Asia/Tokyo": "2026-12-07"} {
		env := s.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(workflows.ReminderRunWorkflow)
		env.RegisterActivity(acts)
		env.SetStartTime(time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC))
		var got time.Time
		env.OnActivity(acts.SignalReminders, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in *activities.SignalRemindersInput) (*activities.SignalRemindersResult, error) {
				got = in.Today
				return &activities.SignalRemindersResult{}, nil
			}).Once()
		env.ExecuteWorkflow(workflows.ReminderRunWorkflow, &contract.ReminderRunInput{TimeZone: tz})
		s.NoError(env.GetWorkflowError())
		s.Equal(day(want), got, "time zone %q", tz)
	}
}
