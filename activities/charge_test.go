package activities_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/pgtest"
	"github.com/billflow/billflow/internal/stripesandbox"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil, pgtest.Setup(store.MigrateURL)) }

// invoiceReads counts the queries that read invoice rows (not the row
// locks and updates a recording takes) and those that read invoice items.
type invoiceReads struct{ rows, items atomic.Int64 }

func (r *invoiceReads) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	sql := strings.TrimSpace(d.SQL)
	switch {
	case strings.Contains(sql, "invoice_items"):
		r.items.Add(1)
	case strings.HasPrefix(sql, "SELECT") && !strings.HasPrefix(sql, "SELECT 1") && strings.Contains(sql, "FROM invoices"):
		r.rows.Add(1)
	}
	return ctx
}

func (r *invoiceReads) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// spyGateway is the real gateway with its charges and lookups counted.
type spyGateway struct {
	payments.Gateway
	charges, lookups atomic.Int64
}

func (g *spyGateway) Charge(ctx context.Context, req payments.ChargeRequest) (*payments.ChargeResult, error) {
	g.charges.Add(1)
	return g.Gateway.Charge(ctx, req)
}

func (g *spyGateway) FindPaymentIntent(ctx context.Context, paymentID string) (*payments.ChargeResult, error) {
	g.lookups.Add(1)
	return g.Gateway.FindPaymentIntent(ctx, paymentID)
}

func (g *spyGateway) GetPaymentIntent(ctx context.Context, id string) (*payments.ChargeResult, error) {
	g.lookups.Add(1)
	return g.Gateway.GetPaymentIntent(ctx, id)
}

type fixture struct {
	t      *testing.T
	ctx    context.Context
	st     *store.Store
	sb     *stripesandbox.Sandbox
	gw     *spyGateway
	reads  *invoiceReads
	acts   *activities.Activities
	env    *testsuite.TestActivityEnvironment
	client *store.Client
	prac   *store.Practice
	day    time.Time
}

func newFixture(t *testing.T) *fixture {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	reads := &invoiceReads{}
	cfg, err := pgxpool.ParseConfig(pgtest.NewDB(t))
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = reads
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	st := &store.Store{Pool: pool}
	t.Cleanup(st.Close)
	sb := stripesandbox.New(stripesandbox.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	base, err := sb.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	gw := &spyGateway{Gateway: payments.NewStripe(payments.StripeConfig{SecretKey: "sk_test_sandbox", APIBase: base, Timeout: 700 * time.Millisecond})}
	acts := &activities.Activities{Store: st, Gateway: gw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	p, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Calm Minds", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	cl, err := st.CreateClient(ctx, &store.Client{PracticeID: p.ID, Name: "Ada", Email: "ada@example.com"})
	require.NoError(t, err)
	return &fixture{t: t, ctx: ctx, st: st, sb: sb, gw: gw, reads: reads, acts: acts, env: env, client: cl, prac: p,
		day: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
}

func (f *fixture) invoice(total int64) *store.Invoice {
	f.t.Helper()
	f.day = f.day.AddDate(0, 0, 1)
	inv, err := f.st.CreateInvoice(f.ctx, store.NewInvoice{PracticeID: f.prac.ID, ClientID: f.client.ID, Currency: "usd", IssueDate: f.day,
		DueDate: f.day.AddDate(0, 0, 14), Items: []store.Item{{ServiceDate: f.day, Description: "Session", CPTCode: "90837", Units: 1, UnitAmount: total}}})
	require.NoError(f.t, err)
	return inv
}

func (f *fixture) chargeInput(inv *store.Invoice, seq int) *activities.ChargeInput {
	return &activities.ChargeInput{InvoiceID: inv.ID, PracticeID: inv.PracticeID, ClientID: inv.ClientID, Number: inv.Number,
		PaymentID: "pay_" + strings.TrimPrefix(inv.ID, "inv_") + "_" + string(rune('0'+seq)), Amount: inv.AmountDue, Currency: "usd",
		PaymentMethodID: "pm_card_visa", IdempotencyKey: "key-" + inv.ID, Scope: "test", RequestHash: "h"}
}

func (f *fixture) charge(in *activities.ChargeInput) (*activities.ChargeResult, error) {
	val, err := f.env.ExecuteActivity(f.acts.Charge, in)
	if err != nil {
		return nil, err
	}
	var out activities.ChargeResult
	require.NoError(f.t, val.Get(&out))
	return &out, nil
}

func (f *fixture) chargeBalance(in *activities.ChargeBalanceInput) (*activities.ChargeBalanceResult, error) {
	val, err := f.env.ExecuteActivity(f.acts.ChargeBalance, in)
	if err != nil {
		return nil, err
	}
	var out activities.ChargeBalanceResult
	require.NoError(f.t, val.Get(&out))
	return &out, nil
}

func (f *fixture) row(id string) *store.Invoice {
	f.t.Helper()
	inv, err := f.st.GetInvoiceRow(f.ctx, id)
	require.NoError(f.t, err)
	return inv
}

func (f *fixture) payments(id string) []*store.Payment {
	f.t.Helper()
	pays, err := f.st.ListPayments(f.ctx, id)
	require.NoError(f.t, err)
	return pays
}

func appErr(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	return ae
}

func TestChargeNewCardReadsInvoiceOnce(t *testing.T) {
	f := newFixture(t)
	inv := f.invoice(9000)
	in := f.chargeInput(inv, 1)
	in.SaveCard, in.PayerName = true, "Ada Lovelace"
	f.reads.rows.Store(0)
	f.reads.items.Store(0)
	res, err := f.charge(in)
	require.NoError(t, err)
	require.Equal(t, int64(1), f.reads.rows.Load(), "one payment reads the invoice row once")
	require.Zero(t, f.reads.items.Load(), "a charge never reads the invoice's items")

	require.Equal(t, contract.PaymentSucceeded, res.Status)
	require.Equal(t, "Visa •••• 4242", res.MethodLabel)
	require.Equal(t, activities.InvoiceSnapshot{Status: contract.InvoicePaid, AmountPaid: 9000}, res.Invoice)
	pis := f.sb.PaymentIntents()
	require.Len(t, pis, 1)
	require.Equal(t, in.PaymentID, pis[0].IdempotencyKey, "the processor's idempotency key is the payment's ID")
	require.Equal(t, int64(9000), pis[0].Amount)
	require.NotEmpty(t, pis[0].Customer, "a card to save is charged on the client's customer")
	saved, err := f.st.ListPaymentMethods(f.ctx, f.client.ID)
	require.NoError(t, err)
	require.Len(t, saved, 1)
	require.Equal(t, "Ada Lovelace", saved[0].CardholderName)
	require.Equal(t, contract.InvoicePaid, f.row(inv.ID).Status)

	// The same payment again (a retried activity) charges nothing more.
	again, err := f.charge(in)
	require.NoError(t, err)
	require.Equal(t, res.PaymentID, again.PaymentID)
	require.Equal(t, contract.PaymentSucceeded, again.Status)
	require.Equal(t, 1, f.sb.CountPaymentIntents())
	require.Len(t, f.payments(inv.ID), 1)
}

func TestChargeSavedCard(t *testing.T) {
	f := newFixture(t)
	saved, err := (&cards.Cards{Store: f.st, Gateway: f.gw}).Save(f.ctx, f.client, cards.SaveRequest{PaymentMethodID: "pm_card_mastercard", Key: "k"})
	require.NoError(t, err)
	inv := f.invoice(12000)
	in := f.chargeInput(inv, 1)
	in.PaymentMethodID, in.SavedPaymentMethodID = "", saved.ID
	res, err := f.charge(in)
	require.NoError(t, err)
	require.Equal(t, contract.PaymentSucceeded, res.Status)
	require.Equal(t, "Mastercard •••• 4444", res.MethodLabel)
	pis := f.sb.PaymentIntents()
	require.Len(t, pis, 1)
	require.Equal(t, saved.ProcessorPMID, pis[0].PaymentMethod, "the saved card's processor ID is charged")
	cl, err := f.st.GetClient(f.ctx, f.prac.ID, f.client.ID)
	require.NoError(t, err)
	require.Equal(t, cl.StripeCustomerID, pis[0].Customer, "on the client's one customer")
	list, err := f.st.ListPaymentMethods(f.ctx, f.client.ID)
	require.NoError(t, err)
	require.Len(t, list, 1, "a saved card is not saved twice")
}

func TestChargeSavedThenRemovedCard(t *testing.T) {
	f := newFixture(t)
	c := &cards.Cards{Store: f.st, Gateway: f.gw}
	saved, err := c.Save(f.ctx, f.client, cards.SaveRequest{PaymentMethodID: "pm_card_visa", Key: "k"})
	require.NoError(t, err)
	_, err = c.Remove(f.ctx, f.prac, f.client.ID, saved.ID, false)
	require.NoError(t, err)
	inv := f.invoice(9000)
	in := f.chargeInput(inv, 1)
	in.PaymentMethodID, in.SavedPaymentMethodID = "", saved.ID
	_, err = f.charge(in)
	ae := appErr(t, err)
	require.Equal(t, activities.ErrTypeGateway, ae.Type())
	require.True(t, ae.NonRetryable())
	require.Contains(t, ae.Message(), "saved payment method is not available")
	require.Zero(t, f.sb.CountPaymentIntents(), "nothing charged")
	require.Zero(t, f.gw.charges.Load())
	require.Equal(t, int64(9000), f.row(inv.ID).AmountDue)
	require.Empty(t, f.payments(inv.ID))
	att, err := f.st.GetPaymentAttempt(f.ctx, in.PaymentID)
	require.NoError(t, err)
	require.Equal(t, string(contract.PaymentFailed), att.Status)
	require.Equal(t, "payment_method_unavailable", att.FailureCode)
}

func TestChargeDeclineChangesNothing(t *testing.T) {
	f := newFixture(t)
	inv := f.invoice(9000)
	in := f.chargeInput(inv, 1)
	in.PaymentMethodID = "pm_card_chargeDeclinedInsufficientFunds"
	f.reads.rows.Store(0)
	res, err := f.charge(in)
	require.NoError(t, err, "a decline is an answer, not an error")
	require.Equal(t, int64(1), f.reads.rows.Load())
	require.Equal(t, contract.PaymentFailed, res.Status)
	require.Equal(t, "card_declined", res.FailureCode)
	require.Equal(t, "insufficient_funds", res.DeclineCode)
	require.NotEmpty(t, res.FailureMessage)
	require.Equal(t, activities.InvoiceSnapshot{Status: contract.InvoiceOpen, AmountDue: 9000}, res.Invoice)
	cur := f.row(inv.ID)
	require.Equal(t, store.StatusOpen, cur.Status)
	require.Equal(t, int64(9000), cur.AmountDue)
	require.Empty(t, f.payments(inv.ID))
}

func TestChargeLostAnswerChargesOnce(t *testing.T) {
	f := newFixture(t)
	inv := f.invoice(9000)
	in := f.chargeInput(inv, 1)
	// Stripe takes the charge, then its answer never arrives.
	f.sb.FailNext(1, stripesandbox.FaultTimeoutAfter)
	_, err := f.charge(in)
	require.Error(t, err)
	require.False(t, appErr(t, err).NonRetryable(), "an unknown outcome is retried")
	require.Zero(t, f.sb.PendingFaults())
	require.Equal(t, 1, f.sb.CountPaymentIntents(), "Stripe committed the charge")
	require.Equal(t, int64(9000), f.row(inv.ID).AmountDue, "nothing recorded without an answer")

	// The retry asks Stripe and records what it did, without charging again.
	res, err := f.charge(in)
	require.NoError(t, err)
	require.Equal(t, contract.PaymentSucceeded, res.Status)
	require.Equal(t, int64(1), f.gw.charges.Load(), "the retry looked the charge up instead of sending it again")
	require.Equal(t, int64(1), f.gw.lookups.Load())
	require.Equal(t, 1, f.sb.CountPaymentIntents())
	require.Equal(t, int64(0), f.row(inv.ID).AmountDue)
	require.Len(t, f.payments(inv.ID), 1)
}

func TestChargeNeverSentIsChargedOnRetry(t *testing.T) {
	f := newFixture(t)
	inv := f.invoice(9000)
	in := f.chargeInput(inv, 1)
	// The request never reaches Stripe: the outcome is unknown to billflow.
	f.sb.FailNext(1, stripesandbox.FaultTimeout)
	_, err := f.charge(in)
	require.Error(t, err)
	require.Zero(t, f.sb.CountPaymentIntents())
	res, err := f.charge(in)
	require.NoError(t, err)
	require.Equal(t, contract.PaymentSucceeded, res.Status)
	require.Equal(t, int64(1), f.gw.lookups.Load(), "the unknown outcome is looked up first")
	require.Equal(t, int64(2), f.gw.charges.Load(), "and, Stripe having nothing, charged")
	require.Equal(t, 1, f.sb.CountPaymentIntents())
	require.Len(t, f.payments(inv.ID), 1)
}

func TestChargeBalanceOverTwoInvoices(t *testing.T) {
	f := newFixture(t)
	older, newer := f.invoice(9000), f.invoice(5000)
	bal := &activities.ChargeBalanceInput{BalancePaymentID: "bal_1", PracticeID: f.prac.ID, ClientID: f.client.ID, Currency: "usd",
		Total: 14000, InvoiceIDs: []string{older.ID, newer.ID}, PaymentMethodID: "pm_card_visa", IdempotencyKey: "bk", Scope: "balance", RequestHash: "h"}
	res, err := f.chargeBalance(bal)
	require.NoError(t, err)
	require.Equal(t, contract.PaymentSucceeded, res.Status)
	require.Equal(t, "Visa •••• 4242", res.MethodLabel)
	require.Equal(t, []activities.Allocation{{InvoiceID: older.ID, PaymentID: "bal_1_1", Amount: 9000},
		{InvoiceID: newer.ID, PaymentID: "bal_1_2", Amount: 5000}}, res.Allocations)
	pis := f.sb.PaymentIntents()
	require.Len(t, pis, 1, "one charge for the whole balance")
	require.Equal(t, int64(14000), pis[0].Amount)
	require.Equal(t, "bal_1", pis[0].IdempotencyKey)
	for _, id := range []string{older.ID, newer.ID} {
		require.Equal(t, store.StatusPaid, f.row(id).Status)
		require.Len(t, f.payments(id), 1)
	}
	// Again: the same answer, nothing charged.
	again, err := f.chargeBalance(bal)
	require.NoError(t, err)
	require.Equal(t, res.Allocations, again.Allocations)
	require.Equal(t, 1, f.sb.CountPaymentIntents())
}

func TestChargeBalanceStaleRefused(t *testing.T) {
	f := newFixture(t)
	older, newer := f.invoice(9000), f.invoice(5000)
	// The client saw 140.00; one invoice is paid meanwhile.
	_, err := f.charge(f.chargeInput(newer, 1))
	require.NoError(t, err)
	require.Equal(t, 1, f.sb.CountPaymentIntents())
	_, err = f.chargeBalance(&activities.ChargeBalanceInput{BalancePaymentID: "bal_2", PracticeID: f.prac.ID, ClientID: f.client.ID,
		Currency: "usd", Total: 14000, InvoiceIDs: []string{older.ID, newer.ID}, PaymentMethodID: "pm_card_visa",
		IdempotencyKey: "bk2", Scope: "balance", RequestHash: "h"})
	ae := appErr(t, err)
	require.Equal(t, activities.ErrTypeBalanceChanged, ae.Type())
	require.True(t, ae.NonRetryable())
	require.Equal(t, 1, f.sb.CountPaymentIntents(), "a stale balance charges nothing")
	require.Equal(t, int64(9000), f.row(older.ID).AmountDue)
	require.Empty(t, f.payments(older.ID))
}

// TestChargeLabels: a charge's result names the method as the processor
// described it, the way every email, page and timeline does (cards.Label).
func TestChargeLabels(t *testing.T) {
	f := newFixture(t)
	for pm, want := range map[string]struct {
		status contract.PaymentStatus
		label  string
	}{
		"pm_card_visa":       {contract.PaymentSucceeded, "Visa •••• 4242"},
		"pm_card_mastercard": {contract.PaymentSucceeded, "Mastercard •••• 4444"},
		"pm_card_amex":       {contract.PaymentSucceeded, "American Express •••• 8431"},
		"pm_usBankAccount":   {contract.PaymentProcessing, "STRIPE TEST BANK •••• 6789"},
	} {
		inv := f.invoice(2500)
		in := f.chargeInput(inv, 1)
		in.PaymentMethodID = pm
		res, err := f.charge(in)
		require.NoError(t, err, pm)
		require.Equal(t, want.status, res.Status, pm)
		require.Equal(t, want.label, res.MethodLabel, pm)
		att, err := f.st.GetPaymentAttempt(f.ctx, in.PaymentID)
		require.NoError(t, err)
		require.Equal(t, want.label, activities.MethodLabel(att.MethodType, att.Brand, att.Last4, att.BankName), "%s as recorded", pm)
	}
}
