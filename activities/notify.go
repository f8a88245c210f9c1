package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/documents"
	"github.com/billflow/billflow/mail"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/paylink"
	"github.com/billflow/billflow/pdf"
	"github.com/billflow/billflow/store"
)

// ErrTypeEmailRejected marks an email the SMTP server refused for good.
const ErrTypeEmailRejected = contract.ErrTypeEmailRejected

// NotifyInput names what happened to an invoice that the client hears about.
type NotifyInput struct {
	InvoiceID string
	PaymentID string // payment received
	RefundID  string // refund notice
	// ReceiptOnly renders the receipt of a paid invoice without emailing:
	// a balance payment sends one receipt email for all its invoices.
	ReceiptOnly bool
}

// NotifyResult says what went out.
type NotifyResult struct {
	DocumentID string
	Emailed    bool
}

// practiceView and clientView map the read model to the document view models.
func practiceView(p *store.Practice) documents.Practice {
	return documents.Practice{Name: p.Name, LogoDataURI: p.LogoDataURI, AddressLines: p.AddressLines, Phone: p.Phone, Email: p.Email,
		ProviderName: p.ProviderName, Credentials: p.Credentials, NPI: p.NPI, TaxID: p.TaxID, LicenseNumber: p.LicenseNumber,
		LicenseState: p.LicenseState, Paper: p.Paper}
}

func clientView(c *store.Client) documents.Client {
	v := documents.Client{Name: c.Name, Email: c.Email}
	if c.DateOfBirth != nil {
		v.DateOfBirth = c.DateOfBirth.Format(time.DateOnly)
	}
	if a := c.Address; a != nil {
		for _, l := range []string{a.Line1, a.Line2, strings.TrimSpace(strings.Join([]string{a.City, a.State, a.PostalCode}, " "))} {
			if strings.TrimSpace(l) != "" {
				v.AddressLines = append(v.AddressLines, l)
			}
		}
	}
	if c.Insurance != nil {
		v.InsurancePayer, v.InsuranceMemberID = c.Insurance.Payer, c.Insurance.MemberID
	}
	return v
}

// invoiceBundle is everything one invoice's documents and emails need.
type invoiceBundle struct {
	inv      *store.Invoice
	practice *store.Practice
	client   *store.Client
	payments []*store.Payment
	refunds  []*store.Refund
}

func (a *Activities) loadBundle(ctx context.Context, invoiceID string) (*invoiceBundle, error) {
	b := &invoiceBundle{}
	var err error
	if b.inv, err = a.Store.GetInvoice(ctx, invoiceID); err != nil {
		return nil, err
	}
	if b.practice, err = a.Store.GetPractice(ctx, b.inv.PracticeID); err != nil {
		return nil, err
	}
	if b.client, err = a.Store.GetClient(ctx, b.inv.PracticeID, b.inv.ClientID); err != nil {
		return nil, err
	}
	if b.payments, err = a.Store.ListPayments(ctx, invoiceID); err != nil {
		return nil, err
	}
	if b.refunds, err = a.Store.ListRefunds(ctx, invoiceID); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *invoiceBundle) view(payURL string) *documents.Invoice {
	inv := b.inv
	v := &documents.Invoice{Practice: practiceView(b.practice), Client: clientView(b.client), Number: inv.Number, Currency: inv.Currency,
		Status: string(inv.Status), IssueDate: inv.IssueDate, DueDate: inv.DueDate, Subtotal: inv.Subtotal, Total: inv.Total,
		AmountPaid: inv.AmountPaid, AmountRefunded: inv.AmountRefunded, AmountDue: inv.AmountDue, Memo: inv.Memo}
	if inv.AmountDue > 0 {
		v.PayURL = payURL
	}
	if pp := inv.PartialPayments; pp.Enabled {
		v.PartialTerms = fmt.Sprintf("Pay in up to %d installments; minimum %s", pp.MaxInstallments, money.Format(inv.MinimumPayment(), inv.Currency))
	}
	for _, it := range inv.Items {
		v.Items = append(v.Items, documents.Item{ServiceDate: it.ServiceDate, Description: it.Description, CPTCode: it.CPTCode,
			Modifiers: it.Modifiers, Units: it.Units, UnitAmount: it.UnitAmount, Amount: it.Amount, DiagnosisCodes: it.DiagnosisCodes,
			PlaceOfService: it.PlaceOfService})
	}
	for _, p := range b.payments {
		if !p.Status.Taking() {
			continue
		}
		v.Payments = append(v.Payments, documents.Payment{Date: p.CreatedAt, MethodLabel: MethodLabel(p.MethodType, p.Brand, p.Last4, p.BankName),
			PayerName: p.PayerName, Amount: p.Amount, Status: string(p.Status), Reference: p.ID})
	}
	for _, r := range b.refunds {
		v.Refunds = append(v.Refunds, documents.Refund{Date: r.CreatedAt, Amount: r.Amount, Reason: r.Reason})
	}
	return v
}

// newPayLink issues a fresh signed link for the invoice's remaining balance.
func (a *Activities) newPayLink(ctx context.Context, b *invoiceBundle) (string, error) {
	exp := paylink.Expiry(b.inv.DueDate, int(b.practice.PayLinkDaysAfterDue))
	if now := a.now(); exp.Before(now.Add(7 * 24 * time.Hour)) {
		// A reminder after the due date still gets a link that works for a week.
		exp = now.Add(7 * 24 * time.Hour)
	}
	tok, err := paylink.New(a.PayLinkSecret, b.inv.ID, exp)
	if err != nil {
		return "", err
	}
	if err := a.Store.SavePayLink(ctx, b.inv.ID, paylink.Hash(tok), exp); err != nil {
		return "", err
	}
	return paylink.URL(a.PublicBaseURL, tok), nil
}

// renderInvoiceDoc prints the invoice (or the receipt once paid) and stores it once.
func (a *Activities) renderInvoiceDoc(ctx context.Context, b *invoiceBundle, kind, payURL string) (*store.Document, []byte, error) {
	v := b.view(payURL)
	var html []byte
	var err error
	if kind == "receipt" {
		html, err = documents.ReceiptHTML(v)
	} else {
		html, err = documents.InvoiceHTML(v)
	}
	if err != nil {
		return nil, nil, temporal.NewNonRetryableApplicationError("render "+kind, "RenderFailed", err)
	}
	pdfBytes, err := a.Renderer.Render(ctx, html, pdf.PageOptions{Paper: b.practice.Paper, Title: b.practice.Name + " · " + b.inv.Number})
	if err != nil {
		return nil, nil, fmt.Errorf("render %s pdf: %w", kind, err)
	}
	// The same invoice data prints the same bytes, so a re-render (a retried
	// activity, a second download) stores no second copy.
	at := b.inv.IssueDate
	if kind == "receipt" && b.inv.PaidAt != nil {
		at = *b.inv.PaidAt
	}
	pdfBytes = pdf.Stable(pdfBytes, at)
	doc, err := a.Store.SaveDocument(ctx, &store.Document{PracticeID: b.inv.PracticeID, ClientID: b.inv.ClientID, InvoiceID: b.inv.ID, Kind: kind}, pdfBytes)
	if err != nil {
		return nil, nil, err
	}
	return doc, pdfBytes, nil
}

// sendOnce sends one logical email about an invoice at most once; its
// Message-ID starts with the invoice ID.
func (a *Activities) sendOnce(ctx context.Context, b *invoiceBundle, kind mail.Kind, idParts []string, data any, att []mail.Attachment) (bool, error) {
	return a.deliverOnce(ctx, emailTo{
		MessageID:  mail.MessageID(a.mailDomain(), append([]string{b.inv.ID}, idParts...)...),
		PracticeID: b.inv.PracticeID, ClientID: b.inv.ClientID, InvoiceID: b.inv.ID,
		Practice: b.practice, Client: b.client, LogKey: "invoice_id", LogID: b.inv.ID,
	}, kind, data, att)
}

// emailTo is who one logical email goes to, and the row that records it.
type emailTo struct {
	MessageID                       string
	PracticeID, ClientID, InvoiceID string
	Practice                        *store.Practice
	Client                          *store.Client
	LogKey, LogID                   string // how the logs name what it is about
}

// deliverOnce sends one logical email at most once: its Message-ID is
// claimed in Postgres first, an email already sent is skipped, and a
// permanent SMTP rejection is recorded and not retried.
func (a *Activities) deliverOnce(ctx context.Context, e emailTo, kind mail.Kind, data any, att []mail.Attachment) (bool, error) {
	msgID := e.MessageID
	st, err := a.Store.ClaimEmail(ctx, msgID, e.PracticeID, e.ClientID, e.InvoiceID, string(kind))
	if err != nil {
		return false, err
	}
	if st != store.EmailSending {
		return false, nil
	}
	subject, text, html, err := mail.Compose(kind, data)
	if err != nil {
		return false, temporal.NewNonRetryableApplicationError("compose email", "ComposeFailed", err)
	}
	msg := &mail.Message{MessageID: msgID, FromName: e.Practice.Name, ReplyTo: e.Practice.Email, To: e.Client.Email,
		ToName: e.Client.Name, Subject: subject, Text: text, HTML: html, Attachments: att,
		Headers: map[string]string{mail.KindHeader: string(kind)}}
	if err := a.Mailer.Send(ctx, msg); err != nil {
		if errors.Is(err, mail.ErrPermanent) {
			if ferr := a.Store.FinishEmail(ctx, msgID, store.EmailRejected, err.Error()); ferr != nil {
				return false, ferr
			}
			a.log().Warn("email rejected", e.LogKey, e.LogID, "kind", kind)
			return false, nil
		}
		_ = a.Store.NoteEmailError(ctx, msgID, err.Error())
		return false, fmt.Errorf("send %s email: %w", kind, err)
	}
	// The server has the message: record it, retrying the write here rather
	// than letting a failed write make Temporal send the email again.
	var ferr error
	for i := 0; i < 5; i++ {
		if ferr = a.Store.FinishEmail(context.WithoutCancel(ctx), msgID, store.EmailSent, ""); ferr == nil {
			break
		}
		time.Sleep(time.Duration(i+1) * 200 * time.Millisecond)
	}
	if ferr != nil {
		a.log().Error("email sent but not recorded", e.LogKey, e.LogID, "kind", kind, "error", ferr)
	}
	a.log().Info("email sent", e.LogKey, e.LogID, "kind", kind)
	return true, nil
}

func (a *Activities) mailDomain() string {
	if a.MailDomain != "" {
		return a.MailDomain
	}
	return "billflow"
}

// maxInstallments is how many payments the invoice allows (2 when unset).
func maxInstallments(inv *store.Invoice) int {
	if n := int(inv.PartialPayments.MaxInstallments); n > 0 {
		return n
	}
	return 2
}

func pdfAttachment(name string, data []byte) []mail.Attachment {
	return []mail.Attachment{{Filename: name, ContentType: "application/pdf", Data: data}}
}

// IssueInvoice renders the invoice PDF and emails the client a Pay Invoice
// link with the PDF attached, once per in.Resend (the first email, then each
// resend the practice asks for).
func (a *Activities) IssueInvoice(ctx context.Context, in *InvoiceRef) (*NotifyResult, error) {
	b, err := a.loadBundle(ctx, in.InvoiceID)
	if err != nil {
		return nil, err
	}
	if b.inv.Status == store.StatusVoid {
		return &NotifyResult{}, nil
	}
	if in.Resend > 0 && b.inv.AmountDue == 0 {
		// Paid while the resend waited (out of an SMTP outage, say): the
		// receipt is what the client gets, not a bill.
		return &NotifyResult{}, nil
	}
	payURL, err := a.newPayLink(ctx, b)
	if err != nil {
		return nil, err
	}
	doc, pdfBytes, err := a.renderInvoiceDoc(ctx, b, "invoice", payURL)
	if err != nil {
		return nil, err
	}
	idParts := []string{"issued"}
	if in.Resend > 0 {
		idParts = []string{"resend", strconv.Itoa(in.Resend)}
	}
	sent, err := a.sendOnce(ctx, b, mail.KindInvoiceIssued, idParts, mail.InvoiceIssued{
		PracticeName: b.practice.Name, PracticeEmail: b.practice.Email, PracticePhone: b.practice.Phone, ClientName: b.client.Name,
		InvoiceNumber: b.inv.Number, Total: b.inv.Total, AmountDue: b.inv.AmountDue, Currency: b.inv.Currency, DueDate: b.inv.DueDate,
		PayURL: payURL, Memo: b.inv.Memo, PartialPayments: b.inv.PartialPayments.Enabled,
		MinimumPayment: max(b.inv.MinimumPayment(), money.MinimumCharge(b.inv.Currency)), MaxInstallments: maxInstallments(b.inv),
	}, pdfAttachment(b.inv.Number+".pdf", pdfBytes))
	if err != nil {
		return nil, err
	}
	return &NotifyResult{DocumentID: doc.ID, Emailed: sent}, nil
}

// NotifyPayment confirms a payment by email: a partial one with the remaining
// balance and a fresh link; a final one with the receipt rendered and attached;
// a failed one (a bank debit that bounced) with the balance owed again.
func (a *Activities) NotifyPayment(ctx context.Context, in *NotifyInput) (*NotifyResult, error) {
	b, err := a.loadBundle(ctx, in.InvoiceID)
	if err != nil {
		return nil, err
	}
	var pay *store.Payment
	for _, p := range b.payments {
		if p.ID == in.PaymentID {
			pay = p
		}
	}
	if pay == nil {
		return nil, temporal.NewNonRetryableApplicationError("no such payment "+in.PaymentID, "NotFound", nil)
	}
	if pay.Status == contract.PaymentFailed {
		// A bank debit that was processing came back failed: the amount is
		// owed again; tell the client, with a fresh link.
		fd := mail.PaymentFailed{PracticeName: b.practice.Name, PracticeEmail: b.practice.Email, PracticePhone: b.practice.Phone,
			ClientName: b.client.Name, InvoiceNumber: b.inv.Number, Amount: pay.Amount, AmountDue: b.inv.AmountDue, Currency: b.inv.Currency,
			MethodLabel: MethodLabel(pay.MethodType, pay.Brand, pay.Last4, pay.BankName), Reason: pay.FailureMessage}
		if b.inv.AmountDue > 0 && b.inv.Status != contract.InvoiceVoid {
			if fd.PayURL, err = a.newPayLink(ctx, b); err != nil {
				return nil, err
			}
		}
		sent, err := a.sendOnce(ctx, b, mail.KindPaymentFailed, []string{"payment", pay.ID, "failed"}, fd, nil)
		return &NotifyResult{Emailed: sent}, err
	}
	data := mail.PaymentReceived{PracticeName: b.practice.Name, PracticeEmail: b.practice.Email, PracticePhone: b.practice.Phone,
		ClientName: b.client.Name, InvoiceNumber: b.inv.Number, Amount: pay.Amount, AmountDue: b.inv.AmountDue, Currency: b.inv.Currency,
		MethodLabel: MethodLabel(pay.MethodType, pay.Brand, pay.Last4, pay.BankName), PayerName: pay.PayerName, PaidAt: pay.CreatedAt}
	res := &NotifyResult{}
	if in.ReceiptOnly {
		if b.inv.AmountDue == 0 {
			doc, _, err := a.renderInvoiceDoc(ctx, b, "receipt", "")
			if err != nil {
				return nil, err
			}
			res.DocumentID = doc.ID
		}
		return res, nil
	}
	var att []mail.Attachment
	if b.inv.AmountDue > 0 {
		data.Partial = true
		if data.PayURL, err = a.newPayLink(ctx, b); err != nil {
			return nil, err
		}
	} else {
		doc, pdfBytes, err := a.renderInvoiceDoc(ctx, b, "receipt", "")
		if err != nil {
			return nil, err
		}
		res.DocumentID = doc.ID
		att = pdfAttachment("Receipt "+b.inv.Number+".pdf", pdfBytes)
	}
	res.Emailed, err = a.sendOnce(ctx, b, mail.KindPaymentReceived, []string{"payment", pay.ID}, data, att)
	return res, err
}

// NotifyRefund tells the client a refund is on its way, once.
func (a *Activities) NotifyRefund(ctx context.Context, in *NotifyInput) (*NotifyResult, error) {
	b, err := a.loadBundle(ctx, in.InvoiceID)
	if err != nil {
		return nil, err
	}
	for _, r := range b.refunds {
		if r.ID != in.RefundID {
			continue
		}
		label := ""
		for _, p := range b.payments {
			if p.ID == r.PaymentID {
				label = MethodLabel(p.MethodType, p.Brand, p.Last4, p.BankName)
			}
		}
		sent, err := a.sendOnce(ctx, b, mail.KindRefundNotice, []string{"refund", r.ID}, mail.RefundNotice{PracticeName: b.practice.Name,
			PracticeEmail: b.practice.Email, PracticePhone: b.practice.Phone, ClientName: b.client.Name, InvoiceNumber: b.inv.Number,
			Amount: r.Amount, Currency: r.Currency, Reason: r.Reason, MethodLabel: label}, nil)
		return &NotifyResult{Emailed: sent}, err
	}
	return nil, temporal.NewNonRetryableApplicationError("no such refund "+in.RefundID, "NotFound", nil)
}
