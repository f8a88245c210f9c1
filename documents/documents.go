// Package documents turns plain view models of invoices, receipts, statements
// and superbills into the HTML that package pdf prints. It knows nothing of the
// database: activities load the data, fill these structs, and render.
//
// Templates live in templates/docs and run through html/template, so every
// piece of user text (names, descriptions, memos) is escaped, and a URL that is
// not http(s) never becomes a link. The HTML needs nothing from the network:
// styles are inline, fonts are the system's, and the logo is a data: URI.
package documents

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/templates"
)

// Practice is the issuer printed at the top of every document.
type Practice struct {
	Name         string
	LogoDataURI  string   // "data:image/png;base64,…" or ""; anything else is refused
	AddressLines []string // e.g. {"12 Elm St, Suite 4", "Portland, OR 97201"}
	Phone        string
	Email        string
	Website      string

	// Provider details, printed on superbills.
	ProviderName  string
	Credentials   string // e.g. "LCSW"
	NPI           string
	TaxID         string
	LicenseNumber string
	LicenseState  string

	// Paper is the practice's paper size, "letter" or "a4", for pdf.PageOptions.
	Paper string
}

// Client is the billed person (the patient on a superbill).
type Client struct {
	Name              string
	Email             string
	DateOfBirth       string // as the practice records it, e.g. "1988-04-12"
	AddressLines      []string
	InsurancePayer    string
	InsuranceMemberID string
}

// Item is one invoice line, usually one session.
type Item struct {
	ServiceDate    time.Time
	Description    string
	CPTCode        string
	Modifiers      []string
	Units          int64
	UnitAmount     int64
	Amount         int64 // 0 means Units × UnitAmount
	DiagnosisCodes []string
	PlaceOfService string
}

// Payment is one payment towards an invoice.
type Payment struct {
	Date        time.Time
	MethodLabel string // "Visa •••• 4242" or "Bank •••• 6789"
	PayerName   string
	Amount      int64
	Status      string // "succeeded", "processing", …
	Reference   string // e.g. the payment ID, optional
}

// Refund is money returned to the client.
type Refund struct {
	Date   time.Time
	Amount int64
	Reason string
}

// Invoice is an invoice, or a receipt once paid.
type Invoice struct {
	Practice Practice
	Client   Client

	Number    string
	Currency  string
	Status    string
	IssueDate time.Time
	DueDate   time.Time
	Items     []Item

	Subtotal       int64
	Total          int64
	AmountPaid     int64
	AmountRefunded int64
	AmountDue      int64

	PayURL       string // the signed pay link; printed only while something is due
	PartialTerms string // "" when partial payments are off, else e.g. "Pay in up to 2 installments; minimum $50.00"
	Memo         string

	Payments []Payment
	Refunds  []Refund
}

// StatementLine is one dated entry of a client's account.
type StatementLine struct {
	Date        time.Time
	Kind        string // "invoice", "payment" or "refund"
	Reference   string // invoice number or payment reference
	Description string
	Amount      int64 // what the entry adds to the balance: charges positive, payments negative
	Balance     int64 // running balance after the entry; StatementHTML computes it
}

// Statement is a client's account over a period.
type Statement struct {
	Practice       Practice
	Client         Client
	Currency       string
	From, To       time.Time
	OpeningBalance int64
	ClosingBalance int64 // must equal OpeningBalance plus the lines' amounts
	Lines          []StatementLine
}

// SuperbillLine is one billed service as an insurer reads it.
type SuperbillLine struct {
	ServiceDate    time.Time
	PlaceOfService string // CMS place-of-service code, e.g. "11" office, "10" telehealth at home
	CPTCode        string
	Modifiers      []string
	Description    string
	Units          int64
	DiagnosisCodes []string // ICD-10 codes of this line; printed as pointers (A, B, …)
	Fee            int64
	Paid           int64
}

// Superbill is the document a client sends to their insurer for
// out-of-network reimbursement.
type Superbill struct {
	Practice       Practice
	Client         Client
	Currency       string
	From, To       time.Time
	DiagnosisCodes []string // in pointer order; "" derives it from the lines in first-seen order
	Lines          []SuperbillLine
	TotalFee       int64 // 0 means the sum of the lines
	TotalPaid      int64 // 0 means the sum of the lines
	PaidInFull     bool
}

// ErrInvalid wraps every error about a view model that cannot be rendered.
var ErrInvalid = errors.New("documents: invalid document")

var tmpl = template.Must(template.New("docs").Funcs(template.FuncMap{
	"money": money.Format,
	"date":  formatDate,
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"cpt": func(code string, mods []string) string {
		if len(mods) == 0 {
			return code
		}
		return code + "-" + strings.Join(mods, "-")
	},
	"lineAmount": func(it Item) int64 {
		if it.Amount == 0 {
			return it.Units * it.UnitAmount
		}
		return it.Amount
	},
	"kindLabel": func(k string) string {
		switch k {
		case "invoice":
			return "Invoice"
		case "payment":
			return "Payment"
		case "refund":
			return "Refund"
		}
		return k
	},
	"neg": func(v int64) bool { return v < 0 },
}).ParseFS(templates.FS, "docs/*.html"))

func formatDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("Jan 2, 2006")
}

// logoRE accepts only base64 raster or SVG images; an img-loaded SVG can run
// no script and load nothing.
var logoRE = regexp.MustCompile(`^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}$`)

// header is what the shared practice header partial needs.
type header struct {
	Practice Practice
	Logo     template.URL
}

func newHeader(p Practice) (header, error) {
	h := header{Practice: p}
	if p.LogoDataURI != "" {
		if !logoRE.MatchString(p.LogoDataURI) {
			return h, fmt.Errorf("%w: practice logo must be a base64 data:image URI", ErrInvalid)
		}
		h.Logo = template.URL(p.LogoDataURI) // validated above
	}
	return h, nil
}

func execute(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		return nil, fmt.Errorf("documents: render %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// invoiceView is the template data of invoices and receipts.
type invoiceView struct {
	*Invoice
	Header   header
	PaidDate time.Time
}

// InvoiceHTML renders an invoice with what is due and how to pay it.
func InvoiceHTML(inv *Invoice) ([]byte, error) {
	if inv == nil {
		return nil, fmt.Errorf("%w: nil invoice", ErrInvalid)
	}
	h, err := newHeader(inv.Practice)
	if err != nil {
		return nil, err
	}
	return execute("invoice.html", invoiceView{Invoice: inv, Header: h})
}

// ReceiptHTML renders a paid invoice marked PAID, with each payment and refund.
func ReceiptHTML(inv *Invoice) ([]byte, error) {
	if inv == nil {
		return nil, fmt.Errorf("%w: nil invoice", ErrInvalid)
	}
	if inv.AmountDue > 0 {
		return nil, fmt.Errorf("%w: receipt of invoice %s with %s still due", ErrInvalid, inv.Number, money.Format(inv.AmountDue, inv.Currency))
	}
	h, err := newHeader(inv.Practice)
	if err != nil {
		return nil, err
	}
	v := invoiceView{Invoice: inv, Header: h}
	for _, p := range inv.Payments {
		if p.Date.After(v.PaidDate) {
			v.PaidDate = p.Date
		}
	}
	return execute("receipt.html", v)
}

// statementView is the template data of a statement.
type statementView struct {
	*Statement
	Header                    header
	Lines                     []StatementLine
	Charges, Paid, Refunded   int64
	HasCharges, HasRefundRows bool
}

// StatementHTML renders a statement. Lines print in date order (stable for
// equal dates) with a running balance computed from OpeningBalance; the result
// must land on ClosingBalance, or the statement is refused rather than sent
// with numbers that don't add up.
func StatementHTML(s *Statement) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil statement", ErrInvalid)
	}
	h, err := newHeader(s.Practice)
	if err != nil {
		return nil, err
	}
	v := statementView{Statement: s, Header: h, Lines: slices.Clone(s.Lines)}
	slices.SortStableFunc(v.Lines, func(a, b StatementLine) int { return a.Date.Compare(b.Date) })
	bal := s.OpeningBalance
	for i := range v.Lines {
		l := &v.Lines[i]
		bal += l.Amount
		l.Balance = bal
		switch l.Kind {
		case "invoice":
			v.Charges += l.Amount
		case "payment":
			v.Paid += -l.Amount
		case "refund":
			v.Refunded += l.Amount
			v.HasRefundRows = true
		default:
			return nil, fmt.Errorf("%w: statement line kind %q (want invoice, payment or refund)", ErrInvalid, l.Kind)
		}
	}
	if bal != s.ClosingBalance {
		return nil, fmt.Errorf("%w: statement lines add up to %s, closing balance says %s", ErrInvalid,
			money.Format(bal, s.Currency), money.Format(s.ClosingBalance, s.Currency))
	}
	return execute("statement.html", v)
}

// superbillLineView adds the diagnosis pointers to a line.
type superbillLineView struct {
	SuperbillLine
	Pointers string
}

type diagnosis struct {
	Pointer, Code string
}

// superbillView is the template data of a superbill.
type superbillView struct {
	*Superbill
	Header     header
	Diagnoses  []diagnosis
	Lines      []superbillLineView
	TotalFee   int64
	TotalPaid  int64
	BalanceDue int64
}

// pointerLetter gives CMS-1500 style pointers: A…Z, then AA, AB, ….
func pointerLetter(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return pointerLetter(i/26-1) + string(rune('A'+i%26))
}

// SuperbillHTML renders a superbill: provider and patient identification,
// diagnoses lettered A, B, C… with each line pointing at its own, fees and
// payments, a signature line, and a paid-in-full note when PaidInFull.
func SuperbillHTML(s *Superbill) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil superbill", ErrInvalid)
	}
	h, err := newHeader(s.Practice)
	if err != nil {
		return nil, err
	}
	codes := slices.Clone(s.DiagnosisCodes)
	if len(codes) == 0 {
		for _, l := range s.Lines {
			for _, c := range l.DiagnosisCodes {
				if !slices.Contains(codes, c) {
					codes = append(codes, c)
				}
			}
		}
	}
	ptr := make(map[string]string, len(codes))
	v := superbillView{Superbill: s, Header: h}
	for i, c := range codes {
		ptr[c] = pointerLetter(i)
		v.Diagnoses = append(v.Diagnoses, diagnosis{Pointer: ptr[c], Code: c})
	}
	for _, l := range s.Lines {
		var ps []string
		for _, c := range l.DiagnosisCodes {
			p, ok := ptr[c]
			if !ok {
				return nil, fmt.Errorf("%w: superbill line %s uses diagnosis %q missing from the diagnosis list", ErrInvalid, formatDate(l.ServiceDate), c)
			}
			ps = append(ps, p)
		}
		v.Lines = append(v.Lines, superbillLineView{SuperbillLine: l, Pointers: strings.Join(ps, ", ")})
		v.TotalFee += l.Fee
		v.TotalPaid += l.Paid
	}
	if s.TotalFee != 0 && s.TotalFee != v.TotalFee {
		return nil, fmt.Errorf("%w: superbill total fee %d differs from its lines' %d", ErrInvalid, s.TotalFee, v.TotalFee)
	}
	if s.TotalPaid != 0 && s.TotalPaid != v.TotalPaid {
		return nil, fmt.Errorf("%w: superbill total paid %d differs from its lines' %d", ErrInvalid, s.TotalPaid, v.TotalPaid)
	}
	v.BalanceDue = v.TotalFee - v.TotalPaid
	return execute("superbill.html", v)
}
