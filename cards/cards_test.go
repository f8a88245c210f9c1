package cards_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/internal/stripesandbox"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func TestLabel(t *testing.T) {
	for _, tc := range []struct{ typ, brand, last4, bank, want string }{
		{"card", "visa", "4242", "", "Visa •••• 4242"},
		{"card", "amex", "8431", "", "American Express •••• 8431"},
		{"card", "mastercard", "4444", "", "Mastercard •••• 4444"},
		{"card", "discover", "", "", "Discover"},
		{"card", "", "", "", "Card"},
		{"us_bank_account", "", "6789", "STRIPE TEST BANK", "STRIPE TEST BANK •••• 6789"},
		{"us_bank_account", "", "", "", "Bank account"},
	} {
		require.Equal(t, tc.want, cards.Label(tc.typ, tc.brand, tc.last4, tc.bank), "%+v", tc)
	}
	// Stripe's test IDs are named with their last four, as the charge will
	// record them; no processor is needed (a Cards without a gateway).
	for pm, want := range map[string]string{"pm_card_visa": "Visa •••• 4242", "pm_card_mastercard": "Mastercard •••• 4444",
		"pm_card_amex": "American Express •••• 8431", "pm_card_authenticationRequired": "Visa •••• 3184",
		"pm_usBankAccount": "STRIPE TEST BANK •••• 6789", "pm_1Nabc": "card"} {
		require.Equal(t, want, cards.LabelForNew(pm), pm)
		require.Equal(t, want, (&cards.Cards{}).NewLabel(context.Background(), pm), pm)
	}
}

type fixture struct {
	ctx      context.Context
	sb       *stripesandbox.Sandbox
	st       *store.Store
	c        *cards.Cards
	practice *store.Practice
	client   *store.Client
}

func newFixture(t *testing.T) *fixture {
	st, ctx := storetest.Open(t)
	sb := stripesandbox.New(stripesandbox.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	base, err := sb.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	gw := payments.NewStripe(payments.StripeConfig{SecretKey: "sk_test_sandbox", APIBase: base, Timeout: 2 * time.Second})
	p, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Calm Minds", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	cl, err := st.CreateClient(ctx, &store.Client{PracticeID: p.ID, Name: "Ada", Email: "ada@example.com"})
	require.NoError(t, err)
	return &fixture{ctx: ctx, sb: sb, st: st, c: &cards.Cards{Store: st, Gateway: gw}, practice: p, client: cl}
}

func TestEnsureCustomerOnce(t *testing.T) {
	f := newFixture(t)
	id, err := f.c.EnsureCustomer(f.ctx, f.client)
	require.NoError(t, err)
	require.NotEmpty(t, id)
	// Another caller holding the client as read before the first create
	// gets the same customer (the processor key and the store keep one).
	stale, err := f.st.GetClient(f.ctx, f.practice.ID, f.client.ID)
	require.NoError(t, err)
	stale.StripeCustomerID = ""
	again, err := f.c.EnsureCustomer(f.ctx, stale)
	require.NoError(t, err)
	require.Equal(t, id, again)
	cur, err := f.st.GetClient(f.ctx, f.practice.ID, f.client.ID)
	require.NoError(t, err)
	require.Equal(t, id, cur.StripeCustomerID)
}

func TestSaveListRemove(t *testing.T) {
	f := newFixture(t)
	saved, err := f.c.Save(f.ctx, f.client, cards.SaveRequest{PaymentMethodID: "pm_card_visa", CardholderName: " Ada L ", BillingZIP: "10001", Key: "k1"})
	require.NoError(t, err)
	// A tokenized method (the processor's own pm_… ID) is named by asking the processor.
	require.NotEqual(t, "pm_card_visa", saved.ProcessorPMID)
	require.Equal(t, "Visa •••• 4242", f.c.NewLabel(f.ctx, saved.ProcessorPMID))
	require.NoError(t, err)
	require.Equal(t, "Visa •••• 4242", cards.SavedLabel(saved))
	require.Equal(t, "Ada L", saved.CardholderName)
	list, err := f.c.List(f.ctx, f.client.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)

	// A client may not remove it where the practice does not allow it; the card stays.
	deny := false
	p, err := f.st.UpdatePracticeSettings(f.ctx, f.practice.ID, store.PracticeSettings{AllowClientCardRemoval: &deny})
	require.NoError(t, err)
	_, err = f.c.Remove(f.ctx, p, f.client.ID, saved.ID, true)
	require.ErrorIs(t, err, cards.ErrRemovalNotAllowed)
	list, err = f.c.List(f.ctx, f.client.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)

	// The practice may; then it is gone here and cannot be resolved for a charge.
	removed, err := f.c.Remove(f.ctx, p, f.client.ID, saved.ID, false)
	require.NoError(t, err)
	require.Equal(t, saved.ID, removed.ID)
	list, err = f.c.List(f.ctx, f.client.ID)
	require.NoError(t, err)
	require.Empty(t, list)
	_, err = f.c.Remove(f.ctx, f.practice, f.client.ID, saved.ID, false)
	require.ErrorIs(t, err, cards.ErrNotFound)
	_, err = f.c.Resolve(f.ctx, f.client, "", saved.ID, false, false)
	require.ErrorIs(t, err, cards.ErrNotFound)
}

func TestClientRemovalWhereAllowed(t *testing.T) {
	f := newFixture(t)
	saved, err := f.c.Save(f.ctx, f.client, cards.SaveRequest{PaymentMethodID: "pm_card_mastercard", Key: "k1"})
	require.NoError(t, err)
	require.True(t, f.practice.AllowClientCardRemoval, "allowed by default")
	_, err = f.c.Remove(f.ctx, f.practice, f.client.ID, saved.ID, true)
	require.NoError(t, err)
	list, err := f.c.List(f.ctx, f.client.ID)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	// A one-off new card: no customer is created.
	m, err := f.c.Resolve(f.ctx, f.client, "pm_card_visa", "", false, false)
	require.NoError(t, err)
	require.Equal(t, cards.Method{PaymentMethodID: "pm_card_visa"}, *m)
	cur, err := f.st.GetClient(f.ctx, f.practice.ID, f.client.ID)
	require.NoError(t, err)
	require.Empty(t, cur.StripeCustomerID)

	// A new card to save: charged on the client's customer, saved by the processor.
	m, err = f.c.Resolve(f.ctx, f.client, "pm_card_visa", "", true, false)
	require.NoError(t, err)
	require.NotEmpty(t, m.CustomerID)
	require.True(t, m.Save)

	// A saved card: its processor ID, off session, on the same customer.
	saved, err := f.c.Save(f.ctx, f.client, cards.SaveRequest{PaymentMethodID: "pm_card_mastercard", Key: "k2"})
	require.NoError(t, err)
	m2, err := f.c.Resolve(f.ctx, f.client, "", saved.ID, true, false)
	require.NoError(t, err)
	require.Equal(t, saved.ProcessorPMID, m2.PaymentMethodID)
	require.Equal(t, m.CustomerID, m2.CustomerID)
	require.True(t, m2.OffSession)
	require.False(t, m2.Save, "a saved card is not saved again")
	require.Equal(t, saved.ID, m2.Saved.ID)
}
