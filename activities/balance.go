package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/store"
)

// ErrTypeBalanceChanged says the client's balance moved since they reviewed it.
const ErrTypeBalanceChanged = contract.ErrTypeBalanceChanged

// Allocation is the part of a balance payment applied to one invoice.
type Allocation = store.Allocation

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
	// Scope and IdempotencyKey name the request (the API's Idempotency-Key
	// and whose it is); RequestHash is what it asked, so the key can never
	// pay for something else.
	Scope          string
	IdempotencyKey string
	RequestHash    string
}

// ChargeBalanceResult is the charge and how it was applied.
type ChargeBalanceResult struct {
	ChargeResult
	Allocations []Allocation
}

// RefreshInvoice reads an invoice's recorded status and amounts.
func (a *Activities) RefreshInvoice(ctx context.Context, in *InvoiceRef) (*InvoiceSnapshot, error) {
	inv, err := a.Store.GetInvoiceRow(ctx, in.InvoiceID)
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
	var att []mail.Attachment
	for _, p := range pays {
		inv, err := a.Store.GetInvoiceRow(ctx, p.InvoiceID)
		if err != nil {
			return nil, err
		}
		data.Amount += p.Amount
		data.Invoices = append(data.Invoices, mail.PaidInvoice{Number: inv.Number, Amount: p.Amount})
		if inv.AmountDue > 0 {
			continue
		}
		// Each invoice it paid off has become a receipt: attach them, as a
		// single invoice's payment email does. The invoice's own workflow
		// renders the same bytes, so the document is stored once.
		ib, err := a.loadBundle(ctx, p.InvoiceID)
		if err != nil {
			return nil, err
		}
		_, pdfBytes, err := a.renderInvoiceDoc(ctx, ib, "receipt", "")
		if err != nil {
			return nil, err
		}
		att = append(att, pdfAttachment("Receipt "+inv.Number+".pdf", pdfBytes)...)
	}
	data.ReceiptsAttached = len(att) > 0
	sent, err := a.sendOnce(ctx, b, mail.KindBalancePaymentReceipt, []string{"balance", in.BalancePaymentID}, data, att)
	return &NotifyResult{Emailed: sent}, err
}
