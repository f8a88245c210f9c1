// Package cards owns a client's processor customer, their saved payment
// methods and how a method is named to people ("Visa •••• 4242"). The API
// (saving and removing cards) and the charge activities (charging a new or a
// saved card, saving it after the charge) both come here, so a customer is
// created once, a saved card is resolved one way and a removed one is
// refused one way. It knows nothing of Temporal or HTTP.
package cards

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
)

// Errors a caller maps to its own answer.
var (
	// ErrNotFound: no such saved method for this client (never saved, or
	// removed since). It is store.ErrNotFound, so either test matches.
	ErrNotFound = store.ErrNotFound
	// ErrRemovalNotAllowed: the client may not remove cards; their practice
	// does not allow it (a practice key always may).
	ErrRemovalNotAllowed = errors.New("the practice does not allow clients to remove saved cards")
)

// Cards carries what the card operations need: the store (read model of
// customers and saved methods) and the payment gateway.
type Cards struct {
	Store   *store.Store
	Gateway payments.Gateway
}

// Label is how a payment method is shown: "Visa •••• 4242", "Chase ••••
// 6789" for a bank account, "Card" when nothing is known.
func Label(typ, brand, last4, bank string) string {
	name := ""
	switch {
	case typ == payments.MethodUSBankAccount:
		name = bank
		if name == "" {
			name = "Bank account"
		}
	case brand == "amex":
		name = "American Express"
	case brand == "mastercard":
		name = "Mastercard"
	case brand == "":
		name = "Card"
	default:
		name = strings.ToUpper(brand[:1]) + brand[1:]
	}
	if last4 == "" {
		return name
	}
	return name + " •••• " + last4
}

// SavedLabel labels a saved method.
func SavedLabel(m *store.SavedPaymentMethod) string {
	return Label(m.Type, m.Brand, m.Last4, m.BankName)
}

// LabelForNew names a method before it is charged (for a summary written
// before the charge): Stripe's documented test IDs by their known brand and
// last four ("Visa •••• 4242"), with no processor call; anything else "card".
func LabelForNew(pmID string) string {
	if m, ok := payments.TestMethod(pmID); ok {
		return Label(m.Type, m.Brand, m.Last4, m.BankName)
	}
	return "card"
}

// NewLabel is LabelForNew that asks the processor about a tokenized method
// (pm_…) it does not know, so a new card reads "Visa •••• 4242" too. A
// failed lookup leaves "card": the charge goes ahead, and what is recorded
// is named from the charge's own answer.
func (c *Cards) NewLabel(ctx context.Context, pmID string) string {
	label := LabelForNew(pmID)
	if label != "card" || c == nil || c.Gateway == nil || !strings.HasPrefix(pmID, "pm_") {
		return label
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := c.Gateway.GetPaymentMethod(ctx, pmID)
	if err != nil {
		return label
	}
	return Label(m.Type, m.Brand, m.Last4, m.BankName)
}

// EnsureCustomer returns the client's processor customer, creating it the
// first time. The processor call is idempotent under a key derived from the
// client, and the store keeps the first ID written, so two concurrent
// callers end up with one customer.
func (c *Cards) EnsureCustomer(ctx context.Context, cl *store.Client) (string, error) {
	if cl.StripeCustomerID != "" {
		return cl.StripeCustomerID, nil
	}
	id, err := c.Gateway.CreateCustomer(ctx, payments.CustomerRequest{IdempotencyKey: "customer-" + cl.ID, ClientID: cl.ID,
		PracticeID: cl.PracticeID, Email: cl.Email, Name: cl.Name})
	if err != nil {
		return "", fmt.Errorf("create customer: %w", err)
	}
	id, err = c.Store.SetStripeCustomer(ctx, cl.ID, id)
	if err != nil {
		return "", err
	}
	cl.StripeCustomerID = id
	return id, nil
}

// List is the client's saved methods, oldest first (never nil).
func (c *Cards) List(ctx context.Context, clientID string) ([]*store.SavedPaymentMethod, error) {
	pms, err := c.Store.ListPaymentMethods(ctx, clientID)
	if pms == nil && err == nil {
		pms = []*store.SavedPaymentMethod{}
	}
	return pms, err
}

// Get is one of the client's saved methods; ErrNotFound when it is not
// saved (or was removed).
func (c *Cards) Get(ctx context.Context, clientID, id string) (*store.SavedPaymentMethod, error) {
	return c.Store.GetPaymentMethod(ctx, clientID, id)
}

// SaveRequest saves a tokenized method for a client without charging it.
type SaveRequest struct {
	PaymentMethodID string // pm_…
	CardholderName  string
	BillingZIP      string
	// Key makes the processor's attach idempotent (the request's
	// Idempotency-Key): a retried save attaches once.
	Key string
}

// Save attaches a method to the client's customer (created on first use)
// and lists it. Callers validate what will be stored first: a row that
// cannot be written after the attach would leave a card billflow does not
// list.
func (c *Cards) Save(ctx context.Context, cl *store.Client, req SaveRequest) (*store.SavedPaymentMethod, error) {
	customerID, err := c.EnsureCustomer(ctx, cl)
	if err != nil {
		return nil, err
	}
	key := req.Key
	if key == "" {
		key = store.NewID("attach")
	}
	m, err := c.Gateway.AttachPaymentMethod(ctx, req.PaymentMethodID, customerID, "attach-"+cl.ID+"-"+key)
	if err != nil {
		return nil, fmt.Errorf("attach payment method: %w", err)
	}
	return c.Store.SavePaymentMethod(ctx, &store.SavedPaymentMethod{PracticeID: cl.PracticeID, ClientID: cl.ID,
		ProcessorPMID: m.ID, Type: m.Type, Brand: m.Brand, Last4: m.Last4, ExpMonth: int32(m.ExpMonth), ExpYear: int32(m.ExpYear),
		BankName: m.BankName, CardholderName: firstNonEmpty(strings.TrimSpace(req.CardholderName), m.CardholderName),
		BillingZIP: firstNonEmpty(strings.TrimSpace(req.BillingZIP), m.BillingZIP)})
}

// SaveCharged lists a method the processor attached to the customer while
// charging it (setup_future_usage). Saving the same method again is a no-op.
func (c *Cards) SaveCharged(ctx context.Context, practiceID, clientID string, m payments.Method, payerName, billingZIP string) (*store.SavedPaymentMethod, error) {
	return c.Store.SavePaymentMethod(ctx, &store.SavedPaymentMethod{
		PracticeID: practiceID, ClientID: clientID, ProcessorPMID: m.ID, Type: m.Type,
		Brand: m.Brand, Last4: m.Last4, ExpMonth: int32(m.ExpMonth), ExpYear: int32(m.ExpYear),
		BankName: m.BankName, CardholderName: firstNonEmpty(payerName, m.CardholderName),
		BillingZIP: firstNonEmpty(billingZIP, m.BillingZIP),
	})
}

// Remove takes a saved method off the client: detached at the processor
// (already gone there is fine), then unlisted. byClient is true when the
// client asks (portal token or portal page): only where their practice
// allows it. A method not saved is ErrNotFound.
func (c *Cards) Remove(ctx context.Context, practice *store.Practice, clientID, id string, byClient bool) (*store.SavedPaymentMethod, error) {
	if byClient && !practice.AllowClientCardRemoval {
		return nil, ErrRemovalNotAllowed
	}
	pm, err := c.Get(ctx, clientID, id)
	if err != nil {
		return nil, err
	}
	if err := c.Gateway.DetachPaymentMethod(ctx, pm.ProcessorPMID); err != nil && !payments.IsNotFound(err) {
		return nil, fmt.Errorf("detach at processor: %w", err)
	}
	if err := c.Store.DetachPaymentMethod(ctx, clientID, pm.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return pm, nil
}

// Method is what a charge needs to know about how it is paid.
type Method struct {
	// PaymentMethodID is the processor's ID to charge.
	PaymentMethodID string
	// CustomerID is the client's processor customer: set for a saved
	// method, and for a new one that is to be saved; empty for a one-off.
	CustomerID string
	// OffSession: a saved method, charged without the card in hand.
	OffSession bool
	// Save: the processor should attach the new method after the charge.
	Save bool
	// Saved is the saved method charged, if one was.
	Saved *store.SavedPaymentMethod
}

// Resolve decides how a charge is paid: a new method (pmID, saved for
// later when save), or one of the client's saved methods (savedID), which
// must still be saved (ErrNotFound when it was removed meanwhile). The
// customer is created when one is needed.
func (c *Cards) Resolve(ctx context.Context, cl *store.Client, pmID, savedID string, save, offSession bool) (*Method, error) {
	out := &Method{PaymentMethodID: pmID, OffSession: offSession, Save: save && savedID == ""}
	if savedID != "" {
		pm, err := c.Get(ctx, cl.ID, savedID)
		if err != nil {
			return nil, err
		}
		out.PaymentMethodID, out.OffSession, out.Saved = pm.ProcessorPMID, true, pm
	}
	if out.Save || out.Saved != nil {
		id, err := c.EnsureCustomer(ctx, cl)
		if err != nil {
			return nil, err
		}
		out.CustomerID = id
	}
	return out, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
