package activities

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/store"
)

// ReminderInput is one reminder step for one invoice.
type ReminderInput struct {
	InvoiceID string
	Step      int // 1-based
	Steps     int
	Today     time.Time
}

// SendReminder emails the remaining balance with a fresh pay link, once per
// step (the Message-ID names the step), and records it.
func (a *Activities) SendReminder(ctx context.Context, in *ReminderInput) (*NotifyResult, error) {
	b, err := a.loadBundle(ctx, in.InvoiceID)
	if err != nil {
		return nil, err
	}
	if b.inv.AmountDue == 0 || b.inv.Status == store.StatusVoid || b.inv.Status == store.StatusPaid {
		return &NotifyResult{}, nil
	}
	payURL, err := a.newPayLink(ctx, b)
	if err != nil {
		return nil, err
	}
	days := int(in.Today.Sub(b.inv.DueDate).Hours() / 24)
	sent, err := a.sendOnce(ctx, b, mail.KindReminder, []string{"reminder", itoa(in.Step)}, mail.Reminder{
		PracticeName: b.practice.Name, PracticeEmail: b.practice.Email, PracticePhone: b.practice.Phone, ClientName: b.client.Name,
		InvoiceNumber: b.inv.Number, Step: in.Step, Steps: in.Steps, AmountDue: b.inv.AmountDue, Currency: b.inv.Currency,
		DueDate: b.inv.DueDate, DaysOverdue: days, PayURL: payURL}, nil)
	if err != nil {
		return nil, err
	}
	if err := a.Store.RecordReminder(ctx, in.InvoiceID, in.Step); err != nil {
		return nil, err
	}
	return &NotifyResult{Emailed: sent}, nil
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// SignalRemindersInput is one page of the daily reminder run.
type SignalRemindersInput struct {
	Today   time.Time
	AfterID string
	Limit   int
}

// SignalRemindersResult is where the page ended.
type SignalRemindersResult struct {
	Count     int
	Signalled int
	LastID    string
}

// signalConcurrency is how many reminder signals are in flight at once.
const signalConcurrency = 32

// SignalReminders finds a page of invoices that may owe a reminder and
// signals their workflows, which decide and record. Signals go out
// signalConcurrency at a time in chunks; after each chunk the last ID is
// heartbeated, so a retry resumes after it (a re-sent signal is harmless:
// each workflow sends a step at most once). Closed workflows are skipped.
func (a *Activities) SignalReminders(ctx context.Context, in *SignalRemindersInput) (*SignalRemindersResult, error) {
	after := in.AfterID
	if activity.HasHeartbeatDetails(ctx) {
		var done string
		if err := activity.GetHeartbeatDetails(ctx, &done); err == nil && done > after {
			after = done
		}
	}
	tc, err := a.temporal(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := a.Store.ListRemindable(ctx, a.scope(ctx), in.Today, after, in.Limit)
	if err != nil {
		return nil, err
	}
	res := &SignalRemindersResult{Count: len(ids)}
	var signalled atomic.Int64
	for start := 0; start < len(ids); start += signalConcurrency * 4 {
		chunk := ids[start:min(start+signalConcurrency*4, len(ids))]
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(signalConcurrency)
		for _, id := range chunk {
			g.Go(func() error {
				err := tc.SignalWorkflow(gctx, contract.InvoiceWorkflowID(id), "", contract.ReminderSignal, &contract.ReminderDue{Today: in.Today})
				var nf *serviceerror.NotFound
				switch {
				case err == nil:
					signalled.Add(1)
				case errors.As(err, &nf):
				default:
					return err
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		res.LastID = chunk[len(chunk)-1]
		activity.RecordHeartbeat(ctx, res.LastID)
	}
	res.Signalled = int(signalled.Load())
	return res, nil
}
