package payments

import (
	"context"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

// isBankTestID reports whether id is one of Stripe's us_bank_account test IDs.
func isBankTestID(id string) bool { return strings.HasPrefix(id, "pm_usBankAccount") }

// isTestID reports whether id is a Stripe test alias rather than a real
// PaymentMethod ID.
func isTestID(id string) bool {
	return strings.HasPrefix(id, "pm_card_") || isBankTestID(id)
}

// methodType decides whether a PaymentMethod is a card or a bank account:
// test IDs by name, real IDs by asking Stripe (a read, safe to repeat).
func (s *Stripe) methodType(ctx context.Context, pmID string) (string, error) {
	if isBankTestID(pmID) {
		return MethodUSBankAccount, nil
	}
	if isTestID(pmID) {
		return MethodCard, nil
	}
	m, err := s.GetPaymentMethod(ctx, pmID)
	if err != nil {
		return "", err
	}
	if m.Type == MethodUSBankAccount {
		return MethodUSBankAccount, nil
	}
	return MethodCard, nil
}

// AttachPaymentMethod saves pmID on customerID. With a Stripe test ID Stripe
// (and the sandbox) attach a fresh pm_… copy; the returned Method.ID is the
// one to store.
func (s *Stripe) AttachPaymentMethod(ctx context.Context, pmID, customerID, idempotencyKey string) (*Method, error) {
	p := &stripe.PaymentMethodAttachParams{Customer: stripe.String(customerID)}
	p.Context = ctx
	setKey(&p.Params, idempotencyKey)
	pm, err := s.api.PaymentMethods.Attach(pmID, p)
	if err != nil {
		return nil, mapError("attach payment method", err)
	}
	m := methodFrom(pm)
	return &m, nil
}

// DetachPaymentMethod removes a saved method from its customer; Stripe will
// not let it be used again.
func (s *Stripe) DetachPaymentMethod(ctx context.Context, pmID string) error {
	p := &stripe.PaymentMethodDetachParams{}
	p.Context = ctx
	if _, err := s.api.PaymentMethods.Detach(pmID, p); err != nil {
		return mapError("detach payment method", err)
	}
	return nil
}

// GetPaymentMethod reads a method's display details.
func (s *Stripe) GetPaymentMethod(ctx context.Context, pmID string) (*Method, error) {
	p := &stripe.PaymentMethodParams{}
	p.Context = ctx
	pm, err := s.api.PaymentMethods.Get(pmID, p)
	if err != nil {
		return nil, mapError("get payment method", err)
	}
	m := methodFrom(pm)
	return &m, nil
}

// methodFrom reduces a PaymentMethod to its display details.
func methodFrom(pm *stripe.PaymentMethod) Method {
	m := Method{ID: pm.ID, Type: string(pm.Type)}
	if c := pm.Card; c != nil {
		m.Brand = string(c.Brand)
		m.Last4 = c.Last4
		m.ExpMonth = int(c.ExpMonth)
		m.ExpYear = int(c.ExpYear)
	}
	if b := pm.USBankAccount; b != nil {
		m.BankName = b.BankName
		m.Last4 = b.Last4
	}
	if bd := pm.BillingDetails; bd != nil {
		m.CardholderName = bd.Name
		if bd.Address != nil {
			m.BillingZIP = bd.Address.PostalCode
		}
	}
	return m
}
