package mail

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/templates"
)

// Kind names one kind of email. It is also the value of the KindHeader
// header, so the mail catcher and logs can tell emails apart without
// reading their (private) content.
type Kind string

// The kinds of email billflow sends; each has its data struct of the same name.
const (
	KindInvoiceIssued         Kind = "invoice_issued"
	KindPaymentReceived       Kind = "payment_received"
	KindReminder              Kind = "reminder"
	KindRefundNotice          Kind = "refund_notice"
	KindStatementReady        Kind = "statement_ready"
	KindBalancePaymentReceipt Kind = "balance_payment_receipt"
	KindPaymentFailed         Kind = "payment_failed"
)

// Kinds lists every Kind, in a stable order (tests and previews iterate it).
var Kinds = []Kind{
	KindInvoiceIssued, KindPaymentReceived, KindReminder,
	KindRefundNotice, KindStatementReady, KindBalancePaymentReceipt, KindPaymentFailed,
}

// KindHeader is the header that carries an email's Kind.
const KindHeader = "X-Billflow-Kind"

// DateLayout is how dates read in emails: "Dec 1, 2026".
const DateLayout = "Jan 2, 2006"

// Amounts below are int64 minor units of Currency (lower-case ISO code).
// Dates are calendar dates printed in their own location. URLs are full
// links built by the caller from PUBLIC_BASE_URL.

// InvoiceIssued tells the client about a new invoice. The caller attaches the PDF.
type InvoiceIssued struct {
	PracticeName  string
	PracticeEmail string // optional, shown as the contact address
	PracticePhone string // optional
	ClientName    string
	InvoiceNumber string
	Total         int64
	AmountDue     int64
	Currency      string
	DueDate       time.Time
	PayURL        string
	Memo          string // optional note from the practice
	// PartialPayments: the invoice may be paid in up to MaxInstallments
	// payments of at least MinimumPayment each (or whatever is left).
	PartialPayments bool
	MinimumPayment  int64
	MaxInstallments int
}

// PaymentReceived confirms a payment. Partial: the remaining balance and its
// pay link; full: "paid in full", and the caller attaches the receipt.
type PaymentReceived struct {
	PracticeName  string
	PracticeEmail string
	PracticePhone string
	ClientName    string
	InvoiceNumber string
	Amount        int64 // this payment
	AmountDue     int64 // what remains after it
	Currency      string
	Partial       bool
	PayURL        string    // link for the remaining balance; partial only
	MethodLabel   string    // e.g. "Visa •••• 4242"
	PayerName     string    // optional, when someone else paid
	PaidAt        time.Time // optional
}

// PaymentFailed tells the client a payment that was processing (a bank
// debit) did not go through: the amount is owed again, with a fresh link.
type PaymentFailed struct {
	PracticeName  string
	PracticeEmail string
	PracticePhone string
	ClientName    string
	InvoiceNumber string
	Amount        int64 // the payment that failed
	AmountDue     int64 // what is owed now
	Currency      string
	MethodLabel   string // e.g. "STRIPE TEST BANK •••• 6789"
	Reason        string // optional, the bank's or processor's message
	PayURL        string
}

// Reminder asks, politely, for an open invoice's remaining balance. It never
// mentions interest or late fees: billflow charges neither.
type Reminder struct {
	PracticeName  string
	PracticeEmail string
	PracticePhone string
	ClientName    string
	InvoiceNumber string
	Step          int // 1-based step of the practice's reminder policy
	Steps         int // number of steps in the policy
	AmountDue     int64
	Currency      string
	DueDate       time.Time
	DaysOverdue   int // negative before the due date, 0 on it
	PayURL        string
}

// RefundNotice tells the client money is on its way back.
type RefundNotice struct {
	PracticeName  string
	PracticeEmail string
	PracticePhone string
	ClientName    string
	InvoiceNumber string
	Amount        int64
	Currency      string
	Reason        string // optional, as the practitioner wrote it
	MethodLabel   string // where the refund goes, e.g. "Visa •••• 4242"
}

// StatementReady announces a statement for a period. The caller attaches the PDF.
type StatementReady struct {
	PracticeName   string
	PracticeEmail  string
	PracticePhone  string
	ClientName     string
	Currency       string
	From, To       time.Time
	ClosingBalance int64 // positive: owed; negative: a credit
	PortalURL      string
}

// PaidInvoice is one invoice settled by a balance payment.
type PaidInvoice struct {
	Number string
	Amount int64 // the part of the payment applied to this invoice
}

// BalancePaymentReceipt is one receipt for a balance payment that paid
// several invoices at once, instead of one email per invoice.
type BalancePaymentReceipt struct {
	PracticeName  string
	PracticeEmail string
	PracticePhone string
	ClientName    string
	Amount        int64
	Currency      string
	MethodLabel   string
	PaidAt        time.Time // optional
	Invoices      []PaidInvoice
	// ReceiptsAttached: the caller attached each paid invoice's receipt.
	ReceiptsAttached bool
}

// Compose renders one email of kind from data, which must be the matching
// struct (or a pointer to it): KindInvoiceIssued takes InvoiceIssued, and so
// on. It returns the subject and two real bodies, plain text and HTML
// (every user-supplied string escaped). Subjects carry amounts, invoice
// numbers and the practice's name, never anything about care.
func Compose(kind Kind, data any) (subject, text, html string, err error) {
	if err := loadTemplates(); err != nil {
		return "", "", "", err
	}
	subject, err = subjectFor(kind, data)
	if err != nil {
		return "", "", "", err
	}
	view := deref(data)
	var tb, hb bytes.Buffer
	if err := textTemplates[kind].ExecuteTemplate(&tb, string(kind)+".txt", view); err != nil {
		return "", "", "", fmt.Errorf("compose %s text: %w", kind, err)
	}
	if err := htmlTemplates[kind].ExecuteTemplate(&hb, "layout.html", view); err != nil {
		return "", "", "", fmt.Errorf("compose %s html: %w", kind, err)
	}
	return oneLine(subject), tb.String(), hb.String(), nil
}

// deref lets callers pass either a struct or a pointer to one.
func deref(data any) any {
	switch d := data.(type) {
	case *InvoiceIssued:
		return *d
	case *PaymentReceived:
		return *d
	case *Reminder:
		return *d
	case *RefundNotice:
		return *d
	case *StatementReady:
		return *d
	case *BalancePaymentReceipt:
		return *d
	case *PaymentFailed:
		return *d
	}
	return data
}

func subjectFor(kind Kind, data any) (string, error) {
	data = deref(data)
	mismatch := fmt.Errorf("compose %s: data is %T", kind, data)
	switch kind {
	case KindInvoiceIssued:
		d, ok := data.(InvoiceIssued)
		if !ok {
			return "", mismatch
		}
		return fmt.Sprintf("Invoice %s from %s: %s due %s", d.InvoiceNumber, d.PracticeName,
			money.Format(d.AmountDue, d.Currency), formatDate(d.DueDate)), nil
	case KindPaymentReceived:
		d, ok := data.(PaymentReceived)
		if !ok {
			return "", mismatch
		}
		if d.Partial && d.AmountDue > 0 {
			return fmt.Sprintf("Payment of %s received for invoice %s: %s remaining",
				money.Format(d.Amount, d.Currency), d.InvoiceNumber, money.Format(d.AmountDue, d.Currency)), nil
		}
		return fmt.Sprintf("Receipt from %s: invoice %s paid in full", d.PracticeName, d.InvoiceNumber), nil
	case KindReminder:
		d, ok := data.(Reminder)
		if !ok {
			return "", mismatch
		}
		amt := money.Format(d.AmountDue, d.Currency)
		switch {
		case d.DaysOverdue < 0:
			return fmt.Sprintf("Reminder: invoice %s from %s (%s) is due %s", d.InvoiceNumber, d.PracticeName, amt, formatDate(d.DueDate)), nil
		case d.DaysOverdue == 0:
			return fmt.Sprintf("Reminder: invoice %s from %s (%s) is due today", d.InvoiceNumber, d.PracticeName, amt), nil
		default:
			return fmt.Sprintf("Reminder: invoice %s from %s has a balance of %s", d.InvoiceNumber, d.PracticeName, amt), nil
		}
	case KindRefundNotice:
		d, ok := data.(RefundNotice)
		if !ok {
			return "", mismatch
		}
		return fmt.Sprintf("Refund of %s from %s for invoice %s", money.Format(d.Amount, d.Currency), d.PracticeName, d.InvoiceNumber), nil
	case KindStatementReady:
		d, ok := data.(StatementReady)
		if !ok {
			return "", mismatch
		}
		return fmt.Sprintf("Your statement from %s for %s – %s", d.PracticeName, formatDate(d.From), formatDate(d.To)), nil
	case KindBalancePaymentReceipt:
		d, ok := data.(BalancePaymentReceipt)
		if !ok {
			return "", mismatch
		}
		return fmt.Sprintf("Receipt from %s: payment of %s received", d.PracticeName, money.Format(d.Amount, d.Currency)), nil
	case KindPaymentFailed:
		d, ok := data.(PaymentFailed)
		if !ok {
			return "", mismatch
		}
		return fmt.Sprintf("Your payment of %s for invoice %s from %s did not go through",
			money.Format(d.Amount, d.Currency), d.InvoiceNumber, d.PracticeName), nil
	}
	return "", fmt.Errorf("compose: unknown email kind %q", kind)
}

// oneLine keeps user text (a practice name) from breaking the Subject header.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func formatDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(DateLayout)
}

// funcs are shared by the text and HTML templates.
var funcs = map[string]any{
	"money": money.Format,
	"date":  formatDate,
	"neg":   func(n int) int { return -n },
	"abs": func(n int64) int64 {
		if n < 0 {
			return -n
		}
		return n
	},
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict: odd number of arguments")
		}
		m := make(map[string]any, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
	"plural": func(n int, one, many string) string {
		if n == 1 || n == -1 {
			return one
		}
		return many
	},
}

var (
	loadOnce      sync.Once
	loadErr       error
	textTemplates map[Kind]*texttemplate.Template
	htmlTemplates map[Kind]*htmltemplate.Template
)

// loadTemplates parses every kind once: layout.html wraps <kind>.html, which
// defines "content"; layout.txt defines the shared "footer" for <kind>.txt.
func loadTemplates() error {
	loadOnce.Do(func() {
		sub, err := fs.Sub(templates.FS, "email")
		if err != nil {
			loadErr = err
			return
		}
		textTemplates = map[Kind]*texttemplate.Template{}
		htmlTemplates = map[Kind]*htmltemplate.Template{}
		for _, k := range Kinds {
			tt, err := texttemplate.New(string(k)).Funcs(funcs).ParseFS(sub, "layout.txt", string(k)+".txt")
			if err != nil {
				loadErr = fmt.Errorf("parse email template %s.txt: %w", k, err)
				return
			}
			ht, err := htmltemplate.New(string(k)).Funcs(funcs).ParseFS(sub, "layout.html", string(k)+".html")
			if err != nil {
				loadErr = fmt.Errorf("parse email template %s.html: %w", k, err)
				return
			}
			textTemplates[k], htmlTemplates[k] = tt, ht
		}
	})
	return loadErr
}
