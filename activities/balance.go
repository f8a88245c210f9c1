package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/payments"
	"github.com/billflow/billflow/store"
)

// ErrTypeBalanceChanged says the client's balance moved since they reviewed it.
const ErrTypeBalanceChanged = "BalanceChanged"

// Allocation is the part of a balance payment applied to one invoice.
type Allocation struct {
	InvoiceID string
	PaymentID string
	Amount    int64
}

// ChargeBalanceInput is one charge for a client's whole balance.
type ChargeBalanceInput struct {
	BalancePaymentID     string
	PracticeID           string
	ClientID             string
	Currency             string
	Total                int64
	InvoiceIDs           []string // oldest first, as reviewed
	PaymentMethodID      string
	SavedPaymentMethodID string
	SaveCard             bool
	PayerName            string
	BillingZIP           string
	ReturnURL            string
}

// ChargeBalanceResult is the charge and how it was applied.
type ChargeBalanceResult struct {
	ChargeResult
	Allocations []Allocation
}

// ChargeBalance charges the client's entire balance once (the balance
// payment ID is the idempotency key) and records one payment per invoice,
// oldest invoice first.
func (a *Activities) ChargeBalance(ctx context.Context, in *ChargeBalanceInput) (*ChargeBalanceResult, error) {
	client, err := a.Store.GetClient(ctx, in.PracticeID, in.ClientID)
	if err != nil {
		return nil, err
	}
	var allocs []Allocation
	if done, err := a.Store.PaymentsOfBalance(ctx, in.BalancePaymentID); err != nil {
		return nil, err
	} else if len(done) > 0 {
		// A retry after the payments were recorded.
		res := &ChargeBalanceResult{ChargeResult: ChargeResult{IntentID: done[0].ProcessorIntentID, Status: done[0].Status,
			MethodLabel: MethodLabel(done[0].MethodType, done[0].Brand, done[0].Last4, done[0].BankName)}}
		for _, p := range done {
			res.Allocations = append(res.Allocations, Allocation{InvoiceID: p.InvoiceID, PaymentID: p.ID, Amount: p.Amount})
		}
		return res, nil
	}
	// Under the client's payment lease from reading the balance until its
	// payments are recorded: no invoice payment slips in between.
	unlock, err := a.lockClientPayments(ctx, in.ClientID, in.BalancePaymentID, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	open, err := a.Store.OpenInvoicesOldestFirst(ctx, in.ClientID)
	if err != nil {
		return nil, err
	}
	var total int64
	for i, inv := range open {
		if inv.Currency != in.Currency {
			continue
		}
		total += inv.AmountDue
		allocs = append(allocs, Allocation{InvoiceID: inv.ID, PaymentID: fmt.Sprintf("%s_%d", in.BalancePaymentID, i+1), Amount: inv.AmountDue})
	}
	if total != in.Total {
		return nil, temporal.NewNonRetryableApplicationError(
			"the balance changed since it was shown; review it and pay again", ErrTypeBalanceChanged, nil)
	}
	pmID, offSession := in.PaymentMethodID, false
	if in.SavedPaymentMethodID != "" {
		saved, err := a.Store.GetPaymentMethod(ctx, client.ID, in.SavedPaymentMethodID)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError("that saved payment method is not available", ErrTypeGateway, err)
		}
		pmID, offSession = saved.ProcessorPMID, true
	}
	var customerID string
	if in.SaveCard || in.SavedPaymentMethodID != "" {
		if customerID, err = a.ensureCustomer(ctx, client); err != nil {
			return nil, err
		}
	}
	var res *payments.ChargeResult
	if activity.GetInfo(ctx).Attempt > 1 {
		if res, err = a.Gateway.FindPaymentIntent(ctx, in.BalancePaymentID); err != nil {
			return nil, gatewayErr("find payment intent", err)
		}
	}
	if res == nil {
		if err := a.supersedeAwaitingAction(ctx, in.ClientID, "", ErrTypeBalanceChanged); err != nil {
			return nil, err
		}
		res, err = a.Gateway.Charge(ctx, payments.ChargeRequest{IdempotencyKey: in.BalancePaymentID, Amount: in.Total,
			Currency: in.Currency, CustomerID: customerID, PaymentMethodID: pmID, OffSession: offSession,
			SaveCard: in.SaveCard && in.SavedPaymentMethodID == "", PayerName: in.PayerName, BillingZIP: in.BillingZIP,
			Description: fmt.Sprintf("Balance of %d invoices", len(allocs)), ReturnURL: in.ReturnURL,
			Metadata: map[string]string{"practice_id": in.PracticeID, "client_id": in.ClientID, "payment_id": in.BalancePaymentID,
				"balance_payment_id": in.BalancePaymentID}})
		if err != nil {
			return nil, gatewayErr("charge balance", err)
		}
	}
	out := &ChargeBalanceResult{ChargeResult: ChargeResult{PaymentID: in.BalancePaymentID, IntentID: res.PaymentIntentID,
		Status: string(res.Status), FailureCode: res.FailureCode, DeclineCode: res.DeclineCode, FailureMessage: res.FailureMessage,
		NextActionURL: res.NextActionURL, MethodLabel: MethodLabel(res.Method.Type, res.Method.Brand, res.Method.Last4, res.Method.BankName)}}
	if res.Status == payments.StatusFailed {
		return out, nil
	}
	for _, al := range allocs {
		inv, err := a.Store.GetInvoice(ctx, al.InvoiceID)
		if err != nil {
			return nil, err
		}
		if _, _, err := a.Store.RecordPayment(ctx, &store.Payment{ID: al.PaymentID, PracticeID: in.PracticeID, ClientID: in.ClientID,
			InvoiceID: al.InvoiceID, BalancePaymentID: in.BalancePaymentID, IdempotencyKey: al.PaymentID, Amount: al.Amount,
			Currency: inv.Currency, Status: string(res.Status), ProcessorIntentID: res.PaymentIntentID, MethodType: res.Method.Type,
			Brand: res.Method.Brand, Last4: res.Method.Last4, BankName: res.Method.BankName,
			PayerName: firstNonEmpty(in.PayerName, res.Method.CardholderName), BillingZIP: in.BillingZIP}); err != nil {
			return nil, err
		}
	}
	if in.SaveCard && in.SavedPaymentMethodID == "" && res.Method.ID != "" {
		if _, err := a.Store.SavePaymentMethod(ctx, &store.SavedPaymentMethod{PracticeID: in.PracticeID, ClientID: in.ClientID,
			ProcessorPMID: res.Method.ID, Type: res.Method.Type, Brand: res.Method.Brand, Last4: res.Method.Last4,
			ExpMonth: int32(res.Method.ExpMonth), ExpYear: int32(res.Method.ExpYear), BankName: res.Method.BankName,
			CardholderName: firstNonEmpty(in.PayerName, res.Method.CardholderName), BillingZIP: in.BillingZIP}); err != nil {
			return nil, err
		}
	}
	out.Allocations = allocs
	return out, nil
}

// RefreshInvoice reads an invoice's recorded status and amounts.
func (a *Activities) RefreshInvoice(ctx context.Context, in *InvoiceRef) (*InvoiceSnapshot, error) {
	inv, err := a.Store.GetInvoice(ctx, in.InvoiceID)
	if err != nil {
		return nil, err
	}
	s := snapshot(inv)
	return &s, nil
}

// BalanceReceiptInput names a balance payment to confirm.
type BalanceReceiptInput struct {
	BalancePaymentID string
	PracticeID       string
	ClientID         string
}

// SendBalanceReceipt emails one receipt listing every invoice a balance
// payment paid, once.
func (a *Activities) SendBalanceReceipt(ctx context.Context, in *BalanceReceiptInput) (*NotifyResult, error) {
	pays, err := a.Store.PaymentsOfBalance(ctx, in.BalancePaymentID)
	if err != nil {
		return nil, err
	}
	if len(pays) == 0 {
		return nil, temporal.NewNonRetryableApplicationError("no payments for "+in.BalancePaymentID, "NotFound", errors.New("none"))
	}
	b, err := a.loadBundle(ctx, pays[0].InvoiceID)
	if err != nil {
		return nil, err
	}
	data := mail.BalancePaymentReceipt{PracticeName: b.practice.Name, PracticeEmail: b.practice.Email, PracticePhone: b.practice.Phone,
		ClientName: b.client.Name, Currency: pays[0].Currency, MethodLabel: MethodLabel(pays[0].MethodType, pays[0].Brand, pays[0].Last4, pays[0].BankName),
		PaidAt: pays[0].CreatedAt}
	for _, p := range pays {
		inv, err := a.Store.GetInvoice(ctx, p.InvoiceID)
		if err != nil {
			return nil, err
		}
		data.Amount += p.Amount
		data.Invoices = append(data.Invoices, mail.PaidInvoice{Number: inv.Number, Amount: p.Amount})
	}
	sent, err := a.sendOnce(ctx, b, mail.KindBalancePaymentReceipt, []string{"balance", in.BalancePaymentID}, data, nil)
	return &NotifyResult{Emailed: sent}, err
}
