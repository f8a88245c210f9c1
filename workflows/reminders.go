package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
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
	return (w.st.Status == contract.InvoiceOpen || w.st.Status == contract.InvoicePartiallyPaid) && w.st.AmountDue > 0
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
		if first := w.firstReminderDay(); at.Before(first) {
			at = first // a step that fell due by the issue day goes out the day after
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
		if n.Kind == contract.NoticeReminder {
			last = max(last, n.Step)
		}
	}
	return last
}

// noReminderOnIssueDayChange marks the rule that no reminder goes out on or
// before the invoice's issue day; histories recorded before it could send
// one the day the invoice was issued (a due date within the first step).
const noReminderOnIssueDayChange = "no-reminder-on-issue-day"

// firstReminderDay is the first day a reminder may go out: the day after the
// invoice was issued (zero when the input predates IssueDate).
func (w *invoiceWF) firstReminderDay() time.Time {
	if w.in.IssueDate.IsZero() {
		return time.Time{}
	}
	return dateOnly(w.in.IssueDate).AddDate(0, 0, 1)
}

// reminderOutsideLockChange marks the move of the reminder email out of the
// payment lock: the signal handler only records the step as owed and the run
// loop sends it, so SMTP being down never holds up a payment. Histories
// recorded before it sent the email while holding the lock.
const reminderOutsideLockChange = "reminder-outside-lock"

// onReminderDue decides, under the payment lock, whether a reminder is due
// today and records it as owed, once per step.
func (w *invoiceWF) onReminderDue(ctx workflow.Context, r *contract.ReminderDue) {
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
	// The invoice email just went out: no reminder on (or before) the issue
	// day. Asked only then, so histories that never met it replay as before.
	if dateOnly(today).Before(w.firstReminderDay()) &&
		workflow.GetVersion(ctx, noReminderOnIssueDayChange, workflow.DefaultVersion, 1) == 1 {
		return
	}
	steps := len(w.offsets())
	// Asked only when a step is due, so a run that had never sent a
	// reminder before this code takes the new path.
	if workflow.GetVersion(ctx, reminderOutsideLockChange, workflow.DefaultVersion, 1) == 1 {
		w.st.Pending = append(w.st.Pending, contract.Notice{Kind: contract.NoticeReminder, Step: step, Steps: steps, Today: dateOnly(today)})
		return
	}
	err := workflow.ExecuteActivity(reminderOptions(ctx, w.reminderSummary(step, steps)), acts.SendReminder, &activities.ReminderInput{InvoiceID: w.in.InvoiceID, Step: step,
		Steps: steps, Today: dateOnly(today)}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("reminder failed", "step", step, "error", err)
		return
	}
	w.st.RemindersSent = append(w.st.RemindersSent, step)
}

// reminderSummary names a reminder step in the Temporal UI, with the
// balance it chases.
func (w *invoiceWF) reminderSummary(step, steps int) string {
	return fmt.Sprintf("Email reminder %d of %d: %s due", step, steps, money.Format(w.st.AmountDue, w.st.Currency))
}

// sendReminder sends an owed reminder from the run loop, holding no lock: a
// payment during an SMTP outage goes through while this retries. A payment
// or void that leaves nothing to chase cancels it, so the reminder never
// reaches a client who has paid and the receipt behind it is not held up.
func (w *invoiceWF) sendReminder(ctx workflow.Context, n contract.Notice) {
	if !w.remindable() {
		return
	}
	rctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	f := workflow.ExecuteActivity(reminderOptions(rctx, w.reminderSummary(n.Step, n.Steps)), acts.SendReminder,
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

// reminderPageSize is how many invoices one activity signals.
const reminderPageSize = 500

// ReminderRunWorkflow is the daily `reminder-run` Schedule's action: it pages
// through open invoices with a balance in Postgres and signals each invoice
// workflow; the workflow decides whether a step is due and sends it once.
func ReminderRunWorkflow(ctx workflow.Context, in *contract.ReminderRunInput) (*contract.ReminderRunResult, error) {
	if in == nil {
		in = &contract.ReminderRunInput{}
	}
	today := in.Today
	if today.IsZero() {
		today = dateOnly(localNow(ctx, in.TimeZone))
	}
	res := &contract.ReminderRunResult{}
	cursor := in.AfterID
	for page := 0; ; page++ {
		if page >= 40 {
			// Keep the history small on very large runs.
			return nil, workflow.NewContinueAsNewError(ctx, ReminderRunWorkflow, &contract.ReminderRunInput{Today: today, AfterID: cursor, Pages: in.Pages + page,
				TimeZone: in.TimeZone})
		}
		var out activities.SignalRemindersResult
		pctx := pageOptions(ctx, 5*time.Minute, time.Minute, fmt.Sprintf("Signal reminders, page %d", in.Pages+page+1))
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
