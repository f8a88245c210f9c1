package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/contract"
)

// Activity options, one place per kind of activity. Each workflow picks the
// kind where it calls the activity and passes the summary the Temporal UI
// shows for that call.

// chargeTimeout bounds one charge attempt: the client lease wait (15 s),
// canceling a 3-D Secure payment, the processor's answer (STRIPE_TIMEOUT,
// 30 s by default) and an outcome lookup, with room.
const chargeTimeout = 2 * time.Minute

// chargeRetry retries a charge's transient failures, bounded well inside
// the 24 h Stripe keeps idempotency keys; the activity asks Stripe for an
// existing PaymentIntent before creating one. nonRetryable are the
// business failures of the call.
func chargeRetry(nonRetryable ...string) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		NonRetryableErrorTypes: nonRetryable}
}

// chargeOptions are for a charge run as an activity: the pay Update's
// (histories before charge-local-activity) and the balance payment's.
func chargeOptions(ctx workflow.Context, summary string, nonRetryable ...string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: chargeTimeout, ScheduleToCloseTimeout: 2 * time.Hour,
		RetryPolicy: chargeRetry(nonRetryable...), Summary: summary,
	})
}

// chargeLocalOptions are for the pay Update's charge as a local activity.
// Its limit leaves room over the processor's own timeout for the lease, a
// 3-D Secure cancel and an outcome lookup.
func chargeLocalOptions(ctx workflow.Context, summary string, nonRetryable ...string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: chargeTimeout, ScheduleToCloseTimeout: 2 * time.Hour,
		RetryPolicy: chargeRetry(nonRetryable...), Summary: summary,
	})
}

// refundOptions are for a refund at the processor: idempotent by refund ID,
// retried for two hours; a refusal or an invalid refund is final.
func refundOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 2 * time.Hour,
		RetryPolicy:            chargeRetry(contract.ErrTypeGateway, contract.ErrTypeInvalidRefund),
		Summary:                summary,
	})
}

// ledgerOptions are for reading or recording a payment's state in Postgres
// (and asking the processor for it): short, retried.
func ledgerOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
		Summary:             summary,
	})
}

// voidOptions are for voiding: it may cancel a 3-D Secure payment at the
// processor first, so it gets a charge's time.
func voidOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    chargeTimeout,
		ScheduleToCloseTimeout: 10 * time.Minute,
		Summary:                summary,
	})
}

// emailRetry waits out an SMTP or Chromium outage with backoff; the
// activities send each email once.
var emailRetry = &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute}

// notifyOptions are for emails and documents: SMTP or Chromium being down
// is waited out with backoff, and the activity sends each email once.
func notifyOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         emailRetry,
		Summary:             summary,
		TaskQueue:           contract.DocumentsTaskQueue,
	})
}

// reminderOptions wait out an SMTP outage with backoff; the activity sends
// each step once.
func reminderOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         emailRetry,
		Summary:             summary,
	})
}

// statementEmailOptions are for a statement run's statement: transient
// failures (SMTP or Chromium down) retry for hours; a client whose statement
// cannot be made is counted, not fatal.
func statementEmailOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy:            emailRetry,
		Summary:                summary,
		TaskQueue:              contract.DocumentsTaskQueue,
	})
}

// documentOptions are for a document the API waits for: a few quick tries.
func documentOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 3 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5},
		Summary:                summary,
		TaskQueue:              contract.DocumentsTaskQueue,
	})
}

// pageOptions are for one page of a batch run (find clients, signal
// reminders): retried; heartbeat, when given, for pages that report progress.
func pageOptions(ctx workflow.Context, startToClose, heartbeat time.Duration, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		HeartbeatTimeout:    heartbeat,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
		Summary:             summary,
	})
}

// reconcileOptions are for one page of the reconciler: a few minutes,
// a bounded number of tries (the next run, minutes later, goes on).
func reconcileOptions(ctx workflow.Context, summary string, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: time.Minute, MaximumAttempts: attempts},
		Summary:             summary,
	})
}
