package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/billflow/billflow/internal/mailcatcher"
	"github.com/billflow/billflow/mail"
)

// Report is what a run did and what the books say.
type Report struct {
	Invoices, Flows           int
	FlowsByKind               map[string]int
	Duration, SettleTime      time.Duration
	Payments                  int // successful pay requests
	PayP50, PayP99, PayMax    time.Duration
	Retries                   int
	WorkerKills               int64
	KillsWhileCharging        int64
	PostgresRestarts          int64
	TemporalRestarts          int64
	Temporal                  string // which Temporal server
	Stripe500, StripeTimeouts int64

	IntentsCreated, IntentsSucceeded int
	CentsCaptured, CentsRecorded     int64
	RefundsAtStripe                  int
	CentsRefunded, CentsRefundRec    int64
	Emails, DuplicateEmails          int
	AttemptsUnsettled                int

	Slow       []string // payments that took long, with their invoices
	Violations []string
}

// Print writes the report for a person.
func (r *Report) Print(out io.Writer) {
	fmt.Fprintf(out, "\nfault run: %d invoices in %d flows, %s under faults, settled in %s\n", r.Invoices, r.Flows,
		r.Duration.Round(100*time.Millisecond), r.SettleTime.Round(100*time.Millisecond))
	kinds := make([]string, 0, len(r.FlowsByKind))
	for k := range r.FlowsByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(out, "  %-24s %d\n", k, r.FlowsByKind[k])
	}
	fmt.Fprintf(out, "Temporal: %s\n", r.Temporal)
	fmt.Fprintf(out, "faults: %d worker SIGKILLs (%d with a charge in flight), %d Postgres restarts, %d Temporal server restarts, %d Stripe 500s, %d Stripe timeouts after commit; %d client retries\n",
		r.WorkerKills, r.KillsWhileCharging, r.PostgresRestarts, r.TemporalRestarts, r.Stripe500, r.StripeTimeouts, r.Retries)
	fmt.Fprintf(out, "payments answered 200: %d, latency with retries p50 %s p99 %s max %s\n", r.Payments,
		r.PayP50.Round(time.Millisecond), r.PayP99.Round(time.Millisecond), r.PayMax.Round(time.Millisecond))
	for _, s := range r.Slow {
		fmt.Fprintln(out, "  slow payment:", s)
	}
	fmt.Fprintf(out, "stripe: %d PaymentIntents, %d succeeded, %d cents captured; ledger: %d cents recorded\n",
		r.IntentsCreated, r.IntentsSucceeded, r.CentsCaptured, r.CentsRecorded)
	fmt.Fprintf(out, "refunds: %d at stripe, %d cents; %d cents recorded\n", r.RefundsAtStripe, r.CentsRefunded, r.CentsRefundRec)
	fmt.Fprintf(out, "emails: %d sent, %d duplicates; payment attempts unsettled: %d\n", r.Emails, r.DuplicateEmails, r.AttemptsUnsettled)
	if len(r.Violations) == 0 {
		fmt.Fprintln(out, "books balance: every captured cent recorded once, nothing charged twice, every email once")
		return
	}
	fmt.Fprintf(out, "%d VIOLATIONS:\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintln(out, "  -", v)
	}
}

// exercise runs the payers under chaos, then waits for the books to settle.
func (w *world) exercise(ctx context.Context) (*Report, []*outcome, error) {
	cctx, stopChaos := context.WithCancel(ctx)
	if w.o.ChaosFor > 0 {
		cctx, stopChaos = context.WithTimeout(ctx, w.o.ChaosFor)
	}
	pgAt, temporalAt := make(chan struct{}), make(chan struct{})
	chaosDone := make(chan struct{})
	go func() { w.chaos(cctx, pgAt, temporalAt); close(chaosDone) }()
	t0 := time.Now()
	outs := w.payers(ctx, pgAt, temporalAt)
	stopChaos()
	<-chaosDone
	w.logf("faults stopped")
	rep := &Report{Invoices: 0, Flows: len(outs), FlowsByKind: map[string]int{}, Duration: time.Since(t0)}
	var pays []time.Duration
	for _, o := range outs {
		rep.FlowsByKind[flowNames[o.flow]]++
		rep.Invoices += len(o.invoices)
		rep.Retries += o.retries
		pays = append(pays, o.pays...)
		rep.Slow = append(rep.Slow, o.slow...)
	}
	rep.Payments = len(pays)
	rep.PayP50, rep.PayP99, rep.PayMax = percentile(pays, 0.5), percentile(pays, 0.99), percentile(pays, 1)
	rep.WorkerKills, rep.KillsWhileCharging = w.faults.workerKills.Load(), w.faults.killsWhileCharging.Load()
	rep.PostgresRestarts = w.faults.pgRestarts.Load()
	rep.TemporalRestarts = w.faults.temporalRestarts.Load()
	rep.Temporal = "embedded (SQLite)"
	if w.cluster != nil {
		rep.Temporal = "server binary, Postgres persistence and visibility"
	}
	rep.Stripe500, rep.StripeTimeouts = w.faults.stripe500.Load(), w.faults.stripeTimeoutAfter.Load()
	w.logf("payers done in %s; settling", rep.Duration.Round(time.Second))

	// Faults have stopped: wait until the books settle (receipts and
	// webhooks lag the answers), then take the last look as the verdict.
	t1 := time.Now()
	deadline := t1.Add(w.o.Settle)
	for {
		v, err := w.check(ctx, outs, rep)
		if err != nil {
			return rep, outs, err
		}
		rep.Violations = v
		if len(v) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return rep, outs, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	rep.SettleTime = time.Since(t1)
	return rep, outs, nil
}

// check compares the sandbox, the database and the mail catcher.
func (w *world) check(ctx context.Context, outs []*outcome, rep *Report) ([]string, error) {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	for i, o := range outs {
		if o.err != nil {
			bad("flow %d (%s): %v", i, flowNames[o.flow], o.err)
		}
	}

	// What billflow recorded.
	payments := map[string]*payment{}
	byIntent := map[string][]*payment{}
	rows, err := w.db.Query(ctx, `SELECT id, invoice_id, status, COALESCE(processor_intent_id,''), amount, balance_payment_id IS NOT NULL
 FROM payments WHERE practice_id=$1`, w.practice)
	if err != nil {
		return nil, fmt.Errorf("read payments: %w", err)
	}
	for rows.Next() {
		var id string
		p := &payment{}
		if err := rows.Scan(&id, &p.invoice, &p.status, &p.intent, &p.amount, &p.balance); err != nil {
			return nil, err
		}
		payments[id] = p
		byIntent[p.intent] = append(byIntent[p.intent], p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	refundRec := map[string]int64{} // by processor intent
	var refundRecTotal int64
	var refundIDs []string
	rows, err = w.db.Query(ctx, `SELECT id, payment_id, amount FROM refunds WHERE practice_id=$1 AND status='succeeded'`, w.practice)
	if err != nil {
		return nil, fmt.Errorf("read refunds: %w", err)
	}
	for rows.Next() {
		var id, pay string
		var amt int64
		if err := rows.Scan(&id, &pay, &amt); err != nil {
			return nil, err
		}
		if p := payments[pay]; p != nil {
			refundRec[p.intent] += amt
		}
		refundRecTotal += amt
		refundIDs = append(refundIDs, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	// Every captured cent recorded once; nothing recorded that was not captured.
	rep.IntentsCreated, rep.IntentsSucceeded, rep.CentsCaptured, rep.CentsRefunded = 0, 0, 0, 0
	seen := map[string]bool{}
	for _, pi := range w.sandbox.PaymentIntents() {
		if pi.Metadata["practice_id"] != w.practice {
			continue
		}
		seen[pi.ID] = true
		rep.IntentsCreated++
		var recorded int64
		for _, p := range byIntent[pi.ID] {
			if p.status == "succeeded" {
				recorded += p.amount
			}
		}
		if pi.Status == "succeeded" {
			rep.IntentsSucceeded++
			rep.CentsCaptured += pi.Amount
			rep.CentsRefunded += pi.AmountRefunded
			if recorded != pi.Amount {
				bad("PaymentIntent %s captured %d, ledger records %d", pi.ID, pi.Amount, recorded)
			}
		} else if recorded != 0 {
			bad("PaymentIntent %s is %s, but %d is recorded as paid", pi.ID, pi.Status, recorded)
		}
		if pi.AmountRefunded != refundRec[pi.ID] {
			bad("PaymentIntent %s refunded %d at Stripe, %d recorded", pi.ID, pi.AmountRefunded, refundRec[pi.ID])
		}
	}
	rep.CentsRecorded = 0
	for id, p := range payments {
		if p.status != "succeeded" {
			continue
		}
		rep.CentsRecorded += p.amount
		if !seen[p.intent] {
			bad("payment %s is recorded as paid with no PaymentIntent %q at Stripe", id, p.intent)
		}
	}
	rep.RefundsAtStripe = 0
	for _, r := range w.sandbox.Refunds() {
		if r.Metadata["practice_id"] == w.practice || seen[r.PaymentIntent] {
			rep.RefundsAtStripe++
		}
	}
	rep.CentsRefundRec = refundRecTotal

	// Each invoice: paid once (never more than its total), its ledger and
	// its read model agree, and it ended where its flow says.
	want := map[string]string{}
	for _, o := range outs {
		for _, id := range o.invoices {
			want[id] = o.wantStatus
		}
	}
	rows, err = w.db.Query(ctx, `SELECT i.id, i.status, i.total, i.amount_paid, i.amount_due, i.amount_refunded,
  (SELECT COALESCE(SUM(amount),0) FROM ledger_entries l WHERE l.invoice_id=i.id),
  (SELECT COALESCE(-SUM(amount),0) FROM ledger_entries l WHERE l.invoice_id=i.id AND kind='payment'),
  (SELECT COALESCE(SUM(amount),0) FROM payments p WHERE p.invoice_id=i.id AND status='succeeded'),
  (SELECT COALESCE(SUM(amount),0) FROM payments p WHERE p.invoice_id=i.id AND status='processing')
 FROM invoices i WHERE practice_id=$1`, w.practice)
	if err != nil {
		return nil, fmt.Errorf("read invoices: %w", err)
	}
	for rows.Next() {
		var id, status string
		var total, paid, due, refunded, ledger, ledgerPaid, succeeded, processing int64
		if err := rows.Scan(&id, &status, &total, &paid, &due, &refunded, &ledger, &ledgerPaid, &succeeded, &processing); err != nil {
			return nil, err
		}
		if succeeded > total {
			bad("invoice %s charged twice: %d paid on a total of %d", id, succeeded, total)
		}
		if ledgerPaid != succeeded || paid != succeeded {
			bad("invoice %s: payments %d, ledger payments %d, amount_paid %d", id, succeeded, ledgerPaid, paid)
		}
		if d := max(ledger-processing, 0); due != d {
			bad("invoice %s: amount_due %d, ledger says %d", id, due, d)
		}
		if status != "void" && ledger != total-succeeded+refundedOverpay(total, succeeded, refunded) {
			bad("invoice %s: ledger balance %d, total %d − paid %d", id, ledger, total, succeeded)
		}
		if s, ok := want[id]; ok && s != status {
			bad("invoice %s is %s, want %s", id, status, s)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := w.db.QueryRow(ctx, `SELECT count(*) FROM payment_attempts WHERE practice_id=$1 AND status IN ('new','charging')`,
		w.practice).Scan(&rep.AttemptsUnsettled); err != nil {
		return nil, err
	}
	if rep.AttemptsUnsettled > 0 {
		bad("%d payment attempts still have no known outcome", rep.AttemptsUnsettled)
	}
	v = append(v, w.checkEmails(outs, payments, refundIDs, rep)...)
	return v, nil
}

// refundedOverpay is the part of refunds that returned an overpayment, which
// the ledger books against the balance; none of the flows overpays.
func refundedOverpay(total, paid, refunded int64) int64 {
	return min(max(paid-total, 0), refunded)
}

// checkEmails: every Message-ID caught once, one invoice email per invoice,
// one payment email per payment made on an invoice, one receipt per balance
// payment and one notice per refund.
func (w *world) checkEmails(outs []*outcome, payments map[string]*payment, refunds []string, rep *Report) []string {
	var v []string
	byID := map[string]int{}
	kinds := map[string]map[string]int{} // invoice → kind → count
	msgs := w.mail.Messages()
	rep.Emails, rep.DuplicateEmails = len(msgs), 0
	for _, m := range msgs {
		byID[m.MessageID]++
		if byID[m.MessageID] == 2 {
			rep.DuplicateEmails++
			v = append(v, fmt.Sprintf("email %s (%s) sent more than once", m.MessageID, kindOf(m)))
		}
	}
	has := func(parts ...string) bool {
		for id := range byID {
			if strings.Contains(id, "."+strings.Join(parts, ".")+"@") {
				return true
			}
		}
		return false
	}
	for _, m := range msgs {
		inv, _, _ := strings.Cut(strings.TrimPrefix(m.MessageID, "<"), ".")
		if kinds[inv] == nil {
			kinds[inv] = map[string]int{}
		}
		kinds[inv][kindOf(m)]++
	}
	balanceFlows := 0
	for _, o := range outs {
		for _, id := range o.invoices {
			// An invoice voided before its email went out gets none.
			if n := kinds[id][string(mail.KindInvoiceIssued)]; n != 1 && !(o.flow == flowVoid3DS && n == 0) {
				v = append(v, fmt.Sprintf("invoice %s: %d invoice emails, want 1", id, n))
			}
		}
		if o.flow == flowSharedRefund && o.err == nil {
			balanceFlows++
		}
	}
	for id, p := range payments {
		if p.status == "succeeded" && !p.balance && !has("payment", id) {
			v = append(v, fmt.Sprintf("payment %s on invoice %s: no payment email", id, p.invoice))
		}
	}
	receipts := 0
	for _, m := range msgs {
		if kindOf(m) == string(mail.KindBalancePaymentReceipt) {
			receipts++
		}
	}
	if receipts != balanceFlows {
		v = append(v, fmt.Sprintf("%d balance payment receipts, want %d", receipts, balanceFlows))
	}
	for _, id := range refunds {
		if !has("refund", id) {
			v = append(v, fmt.Sprintf("refund %s: no refund notice", id))
		}
	}
	return v
}

func kindOf(m mailcatcher.Stored) string {
	if v := m.Headers[mail.KindHeader]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// payment is a payment as billflow recorded it.
type payment struct {
	invoice, status, intent string
	amount                  int64
	balance                 bool // part of a balance payment
}
