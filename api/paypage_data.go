package api

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/cards"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/money"
	"github.com/billflow/billflow/store"
)

// testCards are the Stripe test PaymentMethods the sandbox selector offers,
// labelled as in Stripe's testing docs.
var testCards = []struct{ Value, Label string }{
	{"pm_card_visa", "Visa — succeeds (pm_card_visa)"},
	{"pm_card_mastercard", "Mastercard — succeeds (pm_card_mastercard)"},
	{"pm_card_amex", "American Express — succeeds (pm_card_amex)"},
	{"pm_card_chargeDeclined", "Generic decline (pm_card_chargeDeclined)"},
	{"pm_card_chargeDeclinedInsufficientFunds", "Insufficient funds decline (pm_card_chargeDeclinedInsufficientFunds)"},
	{"pm_card_authenticationRequired", "3D Secure required (pm_card_authenticationRequired)"},
	{"pm_usBankAccount", "US bank account — ACH Direct Debit (pm_usBankAccount)"},
}

func isTestCard(v string) bool {
	for _, c := range testCards {
		if c.Value == v {
			return true
		}
	}
	return false
}

// ---- page data ----

type practiceView struct {
	Name, Email, Phone string
	Address            []string
}

func practiceViewOf(p *store.Practice) *practiceView {
	return &practiceView{Name: p.Name, Email: p.Email, Phone: p.Phone, Address: p.AddressLines}
}

type itemView struct{ Date, Description, Amount string }

type notice struct{ Kind, Text string }

type savedView struct {
	ID, Label string
	Checked   bool
}

type optionView struct {
	Value, Label string
	Selected     bool
}

// formView is the pay form as rendered: what the payer chose last time is
// kept, except the payment method token.
type formView struct {
	Action, CSRF, Nonce, ScriptNonce  string
	Symbol                            string
	Exponent                          int
	FullFormatted                     string
	Partial, PartChosen               bool
	PartValue, MinMajor, MinFormatted string
	InstallmentsNote                  string
	Saved                             []savedView
	NewChosen                         bool
	TestMode, Elements                bool
	PublishableKey                    string
	TestCards                         []optionView
	Name, ZIP                         string
	SaveCard                          bool
	ButtonText                        string
	FullMinor                         int64
}

type pageData struct {
	Title    string
	Practice *practiceView

	// invoice review
	Number, StatusLabel, IssueDate, DueDate, Memo string
	Items                                         []itemView
	Total, Paid, Refunded, Processing, Due        string
	PaidInFull, ProcessingOnly, RefundedInFull    bool
	PartialTerms                                  string
	PDFURL, PDFLabel                              string
	Notice                                        *notice
	Error                                         string
	Form                                          *formView

	// results and messages
	Outcome, Amount, Heading, Text, BackURL string
}

// formInput is what the payer submitted, kept to re-render the form.
type formInput struct {
	choice, part, full, method, testCard, pmID, name, zip string
	saveCard                                              bool
}

func formInputOf(vals url.Values) *formInput {
	return &formInput{choice: vals.Get("amount_choice"), part: strings.TrimSpace(vals.Get("amount_part")), full: vals.Get("full_amount"),
		method: vals.Get("method"), testCard: vals.Get("test_card"), pmID: strings.TrimSpace(vals.Get("payment_method")),
		name: strings.TrimSpace(vals.Get("cardholder_name")), zip: strings.TrimSpace(vals.Get("billing_zip")),
		saveCard: vals.Get("save_card") == "1"}
}

// payPageData builds the review and, when the invoice can be paid, the form.
func (h *handlers) payPageData(c *gin.Context, pl *payLink, in *formInput) (*pageData, error) {
	ctx := c.Request.Context()
	inv := pl.Invoice
	cur := inv.Currency
	d := &pageData{Title: "Invoice " + inv.Number + " · " + pl.Practice.Name, Practice: practiceViewOf(pl.Practice),
		Number: inv.Number, IssueDate: inv.IssueDate.Format("Jan 2, 2006"), DueDate: inv.DueDate.Format("Jan 2, 2006"),
		Memo: inv.Memo, Total: money.Format(inv.Total, cur), Paid: money.Format(inv.AmountPaid, cur),
		Due: money.Format(inv.AmountDue, cur), StatusLabel: statusLabel(inv)}
	if inv.AmountRefunded > 0 {
		d.Refunded = money.Format(inv.AmountRefunded, cur)
	}
	if inv.AmountProcessing > 0 {
		d.Processing = money.Format(inv.AmountProcessing, cur)
	}
	for _, it := range inv.Items {
		d.Items = append(d.Items, itemView{Date: it.ServiceDate.Format("Jan 2, 2006"), Description: it.Description,
			Amount: money.Format(it.Amount, cur)})
	}
	d.PDFURL, d.PDFLabel = "/pay/"+pl.Token+"/pdf", "Download invoice (PDF)"
	d.PaidInFull = inv.AmountDue == 0 && inv.AmountProcessing == 0 && inv.Total > 0
	d.ProcessingOnly = inv.AmountDue == 0 && inv.AmountProcessing > 0
	if d.PaidInFull {
		d.PDFLabel = "Download receipt (PDF)"
		// A refunded invoice is not "paid in full": say where the money went.
		d.RefundedInFull = inv.Status == store.StatusRefunded
		return d, nil
	}
	if d.ProcessingOnly || inv.AmountDue <= 0 {
		return d, nil
	}

	pays, err := h.Store.ListPayments(ctx, inv.ID)
	if err != nil {
		return nil, err
	}
	used := 0
	for _, p := range pays {
		if p.Status == contract.PaymentSucceeded || p.Status == contract.PaymentProcessing {
			used++
		}
	}
	pp := inv.PartialPayments
	maxInst := int(pp.MaxInstallments)
	if maxInst <= 0 {
		maxInst = 2
	}
	minimum := max(inv.MinimumPayment(), money.MinimumCharge(cur))
	f := &formView{Action: pl.URL(), CSRF: h.csrfToken(pl.Token), Nonce: randomHex(16), ScriptNonce: randomHex(16),
		Symbol: currencySymbol(cur), Exponent: money.Exponent(cur), FullFormatted: money.Format(inv.AmountDue, cur),
		TestMode: h.testMode(), Elements: h.elements(), PublishableKey: h.Config.StripePublishableKey,
		FullMinor: inv.AmountDue}
	f.Partial = pp.Enabled && used+1 < maxInst && minimum < inv.AmountDue
	if pp.Enabled {
		d.PartialTerms = fmt.Sprintf("Partial payments are allowed on this invoice: up to %d payments, at least %s each (or the rest). No interest or late fees.",
			maxInst, money.Format(minimum, cur))
	}
	if f.Partial {
		f.MinMajor = majorString(minimum, cur)
		f.MinFormatted = money.Format(minimum, cur)
		if left := maxInst - used; left == 2 {
			f.InstallmentsNote = "After this payment, one more payment pays the rest."
		} else {
			f.InstallmentsNote = fmt.Sprintf("This invoice allows %d more payments, including this one.", left)
		}
	}
	if pl.Portal {
		saved, err := h.Cards.List(ctx, inv.ClientID)
		if err != nil {
			return nil, err
		}
		for _, m := range saved {
			f.Saved = append(f.Saved, savedView{ID: m.ID, Label: cards.Label(m.Type, m.Brand, m.Last4, m.BankName)})
		}
	}
	if in == nil {
		in = &formInput{choice: "full", testCard: "pm_card_visa"}
		if len(f.Saved) > 0 {
			in.method = "saved:" + f.Saved[0].ID
		}
		if f.Elements {
			in.testCard = ""
		}
	}
	f.PartChosen = f.Partial && in.choice == "part"
	f.PartValue = in.part
	f.Name, f.ZIP, f.SaveCard = in.name, in.zip, in.saveCard
	for i := range f.Saved {
		f.Saved[i].Checked = in.method == "saved:"+f.Saved[i].ID
	}
	f.NewChosen = in.method == "new" || in.method == ""
	for _, tc := range testCards {
		f.TestCards = append(f.TestCards, optionView{Value: tc.Value, Label: tc.Label, Selected: tc.Value == in.testCard})
	}
	f.ButtonText = "Pay " + f.FullFormatted
	if f.PartChosen {
		if amt, err := parseMajor(in.part, cur); err == nil {
			f.ButtonText = "Pay " + money.Format(amt, cur)
		} else {
			f.ButtonText = "Pay"
		}
	}
	d.Form = f
	return d, nil
}

func statusLabel(inv *store.Invoice) string {
	switch {
	case inv.Status == store.StatusVoid:
		return "Void"
	case inv.Status == store.StatusRefunded:
		return "Refunded"
	case inv.Status == store.StatusPartiallyRefunded:
		return "Partially refunded"
	case inv.AmountDue == 0 && inv.AmountProcessing > 0:
		return "Processing"
	case inv.AmountDue == 0 && inv.Total > 0:
		return "Paid"
	case inv.AmountPaid > 0 || inv.AmountProcessing > 0:
		return "Partially paid — " + money.Format(inv.AmountDue, inv.Currency) + " remaining"
	}
	return "Open"
}

// currencySymbol is what money.Format puts before the digits ("$", "CHF ").
func currencySymbol(cur string) string {
	s := money.Format(0, cur)
	if i := strings.IndexAny(s, "0123456789"); i >= 0 {
		return s[:i]
	}
	return ""
}

// majorString writes minor units as a plain decimal ("50.00"), for inputs.
func majorString(amount int64, cur string) string {
	exp := money.Exponent(cur)
	if exp == 0 {
		return strconv.FormatInt(amount, 10)
	}
	div := int64(math.Pow10(exp))
	return fmt.Sprintf("%d.%0*d", amount/div, exp, amount%div)
}

// parseMajor reads an amount typed in major units ("90.50", "1,200",
// "$75") into minor units with integer arithmetic only.
func parseMajor(s, cur string) (int64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSpace(strings.TrimPrefix(s, strings.TrimSpace(currencySymbol(cur))))
	s = strings.ReplaceAll(s, ",", "")
	if s == "" {
		return 0, errors.New("enter the amount you want to pay")
	}
	exp := money.Exponent(cur)
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" {
		whole = "0"
	}
	if hasDot && exp == 0 {
		return 0, fmt.Errorf("%s has no decimal places: enter a whole amount", strings.ToUpper(cur))
	}
	if len(frac) > exp {
		return 0, fmt.Errorf("enter the amount with at most %d decimal places", exp)
	}
	if hasDot && frac == "" {
		return 0, errors.New("enter the amount as a number, like " + majorString(9050, cur))
	}
	if !allDigits(whole) || !allDigits(frac) {
		return 0, errors.New("enter the amount as a number, like " + majorString(9050, cur))
	}
	if len(strings.TrimLeft(whole, "0")) > 9 {
		return 0, errors.New("that amount is too large")
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, errors.New("that amount is too large")
	}
	frac += strings.Repeat("0", exp-len(frac))
	var f int64
	if frac != "" {
		if f, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return 0, errors.New("enter the amount as a number")
		}
	}
	mul := int64(1)
	for range exp {
		mul *= 10
	}
	amt := w*mul + f
	if amt > maxAmount {
		return 0, errors.New("that amount is too large")
	}
	return amt, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
