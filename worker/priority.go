package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
)

// paymentQuiet is how long after its last charge a worker still counts as
// taking payments: payers in a burst follow each other closely.
const paymentQuiet = 250 * time.Millisecond

// payerActivities are the activities a client waits on with a spinner.
var payerActivities = map[string]bool{"Charge": true, "ChargeBalance": true}

// payments tells whether this process is charging a client right now.
// Document work (PDFs and emails) yields to it: a receipt a few seconds
// late is fine, a payer waiting behind forty emails is not.
type payments struct {
	inFlight atomic.Int64
	lastEnd  atomic.Int64 // unix nanoseconds
	now      func() time.Time
}

func newPayments() *payments { return &payments{now: time.Now} }

// track runs one activity, counting it if a payer is waiting on it.
func (p *payments) track(name string, run func() (any, error)) (any, error) {
	if !payerActivities[name] {
		return run()
	}
	p.inFlight.Add(1)
	defer func() {
		p.lastEnd.Store(p.now().UnixNano())
		p.inFlight.Add(-1)
	}()
	return run()
}

// busy: a charge is running, or one ended within paymentQuiet.
func (p *payments) busy() bool {
	return p.inFlight.Load() > 0 || p.now().UnixNano()-p.lastEnd.Load() < int64(paymentQuiet)
}

// paymentsInterceptor counts charges; the SDK runs local activities, which
// the charge is, through worker interceptors too.
type paymentsInterceptor struct {
	interceptor.WorkerInterceptorBase
	p *payments
}

func (i *paymentsInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	in := &paymentsInbound{p: i.p}
	in.Next = next
	return in
}

type paymentsInbound struct {
	interceptor.ActivityInboundInterceptorBase
	p *payments
}

func (i *paymentsInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	return i.p.track(activity.GetInfo(ctx).ActivityType.Name, func() (any, error) { return i.Next.ExecuteActivity(ctx, in) })
}

// documentSlots hands out the documents worker's activity slots: all of
// them while no payment is being taken, and one while payments are, so
// documents keep moving but leave the CPU to payers. Slots already handed
// out are never taken back; the limit applies to the next ones.
type documentSlots struct {
	max      int
	payments *payments
	poll     time.Duration // how often a waiting reservation rechecks busy

	mu      sync.Mutex
	issued  int
	release chan struct{} // closed on every release, then replaced
}

var _ sdkworker.SlotSupplier = (*documentSlots)(nil)

func newDocumentSlots(max int, p *payments) *documentSlots {
	return &documentSlots{max: max, payments: p, poll: 50 * time.Millisecond, release: make(chan struct{})}
}

func (s *documentSlots) limit() int {
	if s.payments.busy() {
		return 1
	}
	return s.max
}

func (s *documentSlots) tryReserve() (*sdkworker.SlotPermit, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.issued < s.limit() {
		s.issued++
		return &sdkworker.SlotPermit{}, nil
	}
	return nil, s.release
}

// ReserveSlot blocks until a slot is free under the current limit.
func (s *documentSlots) ReserveSlot(ctx context.Context, _ sdkworker.SlotReservationInfo) (*sdkworker.SlotPermit, error) {
	t := time.NewTimer(s.poll)
	defer t.Stop()
	for {
		permit, released := s.tryReserve()
		if permit != nil {
			return permit, nil
		}
		t.Reset(s.poll)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-released:
		case <-t.C:
		}
	}
}

func (s *documentSlots) TryReserveSlot(sdkworker.SlotReservationInfo) *sdkworker.SlotPermit {
	permit, _ := s.tryReserve()
	return permit
}

func (s *documentSlots) MarkSlotUsed(sdkworker.SlotMarkUsedInfo) {}

func (s *documentSlots) ReleaseSlot(sdkworker.SlotReleaseInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issued--
	close(s.release)
	s.release = make(chan struct{})
}

func (s *documentSlots) MaxSlots() int { return s.max }
