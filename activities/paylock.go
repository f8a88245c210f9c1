package activities

import (
	"context"
	"fmt"
	"time"
)

// paymentLease outlasts one charge attempt (30 s start-to-close, the
// processor call inside it) with room to spare; it only matters when a worker
// dies holding it.
const paymentLease = 2 * time.Minute

// paymentLockWait is how long a charge waits for another charge of the same
// client before its attempt fails (and is retried).
const paymentLockWait = 15 * time.Second

// lockClientPayments waits for the client's payment lease (store
// LockClientPayments): invoice payments share it, a balance payment holds it
// alone from reading the balance until its payments are recorded, so an
// invoice payment and a balance payment never both pay one amount. The
// returned func gives the lease back.
func (a *Activities) lockClientPayments(ctx context.Context, clientID, holder string, exclusive bool) (func(), error) {
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := a.Store.UnlockClientPayments(uctx, clientID, holder); err != nil {
			a.log().Warn("payment lease not given back; it runs out by itself", "client_id", clientID, "holder", holder, "error", err)
		}
	}
	deadline := time.Now().Add(paymentLockWait)
	pause := 5 * time.Millisecond
	for {
		ok, err := a.Store.LockClientPayments(ctx, clientID, holder, exclusive, paymentLease)
		if err != nil {
			unlock()
			return nil, err
		}
		if ok {
			return unlock, nil
		}
		if time.Now().After(deadline) {
			unlock()
			return nil, fmt.Errorf("another payment of client %s is still being charged after %s", clientID, paymentLockWait)
		}
		select {
		case <-ctx.Done():
			unlock()
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}
