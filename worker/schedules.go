package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
)

// ScheduleOptions tune the Schedules the worker keeps.
type ScheduleOptions struct {
	// ReminderHour is the hour of the daily reminder run (0-23), in TimeZone.
	ReminderHour int
	// TimeZone is the practice's, for a practice namespace's Schedules:
	// they fire on its clock and its runs date "today" by its calendar.
	// "" = UTC (the shared namespace).
	TimeZone string
}

func (o ScheduleOptions) zoneLabel() string {
	if o.TimeZone == "" {
		return "UTC"
	}
	return o.TimeZone
}

// scheduleSpec is one Schedule billflow owns: its ID, when it fires, and the
// workflow it starts.
type scheduleSpec struct {
	ID       string
	Spec     client.ScheduleSpec
	Workflow string // a contract workflow type name
	Args     []any
	Summary  string
	Note     string
	// CatchupWindow is how long after a missed time (the server or every
	// worker down) the run still happens; default 24 hours.
	CatchupWindow time.Duration
}

func (s scheduleSpec) catchup() time.Duration {
	if s.CatchupWindow > 0 {
		return s.CatchupWindow
	}
	return 24 * time.Hour
}

// schedules lists every Schedule; add a new one here and EnsureSchedules
// creates or updates it at worker start.
func schedules(o ScheduleOptions) []scheduleSpec {
	return []scheduleSpec{
		{
			// Monthly statements: the 1st of each month at 06:00, for the previous month.
			ID: contract.StatementRunID,
			Spec: client.ScheduleSpec{TimeZoneName: o.TimeZone, Calendars: []client.ScheduleCalendarSpec{{
				Second: []client.ScheduleRange{{Start: 0}}, Minute: []client.ScheduleRange{{Start: 0}},
				Hour: []client.ScheduleRange{{Start: 6}}, DayOfMonth: []client.ScheduleRange{{Start: 1}},
				Month: []client.ScheduleRange{{Start: 1, End: 12}}, DayOfWeek: []client.ScheduleRange{{Start: 0, End: 6}},
				Comment: "1st of the month, 06:00 " + o.zoneLabel(),
			}}},
			Workflow: contract.StatementRunWorkflowType,
			Args:     []any{&contract.StatementRunInput{TimeZone: o.TimeZone}},
			Summary:  "Monthly statements for the previous month",
			Note:     "managed by the billflow worker",
			// A multi-day outage over the 1st still sends the month's statements.
			CatchupWindow: 10 * 24 * time.Hour,
		},
		{
			// Reminders: every day at ReminderHour (the practice's time);
			// each invoice workflow decides whether a step is due and sends
			// it once.
			ID: contract.ReminderRunID,
			Spec: client.ScheduleSpec{TimeZoneName: o.TimeZone, Calendars: []client.ScheduleCalendarSpec{{
				Second: []client.ScheduleRange{{Start: 0}}, Minute: []client.ScheduleRange{{Start: 0}},
				Hour: []client.ScheduleRange{{Start: o.ReminderHour}}, DayOfMonth: []client.ScheduleRange{{Start: 1, End: 31}},
				Month: []client.ScheduleRange{{Start: 1, End: 12}}, DayOfWeek: []client.ScheduleRange{{Start: 0, End: 6}},
				Comment: fmt.Sprintf("daily, %02d:00 %s", o.ReminderHour, o.zoneLabel()),
			}}},
			Workflow: contract.ReminderRunWorkflowType,
			Args:     []any{&contract.ReminderRunInput{TimeZone: o.TimeZone}},
			Summary:  "Daily payment reminders for invoices with a balance",
			Note:     "managed by the billflow worker",
		},
		{
			// The janitor: payments whose outcome was never recorded (a
			// charge that timed out, a webhook that never came) are asked
			// of the processor and recorded. It never charges.
			ID:            contract.ReconcileRunID,
			Spec:          client.ScheduleSpec{TimeZoneName: o.TimeZone, Intervals: []client.ScheduleIntervalSpec{{Every: 2 * time.Minute}}},
			Workflow:      contract.ReconcileWorkflowType,
			Args:          []any{&contract.ReconcileInput{}},
			Summary:       "Settle payments with no recorded outcome from the processor",
			Note:          "managed by the billflow worker",
			CatchupWindow: 10 * time.Minute,
		},
	}
}

// EnsureSchedules creates billflow's Schedules, or brings existing ones to
// the current definition (spec, action, policy) while keeping their state, so
// every worker can call it at start. Overlapping runs are skipped: a run still
// going when the next is due finishes first.
func EnsureSchedules(ctx context.Context, c client.Client, o ScheduleOptions) error {
	if o.ReminderHour < 0 || o.ReminderHour > 23 {
		return fmt.Errorf("ensure schedules: reminder hour %d is not 0-23", o.ReminderHour)
	}
	sc := c.ScheduleClient()
	for _, s := range schedules(o) {
		action := &client.ScheduleWorkflowAction{ID: s.ID, Workflow: s.Workflow, Args: s.Args, TaskQueue: contract.TaskQueue,
			StaticSummary: s.Summary, WorkflowRunTimeout: 24 * time.Hour}
		_, err := sc.Create(ctx, client.ScheduleOptions{ID: s.ID, Spec: s.Spec, Action: action,
			Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: s.catchup(), Note: s.Note})
		if err == nil {
			continue
		}
		if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return fmt.Errorf("create schedule %s: %w", s.ID, err)
		}
		spec, catchup := s.Spec, s.catchup()
		err = sc.GetHandle(ctx, s.ID).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				sched := in.Description.Schedule
				sched.Action, sched.Spec = action, &spec
				if sched.Policy == nil {
					sched.Policy = &client.SchedulePolicies{}
				}
				sched.Policy.Overlap, sched.Policy.CatchupWindow = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, catchup
				return &client.ScheduleUpdate{Schedule: &sched}, nil
			},
		})
		if err != nil {
			return fmt.Errorf("update schedule %s: %w", s.ID, err)
		}
	}
	return nil
}
