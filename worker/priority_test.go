package worker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/internal/testclock"
)

func testPayments() (*payments, *testclock.Clock) {
	clk := testclock.New(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	p := newPayments()
	p.now = clk.Now
	return p, clk
}

func TestPaymentsBusyDuringAndJustAfterACharge(t *testing.T) {
	p, clk := testPayments()
	require.False(t, p.busy(), "no charge yet")

	var during bool
	_, err := p.track("IssueInvoice", func() (any, error) { during = p.busy(); return nil, nil })
	require.NoError(t, err)
	require.False(t, during, "document work is not a payment")
	require.False(t, p.busy())

	_, err = p.track("Charge", func() (any, error) { during = p.busy(); clk.Add(time.Second); return nil, nil })
	require.NoError(t, err)
	require.True(t, during, "busy while a charge runs, however long it takes")
	require.True(t, p.busy(), "busy right after a charge")
	clk.Add(paymentQuiet - time.Millisecond)
	require.True(t, p.busy())
	clk.Add(2 * time.Millisecond)
	require.False(t, p.busy(), "idle once the quiet period has passed")
}

func TestDocumentSlotsAllWhenIdleOneWhilePaying(t *testing.T) {
	p, clk := testPayments()
	s := newDocumentSlots(3, p)
	require.Equal(t, 3, s.MaxSlots())

	for range 3 {
		require.NotNil(t, s.TryReserveSlot(nil))
	}
	require.Nil(t, s.TryReserveSlot(nil), "never more than max")

	// A charge starts: slots already out stay out, no new one until
	// fewer than one is in use.
	p.inFlight.Add(1)
	s.ReleaseSlot(nil)
	s.ReleaseSlot(nil)
	require.Nil(t, s.TryReserveSlot(nil), "one slot is still in use")
	s.ReleaseSlot(nil)
	require.NotNil(t, s.TryReserveSlot(nil), "one slot while paying")
	require.Nil(t, s.TryReserveSlot(nil))

	// A waiting reservation gets the slot that is released.
	got := reserveAsync(context.Background(), s)
	requireWaiting(t, s, got, "reserved a second slot while paying")
	s.ReleaseSlot(nil)
	require.NoError(t, reservation(t, got, "the released slot was not handed to the waiting reservation"))

	// Payments end: after the quiet period a waiting reservation gets
	// the other slots without any release.
	p.inFlight.Add(-1)
	p.lastEnd.Store(clk.Now().UnixNano())
	got = reserveAsync(context.Background(), s)
	requireWaiting(t, s, got, "reserved a second slot within the quiet period")
	clk.Add(paymentQuiet)
	require.NoError(t, reservation(t, got, "the waiting reservation did not notice the payments ended"))
	require.NotNil(t, s.TryReserveSlot(nil), "all three slots when idle")
	require.Nil(t, s.TryReserveSlot(nil))

	// A cancelled reservation gives up with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	got = reserveAsync(ctx, s)
	cancel()
	require.ErrorIs(t, reservation(t, got, "a cancelled reservation kept waiting"), context.Canceled)
}

// reserveAsync starts a ReserveSlot; its error arrives on the channel.
func reserveAsync(ctx context.Context, s *documentSlots) <-chan error {
	got := make(chan error, 1)
	go func() {
		_, err := s.ReserveSlot(ctx, nil)
		got <- err
	}()
	return got
}

// requireWaiting fails with msg if the reservation ends within three polls.
func requireWaiting(t *testing.T, s *documentSlots, got <-chan error, msg string) {
	t.Helper()
	select {
	case <-got:
		t.Fatal(msg)
	case <-time.After(3 * s.poll):
	}
}

// reservation waits for the reservation's result, failing with msg after 5 s.
func reservation(t *testing.T, got <-chan error, msg string) error {
	t.Helper()
	select {
	case err := <-got:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal(msg)
		return nil
	}
}

// The interceptor sees the charge as the worker runs it: as a local
// activity, the way the invoice workflow charges.
func TestPaymentsInterceptorCountsLocalCharges(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	p := newPayments()
	env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{&paymentsInterceptor{p: p}}})

	seen := map[string]bool{}
	record := func(ctx context.Context) error {
		seen[activity.GetInfo(ctx).ActivityType.Name] = p.inFlight.Load() > 0
		return nil
	}
	env.RegisterActivityWithOptions(record, activity.RegisterOptions{Name: "Charge"})
	env.RegisterActivityWithOptions(record, activity.RegisterOptions{Name: "NotifyPayment"})
	wf := func(ctx workflow.Context) error {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: time.Minute})
		if err := workflow.ExecuteLocalActivity(lctx, "Charge").Get(ctx, nil); err != nil {
			return err
		}
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		return workflow.ExecuteActivity(actx, "NotifyPayment").Get(ctx, nil)
	}
	env.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: "pay"})
	env.ExecuteWorkflow("pay")
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, map[string]bool{"Charge": true, "NotifyPayment": false}, seen)
	require.True(t, p.busy(), "a charge just ended")
}
