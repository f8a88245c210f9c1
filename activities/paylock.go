package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/payments"
)

// paymentLease outlasts one charge attempt (30 s start-to-close cancels the
// attempt, and its lease is given back even then) with room to spare; it only
// matters when a worker dies holding it: that client's next charge waits at
// most this long.
const paymentLease = time.Minute

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

// supersedeAwaitingAction cancels the client's payments still waiting for
// 3-D Secure (on one invoice, or on all when invoiceID is ""), before a new
// charge under the client's payment lease: the payer chose to pay another
// way, and finishing the old one later would pay twice. The processor's
// payment_intent.canceled webhook then records each as failed through its
// invoice's workflow. If one went through meanwhile, nothing new may be
// charged: the answer is a non-retryable error of type changedType, and that
// payment's own webhook records it.
func (a *Activities) supersedeAwaitingAction(ctx context.Context, clientID, invoiceID, changedType string) error {
	pend, err := a.Store.AwaitingActionPayments(ctx, clientID, invoiceID)
	if err != nil {
		return err
	}
	canceled := map[string]bool{} // a balance payment's intent has a payment per invoice
	for _, p := range pend {
		if p.ProcessorIntentID == "" || canceled[p.ProcessorIntentID] {
			continue
		}
		canceled[p.ProcessorIntentID] = true
		res, err := a.Gateway.CancelPaymentIntent(ctx, p.ProcessorIntentID)
		if err != nil {
			return gatewayErr("cancel payment intent", err)
		}
		a.log().Info("payment awaiting 3-D Secure superseded", "invoice_id", p.InvoiceID, "payment_id", p.ID, "status", res.Status)
		if res.Status == payments.StatusFailed {
			// Recorded now, not only when the webhook comes: a void
			// invoice's workflow may have ended by then.
			for _, q := range pend {
				if q.ProcessorIntentID != p.ProcessorIntentID {
					continue
				}
				upd := *q
				upd.Status, upd.FailureCode, upd.FailureMessage = res.Status, res.FailureCode, res.FailureMessage
				if _, _, err := a.Store.RecordPayment(ctx, &upd); err != nil {
					return err
				}
			}
			continue
		}
		return temporal.NewNonRetryableApplicationError(
			"a payment started earlier was just confirmed, so the amount due changed; nothing more was charged", changedType, nil)
	}
	return nil
}
