package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
)

// acts is the typed nil pointer through which workflows name activities, so
// the compiler checks every call.
var acts *activities.Activities

// DefaultRefundWindow keeps a paid invoice's workflow open for refunds.
const DefaultRefundWindow = 180 * 24 * time.Hour

// maxHistoryEvents bounds one run's history; past it the workflow continues as new.
const maxHistoryEvents = 2000

type invoiceWF struct {
	in    *InvoiceInput
	st    *InvoiceState
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
}

// InvoiceWorkflow is one invoice's whole life: issue, payments, reminders,
// receipt, refunds, void. Read run() top to bottom; it follows DESIGN.md.
func InvoiceWorkflow(ctx workflow.Context, in *InvoiceInput) error {
	w := &invoiceWF{in: in, st: in.State}
	if w.st == nil {
		w.st = &InvoiceState{
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
	// Version 2 adds draining signals before continue-as-new; one marker
	// serves both changes, so a new run records no second one.
	v := workflow.GetVersion(ctx, chargeLocalChange, workflow.DefaultVersion, 2)
	w.chargeLocal, w.drainSignals = v >= 1, v >= 2
	w.lock = workflow.NewMutex(ctx)
	for _, name := range []string{PaymentEventSignal, PaymentAppliedSignal, ReminderSignal} {
		w.signals = append(w.signals, workflow.GetSignalChannel(ctx, name))
	}
	if err := workflow.SetQueryHandler(ctx, StateQuery, func() (*InvoiceState, error) { return w.st, nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, PayUpdate, w.pay, workflow.UpdateHandlerOptions{Validator: w.validatePay}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, RefundUpdate, w.refund, workflow.UpdateHandlerOptions{Validator: w.validateRefund}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, VoidUpdate, w.void, workflow.UpdateHandlerOptions{Validator: w.validateVoid}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ResendUpdate, w.resend, workflow.UpdateHandlerOptions{Validator: w.validateResend}); err != nil {
		return err
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, PaymentEventSignal)
		for {
			var ev PaymentEvent
			ch.Receive(ctx, &ev)
			w.signalsBusy++
			w.onPaymentEvent(ctx, &ev)
			w.signalsBusy--
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, PaymentAppliedSignal)
		for {
			var pa PaymentApplied
			ch.Receive(ctx, &pa)
			w.signalsBusy++
			w.onPaymentApplied(ctx, &pa)
			w.signalsBusy--
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, ReminderSignal)
		for {
			var r ReminderDue
			ch.Receive(ctx, &r)
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

// issue renders the invoice and emails the client the Pay Invoice link.
func (w *invoiceWF) issue(ctx workflow.Context) {
	actx := notifyOptions(ctx, "Render invoice and email pay link")
	var res activities.NotifyResult
	if err := workflow.ExecuteActivity(actx, acts.IssueInvoice, &activities.InvoiceRef{InvoiceID: w.in.InvoiceID}).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Error("issue invoice failed", "error", err)
	}
	w.st.Issued = true
}

// notify sends one owed notification.
func (w *invoiceWF) notify(ctx workflow.Context, n Notice) {
	var err error
	var res activities.NotifyResult
	switch n.Kind {
	case contract.NoticePayment:
		summary := "Email payment confirmation " + money.Format(n.Amount, w.st.Currency)
		if n.Final {
			summary = "Render receipt and email it: " + money.Format(n.Amount, w.st.Currency) + " paid"
		}
		if n.Silent {
			summary = "Render receipt"
		}
		err = workflow.ExecuteActivity(notifyOptions(ctx, summary), acts.NotifyPayment,
			&activities.NotifyInput{InvoiceID: w.in.InvoiceID, PaymentID: n.PaymentID, ReceiptOnly: n.Silent}).Get(ctx, &res)
	case contract.NoticePaymentFailed:
		err = workflow.ExecuteActivity(notifyOptions(ctx, "Email payment failed "+money.Format(n.Amount, w.st.Currency)), acts.NotifyPayment,
			&activities.NotifyInput{InvoiceID: w.in.InvoiceID, PaymentID: n.PaymentID}).Get(ctx, &res)
	case contract.NoticeRefund:
		err = workflow.ExecuteActivity(notifyOptions(ctx, "Email refund notice "+money.Format(n.Amount, w.st.Currency)), acts.NotifyRefund,
			&activities.NotifyInput{InvoiceID: w.in.InvoiceID, RefundID: n.RefundID}).Get(ctx, &res)
	case contract.NoticeReminder:
		w.sendReminder(ctx, n)
	}
	if err != nil {
		workflow.GetLogger(ctx).Error("notification failed", "kind", n.Kind, "error", err)
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

// ---- pay ----

// validatePay rejects bad payments before they reach history.
func (w *invoiceWF) validatePay(ctx workflow.Context, in *PayInput) error {
	return w.checkPay(in)
}

func (w *invoiceWF) checkPay(in *PayInput) error {
	st := w.st
	cur := st.Currency
	switch {
	case in == nil:
		return payErr("a payment needs an amount and a payment method")
	case st.Status == contract.InvoiceVoid:
		return stateErr("this invoice is void and cannot be paid")
	case st.AmountDue == 0 && st.AmountProcessing == 0 && (st.Total > 0 || st.Status == contract.InvoicePaid || st.Status == contract.InvoiceRefunded || st.Status == contract.InvoicePartiallyRefunded):
		return stateErr("this invoice is already paid")
	case st.AmountDue == 0 && st.AmountProcessing > 0:
		return stateErr("a payment for the rest of this invoice is still processing")
	case in.Amount <= 0:
		return payErr("amount must be greater than zero")
	case in.Amount > st.AmountDue:
		return payErr(fmt.Sprintf("amount %s is more than the %s due", money.Format(in.Amount, cur), money.Format(st.AmountDue, cur)))
	case in.PaymentMethodID == "":
		return payErr("a payment method is required")
	}
	if in.Amount < st.AmountDue {
		p := w.in.Partial
		if !p.Enabled {
			return payErr(fmt.Sprintf("partial payments are not enabled for this invoice: pay the full %s", money.Format(st.AmountDue, cur)))
		}
		if minimum := w.minimum(); in.Amount < minimum {
			return payErr(fmt.Sprintf("the minimum payment for this invoice is %s (or the full %s)", money.Format(minimum, cur), money.Format(st.AmountDue, cur)))
		}
		maxInst := p.MaxInstallments
		if maxInst <= 0 {
			maxInst = 2
		}
		if st.Installments()+1 >= maxInst {
			return payErr(fmt.Sprintf("this invoice allows at most %d payments: this one must pay the remaining %s", maxInst, money.Format(st.AmountDue, cur)))
		}
	}
	if in.Amount < money.MinimumCharge(cur) {
		return payErr(fmt.Sprintf("the smallest charge in %s is %s", cur, money.Format(money.MinimumCharge(cur), cur)))
	}
	return nil
}

func (w *invoiceWF) minimum() int64 {
	p := w.in.Partial
	switch {
	case p.MinimumAmount > 0:
		return p.MinimumAmount
	case p.MinimumPercent > 0:
		return money.Percent(w.st.Total, p.MinimumPercent)
	}
	return 1
}

func payErr(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeInvalidPayment, nil)
}

func stateErr(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeInvalidState, nil)
}

// pay charges once and records it. Payments on one invoice run one at a time
// and are re-validated under the lock, so two concurrent payers can never
// together pay more than is due.
func (w *invoiceWF) pay(ctx workflow.Context, in *PayInput) (*PayResult, error) {
	if err := w.lock.Lock(ctx); err != nil {
		return nil, err
	}
	defer w.lock.Unlock()
	if err := w.checkPay(in); err != nil {
		return nil, err
	}
	w.st.PaymentSeq++
	paymentID := fmt.Sprintf("pay_%s_%d", trimPrefix(w.in.InvoiceID), w.st.PaymentSeq)
	label := in.MethodLabel
	if label == "" {
		label = "card"
	}
	summary := fmt.Sprintf("Charge %s to %s", money.Format(in.Amount, w.st.Currency), label)
	charge := &activities.ChargeInput{
		InvoiceID: w.in.InvoiceID, PracticeID: w.in.PracticeID, ClientID: w.in.ClientID, Number: w.in.Number,
		PaymentID: paymentID, Amount: in.Amount, Currency: w.st.Currency,
		PaymentMethodID: in.PaymentMethodID, SavedPaymentMethodID: in.SavedPaymentMethodID, SaveCard: in.SaveCard,
		OffSession: in.OffSession, PayerName: in.PayerName, BillingZIP: in.BillingZIP, ReturnURL: in.ReturnURL,
		IdempotencyKey: in.IdempotencyKey, Scope: in.Scope, RequestHash: in.RequestHash, PayLinkID: in.PayLinkID,
	}
	var res activities.ChargeResult
	var err error
	// The charge runs as a local activity in the workflow task that accepted
	// the pay Update: one workflow task and no activity dispatch per payment
	// instead of two and one. A charge re-run after a worker crash finds its
	// payment attempt in Postgres and asks the processor before charging.
	if w.chargeLocal {
		lctx := chargeLocalOptions(ctx, summary, ErrTypeCardDeclined, ErrTypeGateway)
		err = workflow.ExecuteLocalActivity(lctx, acts.Charge, charge).Get(ctx, &res)
	} else {
		actx := chargeOptions(ctx, summary, ErrTypeCardDeclined, ErrTypeGateway)
		err = workflow.ExecuteActivity(actx, acts.Charge, charge).Get(ctx, &res)
	}
	if err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == ErrTypeGateway {
			return nil, temporal.NewNonRetryableApplicationError(appErr.Message(), ErrTypeInvalidPayment, nil)
		}
		return nil, err
	}
	// The request may have been paid before, in an earlier run: its
	// payment keeps its first ID and is taken in once.
	if res.PaymentID != "" {
		paymentID = res.PaymentID
	}
	if res.MethodLabel != "" {
		label = res.MethodLabel
	}
	known := w.hasPayment(paymentID)
	if res.Status != contract.PaymentFailed && !known {
		w.st.Payments = append(w.st.Payments, PaymentState{ID: paymentID, Amount: in.Amount, Status: res.Status,
			IntentID: res.IntentID, MethodLabel: label, CreatedAt: workflow.Now(ctx)})
	}
	w.apply(ctx, &res.Invoice)
	if res.Status == contract.PaymentSucceeded && !known {
		w.st.Pending = append(w.st.Pending, Notice{Kind: contract.NoticePayment, PaymentID: paymentID, Amount: in.Amount, Final: res.Invoice.AmountDue == 0})
	}
	return &PayResult{PaymentID: paymentID, Amount: in.Amount, Status: res.Status, FailureCode: res.FailureCode,
		DeclineCode: res.DeclineCode, FailureMessage: res.FailureMessage, NextActionURL: res.NextActionURL, Invoice: res.Invoice}, nil
}

func (w *invoiceWF) hasPayment(id string) bool {
	return slices.ContainsFunc(w.st.Payments, func(p PaymentState) bool { return p.ID == id })
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

// onPaymentEvent settles a processing or requires_action payment from a webhook.
func (w *invoiceWF) onPaymentEvent(ctx workflow.Context, ev *PaymentEvent) {
	idx := slices.IndexFunc(w.st.Payments, func(p PaymentState) bool {
		return (ev.PaymentID != "" && p.ID == ev.PaymentID) || (ev.IntentID != "" && p.IntentID == ev.IntentID)
	})
	if idx < 0 {
		return
	}
	if ev.Type == "charge.dispute.created" {
		w.st.Disputed = true
		workflow.GetLogger(ctx).Warn("payment disputed", "payment", w.st.Payments[idx].ID)
		return
	}
	p := &w.st.Payments[idx]
	if p.Status == contract.PaymentSucceeded || p.Status == contract.PaymentFailed {
		return
	}
	if err := w.lock.Lock(ctx); err != nil {
		return
	}
	defer w.lock.Unlock()
	actx := ledgerOptions(ctx, fmt.Sprintf("Confirm payment %s", money.Format(p.Amount, w.st.Currency)))
	var res activities.ChargeResult
	if err := workflow.ExecuteActivity(actx, acts.SyncPayment, &activities.SyncPaymentInput{
		InvoiceID: w.in.InvoiceID, PaymentID: p.ID, IntentID: p.IntentID}).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Error("sync payment failed", "payment", p.ID, "error", err)
		return
	}
	p = &w.st.Payments[idx]
	p.Status = res.Status
	w.apply(ctx, &res.Invoice)
	switch res.Status {
	case contract.PaymentSucceeded:
		w.st.Pending = append(w.st.Pending, Notice{Kind: contract.NoticePayment, PaymentID: p.ID, Amount: p.Amount, Final: res.Invoice.AmountDue == 0})
	case contract.PaymentFailed:
		// A canceled intent was replaced by a later payment before its 3-D
		// Secure was finished (billflow cancels no other): nothing to tell.
		if res.FailureCode != canceledIntent {
			w.st.Pending = append(w.st.Pending, Notice{Kind: contract.NoticePaymentFailed, PaymentID: p.ID, Amount: p.Amount})
		}
	}
}

// canceledIntent is the failure code of a payment whose PaymentIntent was
// canceled.
const canceledIntent = "payment_intent_canceled"

// onPaymentApplied takes in a payment a balance payment recorded on this invoice.
func (w *invoiceWF) onPaymentApplied(ctx workflow.Context, pa *PaymentApplied) {
	if w.hasPayment(pa.PaymentID) {
		return
	}
	if err := w.lock.Lock(ctx); err != nil {
		return
	}
	defer w.lock.Unlock()
	if w.hasPayment(pa.PaymentID) {
		return // the payment's own charge took it in while this waited
	}
	w.st.Payments = append(w.st.Payments, PaymentState{ID: pa.PaymentID, Amount: pa.Amount, Status: pa.Status,
		IntentID: pa.IntentID, MethodLabel: pa.MethodLabel, CreatedAt: workflow.Now(ctx)})
	actx := ledgerOptions(ctx, "Apply balance payment "+money.Format(pa.Amount, w.st.Currency))
	var snap InvoiceSnapshot
	if err := workflow.ExecuteActivity(actx, acts.RefreshInvoice, &activities.InvoiceRef{InvoiceID: w.in.InvoiceID}).Get(ctx, &snap); err != nil {
		workflow.GetLogger(ctx).Error("refresh after balance payment", "error", err)
		return
	}
	w.apply(ctx, &snap)
	switch {
	case pa.Status == contract.PaymentSucceeded && pa.Notify:
		w.st.Pending = append(w.st.Pending, Notice{Kind: contract.NoticePayment, PaymentID: pa.PaymentID, Amount: pa.Amount, Final: snap.AmountDue == 0})
	case pa.Status == contract.PaymentSucceeded && snap.AmountDue == 0:
		w.st.Pending = append(w.st.Pending, Notice{Kind: contract.NoticePayment, PaymentID: pa.PaymentID, Amount: pa.Amount, Final: true, Silent: true})
	}
}

// ---- refund ----

func (w *invoiceWF) validateRefund(ctx workflow.Context, in *RefundInput) error {
	_, err := w.refundTarget(in)
	if err != nil && in != nil && in.Amount > 0 && in.PaymentID != "" && !w.signalsIdle() {
		// The payment may be in a signal in hand: a balance payment's
		// payment-applied waiting for the lock, or delivered in this same
		// workflow task (Updates are handled before signals are taken in).
		// The handler decides once they are.
		return nil
	}
	return err
}

func (w *invoiceWF) refundTarget(in *RefundInput) (*PaymentState, error) {
	bad := func(msg string) error {
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeInvalidRefund, nil)
	}
	if in == nil || in.Amount <= 0 {
		return nil, bad("refund amount must be greater than zero")
	}
	cur := w.st.Currency
	var target *PaymentState
	for i := len(w.st.Payments) - 1; i >= 0; i-- {
		p := &w.st.Payments[i]
		if p.Status != contract.PaymentSucceeded {
			continue
		}
		if in.PaymentID == "" && p.Amount-p.Refunded >= in.Amount || p.ID == in.PaymentID {
			target = p
			break
		}
	}
	if target == nil {
		if in.PaymentID != "" {
			return nil, bad(fmt.Sprintf("payment %s is not a succeeded payment of this invoice", in.PaymentID))
		}
		return nil, bad(fmt.Sprintf("no payment on this invoice has %s left to refund", money.Format(in.Amount, cur)))
	}
	if left := target.Amount - target.Refunded; in.Amount > left {
		return nil, bad(fmt.Sprintf("refund of %s is more than the %s left on payment %s", money.Format(in.Amount, cur), money.Format(left, cur), target.ID))
	}
	return target, nil
}

func (w *invoiceWF) refund(ctx workflow.Context, in *RefundInput) (*RefundResult, error) {
	if _, err := w.refundTarget(in); err != nil {
		// Accepted only with signals in hand (see validateRefund); histories
		// from before never reach here, so nothing they replay changes.
		if err := workflow.Await(ctx, func() bool { return w.signalsIdle() }); err != nil {
			return nil, err
		}
	}
	if err := w.lock.Lock(ctx); err != nil {
		return nil, err
	}
	defer w.lock.Unlock()
	target, err := w.refundTarget(in)
	if err != nil {
		return nil, err
	}
	w.st.RefundSeq++
	refundID := fmt.Sprintf("ref_%s_%d", trimPrefix(w.in.InvoiceID), w.st.RefundSeq)
	actx := refundOptions(ctx, fmt.Sprintf("Refund %s to %s", money.Format(in.Amount, w.st.Currency), target.MethodLabel))
	var res activities.RefundResult
	if err := workflow.ExecuteActivity(actx, acts.Refund, &activities.RefundInput{InvoiceID: w.in.InvoiceID,
		PaymentID: target.ID, RefundID: refundID, Amount: in.Amount, Reason: in.Reason}).Get(ctx, &res); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return nil, temporal.NewNonRetryableApplicationError(appErr.Message(), ErrTypeInvalidRefund, nil)
		}
		return nil, err
	}
	target.Refunded += in.Amount
	w.apply(ctx, &res.Invoice)
	w.st.Pending = append(w.st.Pending, Notice{Kind: contract.NoticeRefund, RefundID: refundID, Amount: in.Amount})
	return &RefundResult{RefundID: refundID, PaymentID: target.ID, Amount: in.Amount, Status: res.Status, Invoice: res.Invoice}, nil
}

// ---- void ----

func (w *invoiceWF) validateVoid(ctx workflow.Context) error {
	if w.st.Status == contract.InvoiceVoid {
		return nil
	}
	if w.st.AmountPaid > 0 || w.st.AmountProcessing > 0 {
		return stateErr("only an unpaid invoice can be voided; refund its payments instead")
	}
	return nil
}

func (w *invoiceWF) void(ctx workflow.Context) (*InvoiceSnapshot, error) {
	if err := w.lock.Lock(ctx); err != nil {
		return nil, err
	}
	defer w.lock.Unlock()
	if err := w.validateVoid(ctx); err != nil {
		return nil, err
	}
	actx := voidOptions(ctx, "Void invoice "+w.st.Number)
	var snap InvoiceSnapshot
	if err := workflow.ExecuteActivity(actx, acts.VoidInvoice, &activities.InvoiceRef{InvoiceID: w.in.InvoiceID}).Get(ctx, &snap); err != nil {
		return nil, err
	}
	w.apply(ctx, &snap)
	return &snap, nil
}

// ---- resend ----

func (w *invoiceWF) validateResend(ctx workflow.Context) error {
	switch {
	case w.st.Status == contract.InvoiceVoid:
		return stateErr("a void invoice cannot be sent")
	case w.st.AmountDue == 0:
		return stateErr("the invoice has nothing left to pay; its receipt is at GET /v1/invoices/{id}/pdf")
	}
	return nil
}

// resendOutsideLockChange marks the move of the resend email out of the
// payment lock; histories recorded before it email while holding the lock.
const resendOutsideLockChange = "resend-outside-lock"

// resend emails the invoice again with a fresh pay link, once per request.
// The sequence is taken under the payment lock; the email, which waits out
// an SMTP outage, goes out holding none, so payments never wait for it.
func (w *invoiceWF) resend(ctx workflow.Context) (*ResendResult, error) {
	if err := w.lock.Lock(ctx); err != nil {
		return nil, err
	}
	locked := true
	defer func() {
		if locked {
			w.lock.Unlock()
		}
	}()
	if err := w.validateResend(ctx); err != nil {
		return nil, err
	}
	w.st.ResendSeq++
	seq := w.st.ResendSeq
	if workflow.GetVersion(ctx, resendOutsideLockChange, workflow.DefaultVersion, 1) == 1 {
		w.lock.Unlock()
		locked = false
	}
	var res activities.NotifyResult
	if err := workflow.ExecuteActivity(notifyOptions(ctx, fmt.Sprintf("Resend invoice email (%d)", seq)), acts.IssueInvoice,
		&activities.InvoiceRef{InvoiceID: w.in.InvoiceID, Resend: seq}).Get(ctx, &res); err != nil {
		return nil, err
	}
	w.st.Issued = true
	return &ResendResult{Sequence: seq, Emailed: res.Emailed}, nil
}

// apply mirrors the recorded invoice into state and the search attributes.
func (w *invoiceWF) apply(ctx workflow.Context, snap *InvoiceSnapshot) {
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
		if err := workflow.UpsertTypedSearchAttributes(ctx, InvoiceStatusKey.ValueSet(string(st.Status)), AmountDueKey.ValueSet(st.AmountDue)); err != nil {
			workflow.GetLogger(ctx).Error("upsert search attributes", "error", err)
		}
	}
}
