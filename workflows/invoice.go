package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
)

// acts is the typed nil pointer through which workflows name activities, so
// the compiler checks every call.
var acts *activities.Activities

// DefaultRefundWindow keeps a paid invoice's workflow open for refunds.
const DefaultRefundWindow = 180 * 24 * time.Hour

// maxHistoryEvents bounds one run's history; past it the workflow continues as new.
const maxHistoryEvents = 2000

type invoiceWF struct {
	in    *contract.InvoiceInput
	st    *contract.InvoiceState
	lock  workflow.Mutex
	dirty bool // a handler changed the state; run() re-evaluates
	// chargeLocal: charges run as local activities (chargeLocalChange ≥ 1).
	chargeLocal bool
	// drainSignals: continue-as-new waits for signals received or being
	// handled (chargeLocalChange ≥ 2); signalsBusy counts those in hand.
	drainSignals bool
	signalsBusy  int
	// refundedCloses: a fully refunded invoice's workflow completes at once
	// instead of waiting out the refund window (refundedClosesChange ≥ 1);
	// decided the first time this run sees the invoice refunded.
	refundedCloses, refundedAsked bool
	// signals are the channels of the signals counted as in hand, taken
	// once in setup: Update validators may read their Len but not call
	// GetSignalChannel (a read-only context).
	signals []workflow.ReceiveChannel
	// bufferSignals: a signal stays in its channel until its handler takes
	// it (chargeLocalChange ≥ 3; see receive).
	bufferSignals bool
}

// InvoiceWorkflow is one invoice's whole life: issue, payments, reminders,
// receipt, refunds, void. Read run() top to bottom; it follows DESIGN.md.
func InvoiceWorkflow(ctx workflow.Context, in *contract.InvoiceInput) error {
	w := &invoiceWF{in: in, st: in.State}
	if w.st == nil {
		w.st = &contract.InvoiceState{
			InvoiceID: in.InvoiceID, Number: in.Number, Status: contract.InvoiceOpen, Currency: in.Currency,
			Total: in.Total, AmountDue: in.Total, DueDate: in.DueDate,
		}
	}
	if w.st.NextReminderStep == 0 && len(w.st.RemindersSent) == 0 {
		w.planNextReminder(workflow.Now(ctx))
	}
	if w.in.RefundWindow <= 0 {
		w.in.RefundWindow = DefaultRefundWindow
	}
	w.in.State = nil
	if err := w.setup(ctx); err != nil {
		return err
	}
	return w.run(ctx)
}

func (w *invoiceWF) setup(ctx workflow.Context) error {
	// Decided once, in the run's first workflow task: the version marker's
	// search-attribute upsert then costs nothing on the pay path.
	// Version 2 adds draining signals before continue-as-new, version 3
	// keeps signals in their channels until handled (receive); one marker
	// serves every change, so a new run records no second one.
	v := workflow.GetVersion(ctx, chargeLocalChange, workflow.DefaultVersion, 3)
	w.chargeLocal, w.drainSignals, w.bufferSignals = v >= 1, v >= 2, v >= 3
	w.lock = workflow.NewMutex(ctx)
	for _, name := range []string{contract.PaymentEventSignal, contract.PaymentAppliedSignal, contract.ReminderSignal} {
		w.signals = append(w.signals, workflow.GetSignalChannel(ctx, name))
	}
	if err := workflow.SetQueryHandler(ctx, contract.StateQuery, func() (*contract.InvoiceState, error) { return w.st, nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.PayUpdate, w.pay, workflow.UpdateHandlerOptions{Validator: w.validatePay}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.RefundUpdate, w.refund, workflow.UpdateHandlerOptions{Validator: w.validateRefund}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.VoidUpdate, w.void, workflow.UpdateHandlerOptions{Validator: w.validateVoid}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.ResendUpdate, w.resend, workflow.UpdateHandlerOptions{Validator: w.validateResend}); err != nil {
		return err
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, contract.PaymentEventSignal)
		for {
			var ev contract.PaymentEvent
			if !w.receive(ctx, ch, &ev) {
				return
			}
			w.signalsBusy++
			w.onPaymentEvent(ctx, &ev)
			w.signalsBusy--
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, contract.PaymentAppliedSignal)
		for {
			var pa contract.PaymentApplied
			if !w.receive(ctx, ch, &pa) {
				return
			}
			w.signalsBusy++
			w.onPaymentApplied(ctx, &pa)
			w.signalsBusy--
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, contract.ReminderSignal)
		for {
			var r contract.ReminderDue
			if !w.receive(ctx, ch, &r) {
				return
			}
			w.signalsBusy++
			// Whether a reminder is due is decided under the payment lock
			// (never from a half-done payment); it is sent outside it.
			if err := w.lock.Lock(ctx); err != nil {
				return
			}
			w.onReminderDue(ctx, &r)
			w.lock.Unlock()
			w.signalsBusy--
			w.dirty = true
		}
	})
	return nil
}

// receive takes the next signal from ch. From chargeLocalChange 3 it waits
// for one to be in the channel and then takes it, rather than blocking in
// Receive: a value sent to a coroutine blocked in Receive leaves the channel
// at once, before that coroutine runs, and an Update validator run in
// between (Updates go first in a workflow task) could see neither the value
// nor its handler busy. Buffered, it counts as in hand (signalsIdle).
func (w *invoiceWF) receive(ctx workflow.Context, ch workflow.ReceiveChannel, v any) bool {
	if !w.bufferSignals {
		ch.Receive(ctx, v)
		return true
	}
	if err := workflow.Await(ctx, func() bool { return ch.Len() > 0 }); err != nil {
		return false
	}
	return ch.ReceiveAsync(v)
}

func (w *invoiceWF) run(ctx workflow.Context) error {
	logger := workflow.GetLogger(ctx)
	for {
		if !w.st.Issued && w.st.Status != contract.InvoiceVoid {
			w.issue(ctx)
		}
		for len(w.st.Pending) > 0 {
			w.notify(ctx, w.st.Pending[0])
			w.st.Pending = w.st.Pending[1:]
		}
		if w.st.Status == contract.InvoiceRefunded && !w.refundedAsked {
			w.refundedAsked = true
			w.refundedCloses = workflow.GetVersion(ctx, refundedClosesChange, workflow.DefaultVersion, 1) >= 1
		}
		if w.closed(ctx) && workflow.AllHandlersFinished(ctx) {
			logger.Info("invoice workflow complete", "status", w.st.Status)
			return nil
		}
		limit := w.in.MaxHistoryEvents
		if limit <= 0 {
			limit = maxHistoryEvents
		}
		if workflow.GetInfo(ctx).GetCurrentHistoryLength() > limit || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			// Nothing in hand is dropped: Updates running, and (new runs)
			// signals being handled or not yet taken from their channels.
			if err := workflow.Await(ctx, func() bool {
				return workflow.AllHandlersFinished(ctx) && (!w.drainSignals || w.signalsIdle())
			}); err != nil {
				return err
			}
			next := *w.in
			next.State = w.st
			return workflow.NewContinueAsNewError(ctx, InvoiceWorkflow, &next)
		}
		w.dirty = false
		wake := func() bool {
			return w.dirty || len(w.st.Pending) > 0 || workflow.GetInfo(ctx).GetContinueAsNewSuggested() ||
				workflow.GetInfo(ctx).GetCurrentHistoryLength() > limit
		}
		if deadline := w.closesAt(); deadline != nil {
			wait := deadline.Sub(workflow.Now(ctx))
			if wait > 0 {
				if _, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: wait,
					TimerOptions: workflow.TimerOptions{Summary: "Refund window"}}, wake); err != nil {
					return err
				}
			}
			continue
		}
		if err := workflow.Await(ctx, wake); err != nil {
			return err
		}
	}
}

// closesAt is when the workflow may finish: void invoices at once, settled
// ones at the end of the refund window.
func (w *invoiceWF) closesAt() *time.Time {
	switch w.st.Status {
	case contract.InvoiceVoid:
		t := time.Time{}
		return &t
	case contract.InvoiceRefunded:
		if w.refundedCloses {
			// Nothing is left to refund: the lifecycle is over.
			t := time.Time{}
			return &t
		}
		fallthrough
	case contract.InvoicePaid, contract.InvoicePartiallyRefunded:
		if w.st.PaidAt != nil {
			t := w.st.PaidAt.Add(w.in.RefundWindow)
			w.st.ClosesAt = &t
			return &t
		}
	}
	return nil
}

func (w *invoiceWF) closed(ctx workflow.Context) bool {
	t := w.closesAt()
	if t == nil {
		return false
	}
	return t.IsZero() || !workflow.Now(ctx).Before(*t)
}

// signalsIdle: no signal is being handled and none waits in its channel.
func (w *invoiceWF) signalsIdle() bool {
	if w.signalsBusy > 0 {
		return false
	}
	for _, ch := range w.signals {
		if ch.Len() > 0 {
			return false
		}
	}
	return true
}

// chargeLocalChange marks the move of the charge from an activity to a local
// activity (version 1; histories recorded before it replay the activity),
// and continue-as-new waiting for signals in hand (version 2).
const chargeLocalChange = "charge-local-activity"

// refundedClosesChange marks a fully refunded invoice's workflow completing
// at once; histories recorded before it wait out the refund window.
const refundedClosesChange = "refunded-closes"

func trimPrefix(id string) string {
	for i := 0; i < len(id); i++ {
		if id[i] == '_' {
			return id[i+1:]
		}
	}
	return id
}

// apply mirrors the recorded invoice into state and the search attributes.
func (w *invoiceWF) apply(ctx workflow.Context, snap *contract.InvoiceSnapshot) {
	st := w.st
	changed := st.Status != snap.Status || st.AmountDue != snap.AmountDue
	st.Status, st.AmountPaid, st.AmountRefunded = snap.Status, snap.AmountPaid, snap.AmountRefunded
	st.AmountDue, st.AmountProcessing = snap.AmountDue, snap.AmountProcessing
	if st.PaidAt == nil && (st.Status == contract.InvoicePaid || st.Status == contract.InvoiceRefunded || st.Status == contract.InvoicePartiallyRefunded) {
		now := workflow.Now(ctx)
		st.PaidAt = &now
		closes := now.Add(w.in.RefundWindow)
		st.ClosesAt = &closes
	}
	w.dirty = true
	w.planNextReminder(workflow.Now(ctx))
	if changed {
		if err := workflow.UpsertTypedSearchAttributes(ctx, contract.InvoiceStatusKey.ValueSet(string(st.Status)), contract.AmountDueKey.ValueSet(st.AmountDue)); err != nil {
			workflow.GetLogger(ctx).Error("upsert search attributes", "error", err)
		}
	}
}
