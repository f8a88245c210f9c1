package stripesandbox

import (
	"fmt"
	htmltemplate "html/template"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/billflow/billflow/money"
)

// All handlers below run with s.mu held (see execute).

func (s *Sandbox) createCustomer(form url.Values) response {
	if r := checkParams(form, "email", "name", "description", "phone", "metadata", "expand"); r != nil {
		return *r
	}
	c := &customer{ID: newID("cus_"), Email: form.Get("email"), Name: form.Get("name"), Description: form.Get("description"),
		Phone: form.Get("phone"), Metadata: hash(form, "metadata"), Created: now()}
	s.customers[c.ID] = c
	return response{http.StatusOK, c.json()}
}

func (s *Sandbox) getCustomer(id string, form url.Values) response {
	if r := checkParams(form, "expand"); r != nil {
		return *r
	}
	c := s.customers[id]
	if c == nil {
		return notFound("customer", id, "id")
	}
	return response{http.StatusOK, c.json()}
}

// lookupMethod finds a stored PaymentMethod or a test template (not yet
// materialized). It returns a 400 response when neither exists.
func (s *Sandbox) lookupMethod(id, param string) (*paymentMethod, *template, *response) {
	if pm := s.methods[id]; pm != nil {
		return pm, nil, nil
	}
	if t, ok := templates[id]; ok {
		return nil, &t, nil
	}
	r := badRequest("resource_missing", param, fmt.Sprintf("No such PaymentMethod: '%s'", id))
	return nil, nil, &r
}

func (s *Sandbox) materialize(t template) *paymentMethod {
	pm := &paymentMethod{ID: newID("pm_"), tmpl: t, Created: now(), Metadata: map[string]string{}}
	s.methods[pm.ID] = pm
	return pm
}

var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

func (s *Sandbox) createPaymentIntent(r *http.Request, form url.Values, key string) response {
	if resp := checkParams(form, "amount", "currency", "customer", "payment_method", "confirm", "off_session",
		"setup_future_usage", "description", "metadata", "return_url", "payment_method_types", "mandate_data",
		"expand", "receipt_email", "capture_method", "statement_descriptor_suffix", "error_on_requires_action"); resp != nil {
		return *resp
	}
	amount, resp := positiveInt(form, "amount")
	if resp != nil {
		return *resp
	}
	cur := form.Get("currency")
	if cur == "" {
		return badRequest("parameter_missing", "currency", "Missing required param: currency.")
	}
	if !currencyRE.MatchString(cur) || !money.Supported(cur) {
		return badRequest("parameter_invalid", "currency", fmt.Sprintf("Invalid currency: %s.", cur))
	}
	if min := money.MinimumCharge(cur); amount < min {
		return badRequest("amount_too_small", "amount", fmt.Sprintf("Amount must be at least %s %s", money.Format(min, cur), cur))
	}
	if amount > 99999999 {
		return badRequest("amount_too_large", "amount", "Amount must be no more than 99999999")
	}
	confirm, resp := parseBool(form, "confirm")
	if resp != nil {
		return *resp
	}
	offSession, resp := parseBool(form, "off_session")
	if resp != nil {
		return *resp
	}
	if offSession && !confirm {
		return badRequest("", "off_session", "You may only specify `off_session` when `confirm=true`.")
	}
	if v := form.Get("capture_method"); v != "" && v != "automatic" {
		return badRequest("", "capture_method", "The Stripe sandbox supports only capture_method=automatic.")
	}
	sfu := form.Get("setup_future_usage")
	if sfu != "" && sfu != "off_session" && sfu != "on_session" {
		return badRequest("", "setup_future_usage", "Invalid setup_future_usage: must be one of on_session, off_session")
	}
	cusID := form.Get("customer")
	if cusID != "" && s.customers[cusID] == nil {
		return badRequest("resource_missing", "customer", fmt.Sprintf("No such customer: '%s'", cusID))
	}
	types := list(form, "payment_method_types")
	if len(types) == 0 {
		types = []string{"card"}
	}
	for i, t := range types {
		if t != "card" && t != "us_bank_account" {
			return badRequest("", fmt.Sprintf("payment_method_types[%d]", i), fmt.Sprintf("The payment method type %q is invalid or not supported by the Stripe sandbox.", t))
		}
	}
	pmID := form.Get("payment_method")
	if confirm && pmID == "" {
		return badRequest("parameter_missing", "payment_method", "You cannot confirm this PaymentIntent because it's missing a payment method.")
	}

	var pm *paymentMethod
	var tmpl *template
	if pmID != "" {
		var resp *response
		pm, tmpl, resp = s.lookupMethod(pmID, "payment_method")
		if resp != nil {
			return *resp
		}
		if pm != nil {
			if pm.Customer != "" && pm.Customer != cusID {
				if cusID == "" {
					return badRequest("", "payment_method", "The provided PaymentMethod is attached to a Customer; pass that customer's ID with `customer`.")
				}
				return badRequest("", "payment_method", "The provided PaymentMethod belongs to a different Customer.")
			}
			if pm.consumed && pm.Customer == "" {
				return badRequest("", "payment_method", "This PaymentMethod was previously used without being attached to a Customer or was detached from a Customer, and may not be used again.")
			}
			t := pm.tmpl
			tmpl = &t
		}
		if !contains(types, tmpl.typ) {
			return badRequest("payment_intent_incompatible_payment_method", "payment_method", fmt.Sprintf(
				"The PaymentMethod provided (%s) is not allowed for this PaymentIntent. Please attach a PaymentMethod of one of the following types: %s. Alternatively update the allowed payment_method_types for this PaymentIntent to include %q.",
				tmpl.typ, strings.Join(types, ", "), tmpl.typ))
		}
		if tmpl.typ == "us_bank_account" {
			if cur != "usd" {
				return badRequest("", "currency", "us_bank_account payments must be in usd.")
			}
			hasMandate := pm != nil && pm.mandate
			if confirm && !hasMandate && form.Get("mandate_data[customer_acceptance][type]") == "" {
				return badRequest("parameter_missing", "mandate_data", "A mandate is required to confirm a us_bank_account payment: pass mandate_data[customer_acceptance].")
			}
		}
	}

	// Validation passed: from here the request executes (and its result is
	// kept for its idempotency key).
	if pm == nil && tmpl != nil {
		pm = s.materialize(*tmpl)
	}
	pi := &paymentIntent{
		ID: newID("pi_"), Amount: amount, Currency: cur, Customer: cusID, Description: form.Get("description"),
		ReturnURL: form.Get("return_url"), SetupFutureUsage: sfu, IdempotencyKey: key, OffSession: offSession,
		Metadata: hash(form, "metadata"), PaymentMethodTypes: types, Created: now(), Status: "requires_payment_method",
	}
	pi.ClientSecret = pi.ID + "_secret_" + newID("")[:16]
	if pm != nil {
		pi.PaymentMethod = pm.ID
		pi.Status = "requires_confirmation"
	}
	s.intents[pi.ID] = pi
	s.intentSeq = append(s.intentSeq, pi.ID)
	expandPM := expands(form)["payment_method"]
	if !confirm {
		return response{http.StatusOK, s.intentJSON(pi, expandPM)}
	}
	if form.Get("mandate_data[customer_acceptance][type]") != "" {
		pm.mandate = true
	}
	return s.confirm(pi, pm, s.baseURL(r), expandPM)
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// confirm runs the payment attempt according to the method's script.
func (s *Sandbox) confirm(pi *paymentIntent, pm *paymentMethod, base string, expandPM bool) response {
	saves := pi.SetupFutureUsage != "" && pi.Customer != ""
	if pm.Customer == "" && !saves {
		pm.consumed = true
	}
	b := pm.tmpl.behaviour
	switch b.outcome {
	case succeed:
		s.succeedCard(pi, pm)
		return response{http.StatusOK, s.intentJSON(pi, expandPM)}
	case declineAlways, customerFail:
		return s.declineCard(pi, pm, b.code, b.declineCode, b.message, expandPM)
	case authenticate:
		if pi.OffSession {
			return s.declineCard(pi, pm, "authentication_required", "authentication_required",
				"Your card was declined. This transaction requires authentication.", expandPM)
		}
		pi.Status = "requires_action"
		pi.NextActionURL = base + "/sandbox/3ds/" + pi.ID
		s.emit("payment_intent.requires_action", pi.ID, s.intentJSON(pi, false))
		return response{http.StatusOK, s.intentJSON(pi, expandPM)}
	default: // bank debits
		ch := s.newCharge(pi, pm, "pending")
		pi.LatestCharge = ch.ID
		pi.Status = "processing"
		s.save(pi, pm)
		s.emit("payment_intent.processing", pi.ID, s.intentJSON(pi, false))
		id := pi.ID
		var t *time.Timer
		t = time.AfterFunc(s.opts.BankSettleDelay, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.timers, t)
			s.settle(id)
		})
		s.timers[t] = struct{}{}
		return response{http.StatusOK, s.intentJSON(pi, expandPM)}
	}
}

// save attaches the method to the PaymentIntent's customer when
// setup_future_usage asked for it, as Stripe does on success or processing.
func (s *Sandbox) save(pi *paymentIntent, pm *paymentMethod) {
	if pi.SetupFutureUsage != "" && pi.Customer != "" && pm.Customer == "" {
		pm.Customer = pi.Customer
		pm.consumed = false
	}
}

func (s *Sandbox) newCharge(pi *paymentIntent, pm *paymentMethod, status string) *charge {
	ch := &charge{ID: newID("ch_"), PaymentIntent: pi.ID, PaymentMethod: pm.ID, Customer: pi.Customer, Status: status,
		Currency: pi.Currency, Amount: pi.Amount, Metadata: copyMap(pi.Metadata), Created: now()}
	s.charges[ch.ID] = ch
	return ch
}

func (s *Sandbox) succeedCard(pi *paymentIntent, pm *paymentMethod) {
	ch := s.newCharge(pi, pm, "succeeded")
	pi.LatestCharge = ch.ID
	pi.Status = "succeeded"
	pi.LastError = nil
	s.save(pi, pm)
	s.emit("payment_intent.succeeded", pi.ID, s.intentJSON(pi, false))
}

// declineCard fails the attempt and answers 402 card_error with the
// PaymentIntent in the error, as Stripe does.
func (s *Sandbox) declineCard(pi *paymentIntent, pm *paymentMethod, code, declineCode, msg string, expandPM bool) response {
	ch := s.newCharge(pi, pm, "failed")
	ch.FailureCode, ch.FailureMessage = code, msg
	pi.LatestCharge = ch.ID
	pi.Status = "requires_payment_method"
	pi.LastError = &apiError{Type: "card_error", Code: code, DeclineCode: declineCode, Message: msg, Charge: ch.ID,
		DocURL: "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-"), PaymentMethod: pm.json()}
	s.emit("payment_intent.payment_failed", pi.ID, s.intentJSON(pi, false))
	e := *pi.LastError
	e.PaymentIntent = s.intentJSON(pi, expandPM)
	return response{http.StatusPaymentRequired, errBody(&e)}
}

// settle finishes a processing bank debit.
func (s *Sandbox) settle(piID string) {
	pi := s.intents[piID]
	if pi == nil || pi.Status != "processing" {
		return
	}
	pm := s.methods[pi.PaymentMethod]
	ch := s.charges[pi.LatestCharge]
	b := pm.tmpl.behaviour
	if b.outcome == bankSucceed {
		ch.Status = "succeeded"
		pi.Status = "succeeded"
		s.emit("payment_intent.succeeded", pi.ID, s.intentJSON(pi, false))
		return
	}
	ch.Status, ch.FailureCode, ch.FailureMessage = "failed", b.code, b.message
	pi.Status = "requires_payment_method"
	pi.LastError = &apiError{Type: "card_error", Code: b.code, Message: b.message, Charge: ch.ID, PaymentMethod: pm.json()}
	s.emit("payment_intent.payment_failed", pi.ID, s.intentJSON(pi, false))
}

// CompleteAction finishes a PaymentIntent waiting for 3-D Secure, as the
// payer would on the bank's page: succeed charges it, otherwise it fails
// with payment_intent_authentication_failure.
func (s *Sandbox) CompleteAction(piID string, succeed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.completeAction(piID, succeed)
	return err
}

func (s *Sandbox) completeAction(piID string, ok bool) (*paymentIntent, error) {
	pi := s.intents[piID]
	if pi == nil {
		return nil, fmt.Errorf("no such payment_intent: %s", piID)
	}
	if pi.Status != "requires_action" {
		return pi, fmt.Errorf("payment_intent %s is %s, not requires_action", piID, pi.Status)
	}
	pm := s.methods[pi.PaymentMethod]
	if ok {
		s.succeedCard(pi, pm)
		return pi, nil
	}
	pi.Status = "requires_payment_method"
	pi.LastError = &apiError{Type: "invalid_request_error", Code: "payment_intent_authentication_failure",
		Message:       "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
		PaymentMethod: pm.json()}
	s.emit("payment_intent.payment_failed", pi.ID, s.intentJSON(pi, false))
	return pi, nil
}

// cancelPaymentIntent cancels an intent no money moved on yet, as Stripe
// does; a succeeded, processing or canceled one is
// payment_intent_unexpected_state.
func (s *Sandbox) cancelPaymentIntent(id string, form url.Values) response {
	if r := checkParams(form, "expand", "cancellation_reason"); r != nil {
		return *r
	}
	pi := s.intents[id]
	if pi == nil {
		return notFound("payment_intent", id, "intent")
	}
	switch reason := form.Get("cancellation_reason"); reason {
	case "", "duplicate", "fraudulent", "requested_by_customer", "abandoned":
	default:
		return badRequest("parameter_invalid_string", "cancellation_reason", "Invalid cancellation_reason: must be one of duplicate, fraudulent, requested_by_customer or abandoned")
	}
	switch pi.Status {
	case "requires_payment_method", "requires_confirmation", "requires_action", "requires_capture":
	default:
		return badRequest("payment_intent_unexpected_state", "",
			fmt.Sprintf("You cannot cancel this PaymentIntent because it has a status of %s. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.", pi.Status))
	}
	pi.Status, pi.NextActionURL = "canceled", ""
	s.emit("payment_intent.canceled", pi.ID, s.intentJSON(pi, false))
	return response{http.StatusOK, s.intentJSON(pi, expands(form)["payment_method"])}
}

func (s *Sandbox) getPaymentIntent(id string, form url.Values) response {
	if r := checkParams(form, "expand", "client_secret"); r != nil {
		return *r
	}
	pi := s.intents[id]
	if pi == nil {
		return notFound("payment_intent", id, "intent")
	}
	return response{http.StatusOK, s.intentJSON(pi, expands(form)["payment_method"])}
}

// searchClause matches field:'value' or metadata['key']:'value' (either
// quote style).
var searchClause = regexp.MustCompile(`^(metadata\[['"]([^'"]+)['"]\]|status|customer|currency|amount):['"]?((?:[^'"\\]|\\.)*)['"]?$`)

// searchPaymentIntents implements the subset of Stripe's search language
// billflow uses: clauses joined by AND on metadata, status, customer,
// currency and amount equality.
func (s *Sandbox) searchPaymentIntents(form url.Values) response {
	if r := checkParams(form, "query", "limit", "page", "expand"); r != nil {
		return *r
	}
	q := strings.TrimSpace(form.Get("query"))
	if q == "" {
		return badRequest("parameter_missing", "query", "Missing required param: query.")
	}
	limit := 10
	if v := form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return badRequest("parameter_invalid_integer", "limit", "limit must be an integer between 1 and 100")
		}
		limit = n
	}
	type cond struct{ field, key, value string }
	var conds []cond
	for _, part := range strings.Split(q, " AND ") {
		m := searchClause.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			return badRequest("", "query", fmt.Sprintf("The Stripe sandbox cannot parse the search clause %q.", part))
		}
		c := cond{field: m[1], value: strings.ReplaceAll(m[3], `\'`, `'`)}
		if m[2] != "" {
			c.field, c.key = "metadata", m[2]
		}
		conds = append(conds, c)
	}
	var hits []*paymentIntent
	for _, id := range s.intentSeq {
		pi := s.intents[id]
		ok := true
		for _, c := range conds {
			var got string
			switch c.field {
			case "metadata":
				got = pi.Metadata[c.key]
			case "status":
				got = pi.Status
			case "customer":
				got = pi.Customer
			case "currency":
				got = pi.Currency
			case "amount":
				got = strconv.FormatInt(pi.Amount, 10)
			}
			if got != c.value {
				ok = false
				break
			}
		}
		if ok {
			hits = append(hits, pi)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].Created > hits[j].Created })
	more := len(hits) > limit
	if more {
		hits = hits[:limit]
	}
	expandPM := expands(form)["data.payment_method"]
	data := make([]map[string]any, 0, len(hits))
	for _, pi := range hits {
		data = append(data, s.intentJSON(pi, expandPM))
	}
	return response{http.StatusOK, map[string]any{
		"object": "search_result", "url": "/v1/payment_intents/search", "data": data,
		"has_more": more, "next_page": nil, "total_count": len(data),
	}}
}

var refundReasons = map[string]bool{"duplicate": true, "fraudulent": true, "requested_by_customer": true}

func (s *Sandbox) createRefund(form url.Values, key string) response {
	if r := checkParams(form, "payment_intent", "charge", "amount", "reason", "metadata", "expand"); r != nil {
		return *r
	}
	var ch *charge
	switch piID, chID := form.Get("payment_intent"), form.Get("charge"); {
	case piID != "" && chID != "":
		return badRequest("parameters_exclusive", "charge", "You may only specify one of these parameters: charge, payment_intent.")
	case piID != "":
		pi := s.intents[piID]
		if pi == nil {
			return badRequest("resource_missing", "payment_intent", fmt.Sprintf("No such payment_intent: '%s'", piID))
		}
		ch = s.charges[pi.LatestCharge]
		if ch == nil || ch.Status != "succeeded" {
			return badRequest("charge_not_refundable", "payment_intent", fmt.Sprintf("This PaymentIntent (%s) does not have a successful charge to refund.", piID))
		}
	case chID != "":
		ch = s.charges[chID]
		if ch == nil {
			return badRequest("resource_missing", "charge", fmt.Sprintf("No such charge: '%s'", chID))
		}
		if ch.Status != "succeeded" {
			return badRequest("charge_not_refundable", "charge", fmt.Sprintf("Charge %s has not succeeded and cannot be refunded.", chID))
		}
	default:
		return badRequest("parameter_missing", "payment_intent", "One of the following params should be provided for this request: payment_intent or charge.")
	}
	left := ch.Amount - ch.AmountRefunded
	if left <= 0 {
		return badRequest("charge_already_refunded", "", fmt.Sprintf("Charge %s has already been refunded.", ch.ID))
	}
	amount := left
	if form.Get("amount") != "" {
		n, resp := positiveInt(form, "amount")
		if resp != nil {
			return *resp
		}
		amount = n
	}
	if amount > left {
		return badRequest("amount_too_large", "amount", fmt.Sprintf("Refund amount (%s) is greater than unrefunded amount on charge (%s)",
			money.Format(amount, ch.Currency), money.Format(left, ch.Currency)))
	}
	reason := form.Get("reason")
	if reason != "" && !refundReasons[reason] {
		return badRequest("", "reason", "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")
	}
	re := &refund{ID: newID("re_"), Charge: ch.ID, PaymentIntent: ch.PaymentIntent, Status: "succeeded", Reason: reason,
		Currency: ch.Currency, IdempotencyKey: key, Amount: amount, Metadata: hash(form, "metadata"), Created: now()}
	s.refunds[re.ID] = re
	s.refundSeq = append(s.refundSeq, re.ID)
	ch.AmountRefunded += amount
	ch.Refunds = append(ch.Refunds, re.ID)
	s.emit("charge.refunded", ch.ID, s.chargeJSON(ch))
	return response{http.StatusOK, re.json()}
}

func (s *Sandbox) getRefund(id string, form url.Values) response {
	if r := checkParams(form, "expand"); r != nil {
		return *r
	}
	re := s.refunds[id]
	if re == nil {
		return notFound("refund", id, "id")
	}
	return response{http.StatusOK, re.json()}
}

func (s *Sandbox) getPaymentMethod(id string, form url.Values) response {
	if r := checkParams(form, "expand"); r != nil {
		return *r
	}
	if pm := s.methods[id]; pm != nil {
		return response{http.StatusOK, pm.json()}
	}
	if t, ok := templates[id]; ok {
		// A test ID reads as its template, unsaved.
		pm := &paymentMethod{ID: id, tmpl: t, Created: now(), Metadata: map[string]string{}}
		return response{http.StatusOK, pm.json()}
	}
	return notFound("PaymentMethod", id, "payment_method")
}

func (s *Sandbox) attachPaymentMethod(id string, form url.Values) response {
	if r := checkParams(form, "customer", "expand"); r != nil {
		return *r
	}
	cusID := form.Get("customer")
	if cusID == "" {
		return badRequest("parameter_missing", "customer", "Missing required param: customer.")
	}
	if s.customers[cusID] == nil {
		return badRequest("resource_missing", "customer", fmt.Sprintf("No such customer: '%s'", cusID))
	}
	pm, tmpl, resp := s.lookupMethod(id, "payment_method")
	if resp != nil {
		return *resp
	}
	t := tmpl
	if pm != nil {
		t = &pm.tmpl
	}
	if t.outcome == declineAlways {
		// Stripe verifies a card when saving it; these test cards fail.
		e := &apiError{Type: "card_error", Code: t.code, DeclineCode: t.declineCode, Message: t.message, Param: ""}
		return response{http.StatusPaymentRequired, errBody(e)}
	}
	if pm == nil {
		pm = s.materialize(*tmpl)
	}
	switch {
	case pm.Customer == cusID:
	case pm.Customer != "":
		return badRequest("", "payment_method", "The payment method you provided has already been attached to a customer.")
	case pm.consumed:
		return badRequest("", "payment_method", "This PaymentMethod was previously used without being attached to a Customer or was detached from a Customer, and may not be used again.")
	default:
		pm.Customer = cusID
	}
	return response{http.StatusOK, pm.json()}
}

func (s *Sandbox) detachPaymentMethod(id string, form url.Values) response {
	if r := checkParams(form, "expand"); r != nil {
		return *r
	}
	pm := s.methods[id]
	if pm == nil {
		if _, ok := templates[id]; ok {
			return badRequest("", "payment_method", "The payment method you provided is not attached to a customer so detachment is impossible.")
		}
		return notFound("PaymentMethod", id, "payment_method")
	}
	if pm.Customer == "" {
		return badRequest("", "payment_method", "The payment method you provided is not attached to a customer so detachment is impossible.")
	}
	pm.Customer = ""
	pm.consumed = true
	return response{http.StatusOK, pm.json()}
}

// threeDSPage is the stand-in for the card issuer's authentication page.
var threeDSPage = htmltemplate.Must(htmltemplate.New("3ds").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Stripe sandbox: 3-D Secure</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}
.note{background:#fff3cd;padding:.5rem 1rem;border-radius:4px}button{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}</style></head>
<body><p class="note">Stripe sandbox: a billflow dev/test tool, not Stripe. No money moves.</p>
{{if .Done}}<h1>Authentication {{.Result}}</h1><p>Payment {{.ID}} is now {{.Status}}.</p>
{{else}}<h1>Authenticate this payment</h1><p>{{.Amount}} &middot; {{.ID}}</p>
<form method="post" action="?result=success"><button type="submit" id="complete">Complete authentication</button></form>
<form method="post" action="?result=failure"><button type="submit" id="fail">Fail authentication</button></form>{{end}}
</body></html>`))

// serve3DS shows the authentication page, or with ?result=success|failure
// completes it and sends the browser back to the PaymentIntent's return_url.
func (s *Sandbox) serve3DS(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/sandbox/3ds/")
	result := r.URL.Query().Get("result")
	if result == "" && r.Method == http.MethodPost {
		_ = r.ParseForm()
		result = r.PostForm.Get("result")
	}
	s.mu.Lock()
	pi := s.intents[id]
	var err error
	if pi != nil && result != "" {
		if result != "success" && result != "failure" {
			s.mu.Unlock()
			http.Error(w, "result must be success or failure", http.StatusBadRequest)
			return
		}
		_, err = s.completeAction(id, result == "success")
	}
	var data map[string]any
	returnURL := ""
	if pi != nil {
		data = map[string]any{"ID": pi.ID, "Status": pi.Status, "Amount": money.Format(pi.Amount, pi.Currency),
			"Done": result != "", "Result": map[bool]string{true: "succeeded", false: "failed"}[result == "success"]}
		returnURL = pi.ReturnURL
	}
	s.mu.Unlock()
	switch {
	case pi == nil:
		http.Error(w, "no such payment_intent", http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusConflict)
		return
	case result != "" && returnURL != "":
		u, perr := url.Parse(returnURL)
		if perr == nil {
			q := u.Query()
			q.Set("payment_intent", id)
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = threeDSPage.Execute(w, data)
}
