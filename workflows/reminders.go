package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// DefaultReminderOffsets is the policy when a practice has none: 3 days
// before the due date, on it, and 7 and 14 days after.
var DefaultReminderOffsets = []int{-3, 0, 7, 14}

func (w *invoiceWF) offsets() []int {
	o := w.in.ReminderOffsets
	if len(o) == 0 {
		o = DefaultReminderOffsets
	}
	o = slices.Clone(o)
	slices.Sort(o)
	return o
}

// localNow is the workflow's time in a practice's time zone ("" or an
// unknown zone: UTC). Loading a zone reads the same tzdata on every replay.
func localNow(ctx workflow.Context, tz string) time.Time {
	now := workflow.Now(ctx).UTC()
	if tz == "" {
		return now
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		workflow.GetLogger(ctx).Warn("unknown time zone; using UTC", "time_zone", tz)
		return now
	}
	return now.In(loc)
}

// dateOnly is t's calendar date (in t's own location) at 00:00 UTC.
func dateOnly(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// remindable is whether the invoice still has a balance to chase.
func (w *invoiceWF) remindable() bool {
	return (w.st.Status == "open" || w.st.Status == "partially_paid") && w.st.AmountDue > 0
}

// dueStep is the latest policy step whose date has come by today (1-based),
// or 0. Steps before it that were never sent are passed over: after downtime
// only the latest reminder goes out, never a burst.
func (w *invoiceWF) dueStep(today time.Time) int {
	step := 0
	for i, off := range w.offsets() {
		if !dateOnly(w.st.DueDate).AddDate(0, 0, off).After(dateOnly(today)) {
			step = i + 1
		}
	}
	return step
}

func (w *invoiceWF) reminderSent(step int) bool { return slices.Contains(w.st.RemindersSent, step) }

// planNextReminder records, for the state Query, when the next step falls.
func (w *invoiceWF) planNextReminder(today time.Time) {
	w.st.NextReminderAt, w.st.NextReminderStep = nil, 0
	if !w.remindable() {
		return
	}
	last := w.lastReminderStep()
	for i, off := range w.offsets() {
		if i+1 <= last {
			continue
		}
		at := dateOnly(w.st.DueDate).AddDate(0, 0, off)
		if at.Before(dateOnly(today)) && i+1 < len(w.offsets()) {
			continue
		}
		w.st.NextReminderAt, w.st.NextReminderStep = &at, i+1
		return
	}
}

// lastReminderStep is the latest step sent or owed: a step owed in Pending
// is never queued twice, whichever run it was queued in.
func (w *invoiceWF) lastReminderStep() int {
	last := 0
	for _, s := range w.st.RemindersSent {
		last = max(last, s)
	}
	for _, n := range w.st.Pending {
		if n.Kind == "reminder" {
			last = max(last, n.Step)
		}
	}
	return last
}

// reminderOutsideLockChange marks the move of the reminder email out of the
// payment lock: the signal handler only records the step as owed and the run
// loop sends it, so SMTP being down never holds up a payment. Histories
// recorded before it sent the email while holding the lock.
const reminderOutsideLockChange = "reminder-outside-lock"

// onReminderDue decides, under the payment lock, whether a reminder is due
// today and records it as owed, once per step.
func (w *invoiceWF) onReminderDue(ctx workflow.Context, r *ReminderDue) {
	today := r.Today
	if today.IsZero() {
		today = workflow.Now(ctx)
	}
	defer w.planNextReminder(today)
	if !w.remindable() {
		return
	}
	step := w.dueStep(today)
	if step == 0 || step <= w.lastReminderStep() {
		return
	}
	steps := len(w.offsets())
	// Asked only when a step is due, so a run that had never sent a
	// reminder before this code takes the new path.
	if workflow.GetVersion(ctx, reminderOutsideLockChange, workflow.DefaultVersion, 1) == 1 {
		w.st.Pending = append(w.st.Pending, Notice{Kind: "reminder", Step: step, Steps: steps, Today: dateOnly(today)})
		return
	}
	err := workflow.ExecuteActivity(reminderOptions(ctx, step, steps), acts.SendReminder, &activities.ReminderInput{InvoiceID: w.in.InvoiceID, Step: step,
		Steps: steps, Today: dateOnly(today)}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("reminder failed", "step", step, "error", err)
		return
	}
	w.st.RemindersSent = append(w.st.RemindersSent, step)
}

// reminderOptions wait out an SMTP outage with backoff; the activity sends
// each step once.
func reminderOptions(ctx workflow.Context, step, steps int) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
		Summary:             fmt.Sprintf("Email reminder %d of %d", step, steps),
	})
}

// sendReminder sends an owed reminder from the run loop, holding no lock: a
// payment during an SMTP outage goes through while this retries. A payment
// or void that leaves nothing to chase cancels it, so the reminder never
// reaches a client who has paid and the receipt behind it is not held up.
func (w *invoiceWF) sendReminder(ctx workflow.Context, n Notice) {
	if !w.remindable() {
		return
	}
	rctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	f := workflow.ExecuteActivity(reminderOptions(rctx, n.Step, n.Steps), acts.SendReminder,
		&activities.ReminderInput{InvoiceID: w.in.InvoiceID, Step: n.Step, Steps: n.Steps, Today: n.Today})
	if err := workflow.Await(ctx, func() bool { return f.IsReady() || !w.remindable() }); err != nil {
		return
	}
	if !f.IsReady() {
		workflow.GetLogger(ctx).Info("reminder dropped: nothing left to chase", "step", n.Step, "status", w.st.Status)
		return
	}
	if err := f.Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("reminder failed", "step", n.Step, "error", err)
		return
	}
	if !w.reminderSent(n.Step) {
		w.st.RemindersSent = append(w.st.RemindersSent, n.Step)
	}
}

// ReminderRunID is the workflow ID the daily `reminder-run` Schedule starts
// (the Schedule appends the fire time).
const ReminderRunID = "reminder-run"

// ReminderRunInput is the daily run's argument; a zero Today means the
// workflow's own date.
type ReminderRunInput struct {
	Today   time.Time
	AfterID string // resume cursor when continuing as new
	Pages   int
	// TimeZone is the practice's (its namespace's Schedule passes it):
	// "today" is the practice's calendar date, not UTC's. "" = UTC.
	TimeZone string `json:",omitempty"`
}

// ReminderRunResult counts what the run did.
type ReminderRunResult struct {
	Signalled int
}

// reminderPageSize is how many invoices one activity signals.
const reminderPageSize = 500

// ReminderRunWorkflow is the daily `reminder-run` Schedule's action: it pages
// through open invoices with a balance in Postgres and signals each invoice
// workflow; the workflow decides whether a step is due and sends it once.
func ReminderRunWorkflow(ctx workflow.Context, in *ReminderRunInput) (*ReminderRunResult, error) {
	if in == nil {
		in = &ReminderRunInput{}
	}
	today := in.Today
	if today.IsZero() {
		today = dateOnly(localNow(ctx, in.TimeZone))
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	res := &ReminderRunResult{}
	cursor := in.AfterID
	for page := 0; ; page++ {
		if page >= 40 {
			// Keep the history small on very large runs.
			return nil, workflow.NewContinueAsNewError(ctx, ReminderRunWorkflow, &ReminderRunInput{Today: today, AfterID: cursor, Pages: in.Pages + page,
				TimeZone: in.TimeZone})
		}
		var out activities.SignalRemindersResult
		pctx := workflow.WithActivityOptions(actx, workflow.ActivityOptions{
			StartToCloseTimeout: 5 * time.Minute, HeartbeatTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
			Summary:     fmt.Sprintf("Signal reminders, page %d", in.Pages+page+1),
		})
		if err := workflow.ExecuteActivity(pctx, acts.SignalReminders, &activities.SignalRemindersInput{Today: today,
			AfterID: cursor, Limit: reminderPageSize}).Get(ctx, &out); err != nil {
			return nil, err
		}
		res.Signalled += out.Signalled
		if out.LastID == "" || out.Count < reminderPageSize {
			return res, nil
		}
		cursor = out.LastID
	}
}
