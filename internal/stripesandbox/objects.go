package stripesandbox

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// outcome is what a test PaymentMethod does when charged.
type outcome int

const (
	succeed       outcome = iota // the charge succeeds
	declineAlways                // declines, and cannot even be saved
	customerFail                 // saves fine, every charge declines
	authenticate                 // needs 3-D Secure (declines off-session)
	bankSucceed                  // processing, then succeeded
	bankFail                     // processing, then failed
)

// behaviour is a test PaymentMethod's scripted outcome.
type behaviour struct {
	outcome     outcome
	code        string
	declineCode string
	message     string
}

// template is one of Stripe's documented test PaymentMethod IDs.
type template struct {
	typ      string // card | us_bank_account
	brand    string
	last4    string
	funding  string
	bankName string
	behaviour
}

const (
	genericDecline = "Your card was declined."
	expYear        = 2034
	expMonth       = 12
)

func card(brand, last4 string, b behaviour) template {
	return template{typ: "card", brand: brand, last4: last4, funding: "credit", behaviour: b}
}

func bank(last4 string, b behaviour) template {
	return template{typ: "us_bank_account", last4: last4, bankName: "STRIPE TEST BANK", behaviour: b}
}

func decline(code, declineCode, message string) behaviour {
	return behaviour{outcome: declineAlways, code: code, declineCode: declineCode, message: message}
}

// templates are the test IDs the sandbox honours, with Stripe's test card
// numbers' brands and last four digits.
var templates = map[string]template{
	"pm_card_visa":       card("visa", "4242", behaviour{}),
	"pm_card_visa_debit": func() template { t := card("visa", "5556", behaviour{}); t.funding = "debit"; return t }(),
	"pm_card_mastercard": card("mastercard", "4444", behaviour{}),
	"pm_card_amex":       card("amex", "8431", behaviour{}),
	"pm_card_discover":   card("discover", "1117", behaviour{}),

	"pm_card_chargeDeclined":                       card("visa", "0002", decline("card_declined", "generic_decline", genericDecline)),
	"pm_card_visa_chargeDeclined":                  card("visa", "0002", decline("card_declined", "generic_decline", genericDecline)),
	"pm_card_chargeDeclinedInsufficientFunds":      card("visa", "9995", decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")),
	"pm_card_visa_chargeDeclinedInsufficientFunds": card("visa", "9995", decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")),
	"pm_card_chargeDeclinedLostCard":               card("visa", "9987", decline("card_declined", "lost_card", genericDecline)),
	"pm_card_visa_chargeDeclinedLostCard":          card("visa", "9987", decline("card_declined", "lost_card", genericDecline)),
	"pm_card_chargeDeclinedStolenCard":             card("visa", "9979", decline("card_declined", "stolen_card", genericDecline)),
	"pm_card_visa_chargeDeclinedStolenCard":        card("visa", "9979", decline("card_declined", "stolen_card", genericDecline)),
	"pm_card_chargeDeclinedExpiredCard":            card("visa", "0069", decline("expired_card", "expired_card", "Your card has expired.")),
	"pm_card_visa_chargeDeclinedExpiredCard":       card("visa", "0069", decline("expired_card", "expired_card", "Your card has expired.")),
	"pm_card_chargeDeclinedIncorrectCvc":           card("visa", "0127", decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.")),
	"pm_card_visa_chargeDeclinedIncorrectCvc":      card("visa", "0127", decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.")),
	"pm_card_chargeDeclinedProcessingError":        card("visa", "0119", decline("processing_error", "processing_error", "An error occurred while processing your card. Try again in a little bit.")),
	"pm_card_visa_chargeDeclinedProcessingError":   card("visa", "0119", decline("processing_error", "processing_error", "An error occurred while processing your card. Try again in a little bit.")),

	"pm_card_chargeCustomerFail": card("visa", "0341", behaviour{outcome: customerFail, code: "card_declined", declineCode: "generic_decline", message: genericDecline}),

	"pm_card_authenticationRequired":        card("visa", "3184", behaviour{outcome: authenticate}),
	"pm_card_authenticationRequiredOnSetup": card("visa", "3155", behaviour{outcome: authenticate}),
	"pm_card_threeDSecure2Required":         card("visa", "3220", behaviour{outcome: authenticate}),

	"pm_usBankAccount":                   bank("6789", behaviour{outcome: bankSucceed}),
	"pm_usBankAccount_success":           bank("6789", behaviour{outcome: bankSucceed}),
	"pm_usBankAccount_insufficientFunds": bank("2227", behaviour{outcome: bankFail, code: "insufficient_funds", message: "The customer's account has insufficient funds to cover this payment."}),
	"pm_usBankAccount_accountClosed":     bank("1113", behaviour{outcome: bankFail, code: "account_closed", message: "The customer's bank account has been closed."}),
}

type customer struct {
	ID, Email, Name, Description, Phone string
	Metadata                            map[string]string
	Created                             int64
}

type paymentMethod struct {
	ID       string
	tmpl     template
	Customer string
	Created  int64
	Metadata map[string]string
	// consumed is set when a method was used without being saved, or was
	// detached: Stripe refuses to use it again.
	consumed bool
	// mandate is set once a bank debit was confirmed with mandate_data.
	mandate bool
}

type paymentIntent struct {
	ID, Status, Currency, Customer, PaymentMethod, Description string
	ReturnURL, SetupFutureUsage, ClientSecret, LatestCharge    string
	IdempotencyKey                                             string
	Amount                                                     int64
	OffSession                                                 bool
	Metadata                                                   map[string]string
	PaymentMethodTypes                                         []string
	LastError                                                  *apiError
	NextActionURL                                              string
	Created                                                    int64
}

type charge struct {
	ID, PaymentIntent, PaymentMethod, Customer, Status, Currency string
	FailureCode, FailureMessage                                  string
	Amount, AmountRefunded                                       int64
	Metadata                                                     map[string]string
	Refunds                                                      []string
	Created                                                      int64
}

type refund struct {
	ID, Charge, PaymentIntent, Status, Reason, Currency, IdempotencyKey string
	Amount                                                              int64
	Metadata                                                            map[string]string
	Created                                                             int64
}

// apiError is Stripe's error object, used both in error responses and as a
// PaymentIntent's last_payment_error.
type apiError struct {
	Type          string         `json:"type"`
	Code          string         `json:"code,omitempty"`
	DeclineCode   string         `json:"decline_code,omitempty"`
	Message       string         `json:"message"`
	Param         string         `json:"param,omitempty"`
	Charge        string         `json:"charge,omitempty"`
	DocURL        string         `json:"doc_url,omitempty"`
	PaymentIntent map[string]any `json:"payment_intent,omitempty"`
	PaymentMethod map[string]any `json:"payment_method,omitempty"`
}

func errBody(e *apiError) map[string]any { return map[string]any{"error": e} }

func invalid(code, param, msg string) *apiError {
	return &apiError{Type: "invalid_request_error", Code: code, Param: param, Message: msg}
}

func badRequest(code, param, msg string) response {
	return response{http.StatusBadRequest, errBody(invalid(code, param, msg))}
}

func notFound(kind, id, param string) response {
	return response{http.StatusNotFound, errBody(invalid("resource_missing", param, fmt.Sprintf("No such %s: '%s'", kind, id)))}
}

func now() int64 { return time.Now().Unix() }

// --- form helpers ---

// checkParams rejects parameters the endpoint does not know, as Stripe does.
func checkParams(form url.Values, allowed ...string) *response {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for k := range form {
		top := k
		if i := strings.IndexByte(k, '['); i >= 0 {
			top = k[:i]
		}
		if !ok[top] {
			r := badRequest("parameter_unknown", k, fmt.Sprintf("Received unknown parameter: %s", k))
			return &r
		}
	}
	return nil
}

// list reads an array parameter sent as name[0]=a&name[1]=b or name[]=a.
func list(form url.Values, name string) []string {
	type item struct {
		idx int
		v   string
	}
	var items []item
	for k, vs := range form {
		if k == name+"[]" {
			for _, v := range vs {
				items = append(items, item{1 << 30, v})
			}
			continue
		}
		if !strings.HasPrefix(k, name+"[") || !strings.HasSuffix(k, "]") {
			continue
		}
		n, err := strconv.Atoi(k[len(name)+1 : len(k)-1])
		if err != nil {
			continue
		}
		for _, v := range vs {
			items = append(items, item{n, v})
		}
	}
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].idx < items[j-1].idx; j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// hash reads name[key]=value pairs, e.g. metadata.
func hash(form url.Values, name string) map[string]string {
	out := map[string]string{}
	for k, vs := range form {
		if strings.HasPrefix(k, name+"[") && strings.HasSuffix(k, "]") && len(vs) > 0 {
			out[k[len(name)+1:len(k)-1]] = vs[0]
		}
	}
	return out
}

func expands(form url.Values) map[string]bool {
	out := map[string]bool{}
	for _, e := range list(form, "expand") {
		out[e] = true
	}
	return out
}

// parseBool reads a Stripe boolean parameter.
func parseBool(form url.Values, name string) (bool, *response) {
	v := form.Get(name)
	switch v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	r := badRequest("parameter_invalid_boolean", name, fmt.Sprintf("Invalid boolean: %s", v))
	return false, &r
}

// positiveInt reads a required positive integer parameter.
func positiveInt(form url.Values, name string) (int64, *response) {
	v := form.Get(name)
	if v == "" {
		r := badRequest("parameter_missing", name, "Missing required param: "+name+".")
		return 0, &r
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		r := badRequest("parameter_invalid_integer", name, "Invalid positive integer")
		return 0, &r
	}
	return n, nil
}

// --- JSON renderings (Stripe's object shapes) ---

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (c *customer) json() map[string]any {
	return map[string]any{
		"id": c.ID, "object": "customer", "email": nullable(c.Email), "name": nullable(c.Name),
		"description": nullable(c.Description), "phone": nullable(c.Phone), "metadata": c.Metadata,
		"created": c.Created, "livemode": false, "balance": 0, "delinquent": false,
		"invoice_settings": map[string]any{"default_payment_method": nil},
	}
}

func (pm *paymentMethod) json() map[string]any {
	t := pm.tmpl
	out := map[string]any{
		"id": pm.ID, "object": "payment_method", "type": t.typ, "customer": nullable(pm.Customer),
		"created": pm.Created, "livemode": false, "metadata": pm.Metadata,
		"billing_details": map[string]any{"name": nil, "email": nil, "phone": nil,
			"address": map[string]any{"city": nil, "country": nil, "line1": nil, "line2": nil, "postal_code": nil, "state": nil}},
	}
	if t.typ == "card" {
		out["card"] = map[string]any{
			"brand": t.brand, "display_brand": t.brand, "last4": t.last4, "exp_month": expMonth, "exp_year": expYear,
			"funding": t.funding, "country": "US", "fingerprint": "sandbox" + t.last4,
			"checks":               map[string]any{"address_line1_check": nil, "address_postal_code_check": nil, "cvc_check": "pass"},
			"three_d_secure_usage": map[string]any{"supported": true}, "wallet": nil,
		}
	} else {
		out["us_bank_account"] = map[string]any{
			"bank_name": t.bankName, "last4": t.last4, "account_type": "checking", "account_holder_type": "individual",
			"routing_number": "110000000", "fingerprint": "sandbox" + t.last4, "networks": map[string]any{"preferred": "ach", "supported": []string{"ach"}},
		}
	}
	return out
}

// intentJSON renders a PaymentIntent; expandPM inlines its payment_method.
func (s *Sandbox) intentJSON(pi *paymentIntent, expandPM bool) map[string]any {
	out := map[string]any{
		"id": pi.ID, "object": "payment_intent", "amount": pi.Amount, "amount_capturable": 0,
		"amount_received": 0, "currency": pi.Currency, "customer": nullable(pi.Customer),
		"description": nullable(pi.Description), "metadata": pi.Metadata, "status": pi.Status,
		"client_secret": pi.ClientSecret, "capture_method": "automatic", "confirmation_method": "automatic",
		"created": pi.Created, "livemode": false, "latest_charge": nullable(pi.LatestCharge),
		"payment_method_types": pi.PaymentMethodTypes, "setup_future_usage": nullable(pi.SetupFutureUsage),
		"last_payment_error": nil, "next_action": nil, "payment_method": nullable(pi.PaymentMethod),
		"canceled_at": nil, "cancellation_reason": nil,
	}
	if pi.Status == "succeeded" {
		out["amount_received"] = pi.Amount
	}
	if pi.LastError != nil {
		out["last_payment_error"] = pi.LastError
	}
	if pi.Status == "requires_action" {
		out["next_action"] = map[string]any{
			"type":            "redirect_to_url",
			"redirect_to_url": map[string]any{"url": pi.NextActionURL, "return_url": nullable(pi.ReturnURL)},
		}
	}
	if expandPM {
		if pm := s.methods[pi.PaymentMethod]; pm != nil {
			out["payment_method"] = pm.json()
		}
	}
	return out
}

func (s *Sandbox) chargeJSON(ch *charge) map[string]any {
	refunds := make([]map[string]any, 0, len(ch.Refunds))
	for i := len(ch.Refunds) - 1; i >= 0; i-- {
		refunds = append(refunds, s.refunds[ch.Refunds[i]].json())
	}
	return map[string]any{
		"id": ch.ID, "object": "charge", "amount": ch.Amount, "amount_captured": capturedAmount(ch),
		"amount_refunded": ch.AmountRefunded, "currency": ch.Currency, "customer": nullable(ch.Customer),
		"payment_intent": ch.PaymentIntent, "payment_method": ch.PaymentMethod, "status": ch.Status,
		"paid": ch.Status == "succeeded", "captured": ch.Status == "succeeded", "refunded": ch.AmountRefunded > 0 && ch.AmountRefunded == ch.Amount,
		"failure_code": nullable(ch.FailureCode), "failure_message": nullable(ch.FailureMessage),
		"metadata": ch.Metadata, "created": ch.Created, "livemode": false,
		"refunds": map[string]any{"object": "list", "data": refunds, "has_more": false, "url": "/v1/charges/" + ch.ID + "/refunds"},
	}
}

func capturedAmount(ch *charge) int64 {
	if ch.Status == "succeeded" {
		return ch.Amount
	}
	return 0
}

func (r *refund) json() map[string]any {
	return map[string]any{
		"id": r.ID, "object": "refund", "amount": r.Amount, "charge": r.Charge, "payment_intent": r.PaymentIntent,
		"currency": r.Currency, "status": r.Status, "reason": nullable(r.Reason), "metadata": r.Metadata,
		"created": r.Created,
	}
}
