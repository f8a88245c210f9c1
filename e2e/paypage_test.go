package e2e

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/paylink"
	"github.com/billflow/billflow/store"
)

// page is one HTML response of the pay page.
type page struct {
	Status int
	Header http.Header
	Body   string
}

// noRedirect is a client that shows a 303 instead of following it.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authenticate3DS passes the sandbox's 3-D Secure challenge at url and gives
// the page it sends the payer back to, which must be back with the payment
// intent added.
func authenticate3DS(t *testing.T, url, back string) string {
	t.Helper()
	res, err := noRedirect.PostForm(url+"?result=success", nil)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 303, res.StatusCode)
	landing := res.Header.Get("Location")
	require.True(t, strings.HasPrefix(landing, back+"?payment_intent="), landing)
	return landing
}

func (s *stack) getPage(t *testing.T, u string) *page {
	t.Helper()
	res, err := noRedirect.Get(u)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return &page{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

func (s *stack) postPage(t *testing.T, u string, form url.Values) *page {
	t.Helper()
	res, err := noRedirect.PostForm(u, form)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return &page{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

var payLinkRe = regexp.MustCompile(`/pay/(pl1\.[A-Za-z0-9_\-.]+)`)

// payLinkFromMail waits for the invoice email and returns the pay link in it.
func (s *stack) payLinkFromMail(t *testing.T, invoiceID string) string {
	t.Helper()
	var link string
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, m := range s.mailsFor(invoiceID) {
			if kindOf(m) != "invoice_issued" {
				continue
			}
			if mm := payLinkRe.FindStringSubmatch(m.Text); mm != nil {
				link = s.API.URL + "/pay/" + mm[1]
			}
		}
		assert.NotEmpty(c, link, "invoice email with a pay link")
	}, 30*time.Second, 100*time.Millisecond)
	return link
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// formFields returns the hidden fields of the rendered pay form.
func formFields(t *testing.T, body string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	require.NotEmpty(t, v.Get("csrf"), "the form has a CSRF token")
	require.NotEmpty(t, v.Get("nonce"), "the form has a nonce")
	return v
}

func withCard(v url.Values, card string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	out.Set("method", "new")
	out.Set("test_card", card)
	out.Set("cardholder_name", "Ada Lovelace")
	out.Set("billing_zip", "10001")
	if out.Get("amount_choice") == "" {
		out.Set("amount_choice", "full")
	}
	return out
}

func assertPageHeaders(t *testing.T, p *page) {
	t.Helper()
	assert.Equal(t, "no-store", p.Header.Get("Cache-Control"))
	assert.Equal(t, "no-referrer", p.Header.Get("Referrer-Policy"))
	csp := p.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "default-src 'none'")
	assert.Contains(t, csp, "form-action 'self'")
	assert.NotContains(t, csp, "js.stripe.com", "no external script in test mode")
	assert.True(t, strings.HasPrefix(p.Header.Get("Content-Type"), "text/html"), p.Header.Get("Content-Type"))
}

// externalRef finds any src/href to another origin (mailto/tel are fine).
var externalRef = regexp.MustCompile(`(?i)(src|href|action)\s*=\s*"(https?:)?//`)

func TestPayPageShowsInvoiceEscaped(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	inv := s.newInvoice(t, s.Key, cl, 9000, map[string]any{"items": []map[string]any{{
		"service_date": time.Now().Format(time.DateOnly), "unit_amount": 9000,
		"description": `Couples session <img src="http://127.0.0.1:9/x"><script>alert("x")</script> & "notes"`}}})
	id := inv.str("id")
	link := s.payLinkFromMail(t, id)

	p := s.getPage(t, link)
	require.Equal(t, 200, p.Status, p.Body)
	assertPageHeaders(t, p)
	assert.Contains(t, p.Body, `<meta name="viewport" content="width=device-width, initial-scale=1">`)
	assert.Contains(t, p.Body, "Calm Minds Therapy")
	assert.Contains(t, p.Body, inv.str("number"))
	assert.Contains(t, p.Body, "Couples session &lt;img src=&#34;http://127.0.0.1:9/x&#34;&gt;&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;notes&#34;")
	assert.NotContains(t, p.Body, `<img src="http`)
	assert.NotContains(t, p.Body, `<script>alert`)
	assert.Empty(t, externalRef.FindAllString(p.Body, -1), "no external asset or link")
	assert.Regexp(t, `id="amount-due">\$90\.00<`, p.Body)
	assert.Regexp(t, `id="paid">\$0\.00<`, p.Body)
	assert.Contains(t, p.Body, `<button type="submit" id="pay-button">Pay $90.00</button>`)
	assert.Contains(t, p.Body, "Pay Now")
	assert.Contains(t, p.Body, `<label for="cardholder_name">Cardholder name</label>`)
	assert.Contains(t, p.Body, `<label for="billing_zip">Billing ZIP code</label>`)
	assert.Contains(t, p.Body, "Save card for future payments")
	for _, tc := range []string{"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_chargeDeclined",
		"pm_card_chargeDeclinedInsufficientFunds", "pm_card_authenticationRequired", "pm_usBankAccount"} {
		assert.Contains(t, p.Body, `<option value="`+tc+`"`, tc)
	}
	assert.NotContains(t, p.Body, "Pay part", "partial payments are off for this invoice")
	// The inline script runs only by its nonce.
	nonce := regexp.MustCompile(`<script nonce="([0-9a-f]{32})">`).FindStringSubmatch(p.Body)
	require.NotNil(t, nonce)
	assert.Contains(t, p.Header.Get("Content-Security-Policy"), "script-src 'nonce-"+nonce[1]+"'")

	// The invoice PDF is reachable through the same link.
	pdf := s.getPage(t, link+"/pdf")
	require.Equal(t, 200, pdf.Status, pdf.Body)
	assert.Equal(t, "application/pdf", pdf.Header.Get("Content-Type"))
	assert.True(t, strings.HasPrefix(pdf.Body, "%PDF"))
}

func TestPayPageForgedExpiredAndVoidLinks(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	link := s.payLinkFromMail(t, id)
	ctx := context.Background()

	// Forged: a changed signature, garbage, and a well-signed token with the wrong secret.
	other, err := paylink.New([]byte("another-secret-another-secret-another"), id, time.Now().Add(time.Hour))
	require.NoError(t, err)
	for _, u := range []string{link[:len(link)-2] + "xx", s.API.URL + "/pay/nonsense", s.API.URL + "/pay/" + other} {
		p := s.getPage(t, u)
		assert.Equal(t, 404, p.Status, u)
		assert.Contains(t, p.Body, "This payment link is not valid")
		assertPageHeaders(t, p)
		post := s.postPage(t, u, url.Values{"csrf": {"x"}})
		assert.Equal(t, 404, post.Status)
	}
	// Signed with the right secret but never issued (not stored): not valid either.
	unknown, err := paylink.New(s.Config.PayLinkSecret, id, time.Now().Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 404, s.getPage(t, s.API.URL+"/pay/"+unknown).Status)

	// Expired by its own signed expiry.
	past := time.Now().Add(-time.Hour)
	expired, err := paylink.New(s.Config.PayLinkSecret, id, past)
	require.NoError(t, err)
	require.NoError(t, s.Store.SavePayLink(ctx, id, paylink.Hash(expired), past))
	// Expired by the stored expiry although the token's own is later.
	storedPast, err := paylink.New(s.Config.PayLinkSecret, id, time.Now().Add(24*time.Hour))
	require.NoError(t, err)
	require.NoError(t, s.Store.SavePayLink(ctx, id, paylink.Hash(storedPast), past))
	for _, tok := range []string{expired, storedPast} {
		p := s.getPage(t, s.API.URL+"/pay/"+tok)
		assert.Equal(t, 410, p.Status)
		assert.Contains(t, p.Body, "This payment link has expired")
		assert.Contains(t, p.Body, "Please contact Calm Minds Therapy for a new payment link")
		assertPageHeaders(t, p)
		// Nor can it be paid.
		post := s.postPage(t, s.API.URL+"/pay/"+tok, url.Values{})
		assert.Equal(t, 410, post.Status)
	}

	// The live link works until the invoice is voided, then it is gone.
	require.Equal(t, 200, s.getPage(t, link).Status)
	form := formFields(t, s.getPage(t, link).Body)
	v := s.do(t, "POST", "/v1/invoices/"+id+"/void", s.Key, nil)
	require.Equal(t, 200, v.Status, string(v.Raw))
	p := s.getPage(t, link)
	assert.Equal(t, 410, p.Status)
	assert.Contains(t, p.Body, "This invoice was voided")
	post := s.postPage(t, link, withCard(form, "pm_card_visa"))
	assert.Equal(t, 410, post.Status)
	assert.Equal(t, 0, s.countPayments(t, id))
}

func TestPayPageFullPaymentAndDoubleSubmit(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	link := s.payLinkFromMail(t, id)

	form := formFields(t, s.getPage(t, link).Body)
	assert.Equal(t, "9000", form.Get("full_amount"))
	body := withCard(form, "pm_card_visa")
	p := s.postPage(t, link, body)
	require.Equal(t, 200, p.Status, p.Body)
	assertPageHeaders(t, p)
	assert.Contains(t, p.Body, "Payment received — thank you")
	assert.Regexp(t, `id="status">Paid<`, p.Body)
	assert.Regexp(t, `id="amount-due">\$0\.00<`, p.Body)
	assert.Contains(t, p.Body, `href="/pay/`)

	// The same form again (a double click, a refresh): the first answer, no second charge.
	intents := len(s.intentsFor(id))
	again := s.postPage(t, link, body)
	require.Equal(t, 200, again.Status, again.Body)
	assert.Contains(t, again.Body, "Payment received — thank you")
	assert.Equal(t, 1, s.countPayments(t, id))
	assert.Equal(t, intents, len(s.intentsFor(id)))
	got := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	assert.Equal(t, "paid", got.str("status"))
	assert.Equal(t, int64(9000), got.num("amount_paid"))

	// The page now shows the paid state and no form.
	view := s.getPage(t, link)
	require.Equal(t, 200, view.Status)
	assert.Contains(t, view.Body, "Paid — thank you")
	assert.NotContains(t, view.Body, `id="pay-form"`)
	assert.Contains(t, view.Body, "Download receipt (PDF)")

	// A fresh form submitted against the paid invoice is refused, nothing charged.
	late := s.postPage(t, link, withCard(url.Values{"csrf": {form.Get("csrf")}, "nonce": {strings.Repeat("a", 32)},
		"full_amount": {"9000"}}, "pm_card_visa"))
	assert.Equal(t, 409, late.Status, late.Body)
	assert.Contains(t, late.Body, "already paid")
	assert.Equal(t, 1, s.countPayments(t, id))
}

func TestPayPageDeclineShowsReason(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	link := s.payLinkFromMail(t, id)

	form := formFields(t, s.getPage(t, link).Body)
	p := s.postPage(t, link, withCard(form, "pm_card_chargeDeclined"))
	require.Equal(t, 402, p.Status, p.Body)
	assert.Contains(t, p.Body, "Your card was declined.")
	assert.Regexp(t, `id="amount-due">\$90\.00<`, p.Body)
	assert.Contains(t, p.Body, `<button type="submit" id="pay-button">Pay $90.00</button>`)
	// The form comes back with a new nonce, so trying another card is a new attempt.
	retry := formFields(t, p.Body)
	assert.NotEqual(t, form.Get("nonce"), retry.Get("nonce"))
	assert.Contains(t, p.Body, `value="Ada Lovelace"`, "the name is kept")

	insufficient := s.postPage(t, link, withCard(retry, "pm_card_chargeDeclinedInsufficientFunds"))
	require.Equal(t, 402, insufficient.Status)
	assert.Contains(t, insufficient.Body, "Your card has insufficient funds.")

	got := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	assert.Equal(t, "open", got.str("status"))
	assert.Equal(t, int64(9000), got.num("amount_due"))
	assert.Equal(t, 0, s.countPayments(t, id))
}

func TestPayPageRejectsBadForms(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 18000, map[string]any{"partial_payments": map[string]any{"enabled": true, "minimum_amount": 5000}}).str("id")
	link := s.payLinkFromMail(t, id)
	page0 := s.getPage(t, link)
	require.Equal(t, 200, page0.Status)
	assert.Contains(t, page0.Body, "Pay in full $180.00")
	assert.Contains(t, page0.Body, "Pay part")
	assert.Contains(t, page0.Body, "Minimum $50.00")
	form := formFields(t, page0.Body)
	good := withCard(form, "pm_card_visa")

	// CSRF: missing, wrong, or from another site.
	noCSRF := withCard(form, "pm_card_visa")
	noCSRF.Del("csrf")
	assert.Equal(t, 403, s.postPage(t, link, noCSRF).Status)
	bad := withCard(form, "pm_card_visa")
	bad.Set("csrf", "AAAA"+form.Get("csrf")[4:])
	assert.Equal(t, 403, s.postPage(t, link, bad).Status)
	req, err := http.NewRequest("POST", link, strings.NewReader(good.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	res, err := noRedirect.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, 403, res.StatusCode)

	cases := []struct {
		name string
		edit func(v url.Values)
		want string
	}{
		{"unknown field", func(v url.Values) { v.Set("amount", "1") }, `unexpected field &#34;amount&#34;`},
		{"repeated field", func(v url.Values) { v.Add("test_card", "pm_card_amex") }, "more than once"},
		{"below minimum", func(v url.Values) { v.Set("amount_choice", "part"); v.Set("amount_part", "49.99") },
			"The minimum payment for this invoice is $50.00"},
		{"over due", func(v url.Values) { v.Set("amount_choice", "part"); v.Set("amount_part", "180.01") }, "more than the $180.00 due"},
		{"three decimals", func(v url.Values) { v.Set("amount_choice", "part"); v.Set("amount_part", "60.005") }, "at most 2 decimal places"},
		{"float-ish", func(v url.Values) { v.Set("amount_choice", "part"); v.Set("amount_part", "6e1") }, "enter the amount as a number"},
		{"unknown test card", func(v url.Values) { v.Set("test_card", "pm_card_fake") }, "Choose one of the listed test cards"},
		{"no name", func(v url.Values) { v.Del("cardholder_name") }, "Enter the cardholder name"},
		{"no zip", func(v url.Values) { v.Del("billing_zip") }, "Enter the billing ZIP code"},
		{"NUL in name", func(v url.Values) { v.Set("cardholder_name", "Ada\x00Lovelace") }, "contains characters that cannot be used"},
		{"bad nonce", func(v url.Values) { v.Set("nonce", "x") }, "This form has expired"},
	}
	for _, c := range cases {
		v := withCard(form, "pm_card_visa")
		c.edit(v)
		p := s.postPage(t, link, v)
		assert.Equal(t, 400, p.Status, c.name)
		assert.Contains(t, p.Body, c.want, c.name)
	}
	// Not a form post at all.
	req, err = http.NewRequest("POST", link, strings.NewReader(`{"amount":100}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	res, err = noRedirect.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, 400, res.StatusCode)

	assert.Equal(t, 0, s.countPayments(t, id))
	assert.Equal(t, "open", s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil).str("status"))

	// A partial payment in major units, then the installment limit: the second must pay the rest.
	part := withCard(form, "pm_card_visa")
	part.Set("amount_choice", "part")
	part.Set("amount_part", "60.50")
	p := s.postPage(t, link, part)
	require.Equal(t, 200, p.Status, p.Body)
	assert.Contains(t, p.Body, "Partially paid — $119.50 remaining")
	next := s.getPage(t, link)
	assert.NotContains(t, next.Body, "Pay part", "the last installment must pay the rest")
	assert.Contains(t, next.Body, "Pay $119.50")
	f2 := formFields(t, next.Body)
	tooMany := withCard(f2, "pm_card_visa")
	tooMany.Set("amount_choice", "part")
	tooMany.Set("amount_part", "60.00")
	tm := s.postPage(t, link, tooMany)
	assert.Equal(t, 400, tm.Status)
	assert.Contains(t, tm.Body, "at most 2 payments")
	assert.Equal(t, 1, s.countPayments(t, id))
}

func TestPayPageThreeDSecureAndBankDebit(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	link := s.payLinkFromMail(t, id)

	page0 := s.getPage(t, link)
	assert.Contains(t, page0.Header.Get("Content-Security-Policy"), "form-action 'self' "+s.Config.StripeAPIBase,
		"the 3-D Secure redirect after the form post is allowed")
	p := s.postPage(t, link, withCard(formFields(t, page0.Body), "pm_card_authenticationRequired"))
	require.Equal(t, 303, p.Status, p.Body)
	loc := p.Header.Get("Location")
	require.True(t, strings.HasPrefix(loc, s.Config.StripeAPIBase+"/sandbox/3ds/"), loc)

	// The payer completes authentication; the sandbox sends them back to the pay page.
	back := authenticate3DS(t, loc, link)
	s.waitStatus(t, id, "paid")
	landed := s.getPage(t, back)
	require.Equal(t, 200, landed.Status)
	assert.Contains(t, landed.Body, "was authenticated and received")
	assert.Contains(t, landed.Body, "Paid — thank you")

	// A bank debit is processing for days.
	id2 := s.newInvoice(t, s.Key, cl, 12000, nil).str("id")
	link2 := s.payLinkFromMail(t, id2)
	bank := withCard(formFields(t, s.getPage(t, link2).Body), "pm_usBankAccount")
	bank.Del("billing_zip")
	bp := s.postPage(t, link2, bank)
	require.Equal(t, 200, bp.Status, bp.Body)
	assert.Contains(t, bp.Body, "Processing — your bank payment usually takes a few days")
}

func TestPayPageSaveCardThenPayWithIt(t *testing.T) {
	s := getStack(t)
	cl := s.newClient(t, s.Key)
	id := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	link := s.payLinkFromMail(t, id)
	first := s.getPage(t, link)
	assert.NotContains(t, first.Body, `name="method" value="saved:`, "no saved card yet")
	save := withCard(formFields(t, first.Body), "pm_card_visa")
	save.Set("save_card", "1")
	require.Equal(t, 200, s.postPage(t, link, save).Status)

	// A pay link alone (a forwarded or leaked email) neither lists nor charges
	// the client's saved cards: they belong to the portal.
	id2 := s.newInvoice(t, s.Key, cl, 4500, nil).str("id")
	link2 := s.payLinkFromMail(t, id2)
	alone := s.getPage(t, link2)
	require.Equal(t, 200, alone.Status)
	assert.NotContains(t, alone.Body, `value="saved:`, "no saved card offered through a pay link alone")
	assert.NotContains(t, alone.Body, "4242")
	pms := s.do(t, "GET", "/v1/clients/"+cl+"/payment-methods", s.Key, nil)
	require.Len(t, pms.Body["data"], 1)
	savedID := pms.Body["data"].([]any)[0].(map[string]any)["id"].(string)
	steal := formFields(t, alone.Body)
	steal.Set("method", "saved:"+savedID)
	steal.Set("amount_choice", "full")
	refused := s.postPage(t, link2, steal)
	assert.Equal(t, 403, refused.Status, refused.Body)
	assert.Contains(t, refused.Body, "Saved cards can be used only from your Billing &amp; Payments portal")
	assert.Contains(t, refused.Body, "Nothing was charged.")
	assert.Equal(t, 0, s.countPayments(t, id2))
	// The portal session of another client is no portal session for this one.
	otherTok := s.portalToken(t, s.Key, s.newClient(t, s.Key))
	portalPath := strings.TrimPrefix(link2, s.API.URL)
	portalPath = "/portal" + portalPath
	foreign := s.portalReq(t, "GET", portalPath, otherTok, nil)
	require.Equal(t, 200, foreign.Status)
	assert.NotContains(t, foreign.Body, `value="saved:`)

	// With the client's own portal session, Pay Now on the invoice offers the
	// saved card, chosen by default.
	tok := s.portalToken(t, s.Key, cl)
	now := s.portalReq(t, "GET", "/portal/invoices/"+id2+"/pay", tok, nil)
	require.Equal(t, 303, now.Status, now.Body)
	payAt := now.Header.Get("Location")
	require.True(t, strings.HasPrefix(payAt, "/portal/pay/"), payAt)
	p := s.portalReq(t, "GET", payAt, tok, nil)
	require.Equal(t, 200, p.Status)
	m := regexp.MustCompile(`<input type="radio" name="method" value="saved:(spm_[A-Za-z0-9_]+)" checked> Visa •••• 4242</label>`).FindStringSubmatch(p.Body)
	require.NotNil(t, m, "saved card radio")
	require.Equal(t, savedID, m[1])
	v := formFields(t, p.Body)
	v.Set("method", "saved:"+m[1])
	v.Set("amount_choice", "full")
	paid := s.portalReq(t, "POST", payAt, tok, v)
	require.Equal(t, 200, paid.Status, paid.Body)
	assert.Regexp(t, `id="status">Paid<`, paid.Body)
	got := s.do(t, "GET", "/v1/invoices/"+id2, s.Key, nil)
	pays, _ := got.Body["payments"].([]any)
	require.Len(t, pays, 1)
	assert.Equal(t, "4242", pays[0].(map[string]any)["last4"])

	// Another client's saved card is not usable through this link.
	other := s.newClient(t, s.Key)
	id3 := s.newInvoice(t, s.Key, other, 4500, nil).str("id")
	link3 := s.payLinkFromMail(t, id3)
	v3 := formFields(t, s.getPage(t, link3).Body)
	v3.Set("method", "saved:"+m[1])
	v3.Set("amount_choice", "full")
	r := s.postPage(t, link3, v3)
	assert.Equal(t, 403, r.Status)
	assert.Equal(t, 0, s.countPayments(t, id3))
	// ...nor with that other client's own portal session.
	tok3 := s.portalToken(t, s.Key, other)
	r = s.portalReq(t, "POST", "/portal"+strings.TrimPrefix(link3, s.API.URL), tok3, v3)
	assert.Equal(t, 400, r.Status, r.Body)
	assert.Contains(t, r.Body, "no longer available")
	assert.Equal(t, 0, s.countPayments(t, id3))
}

func TestPayPageExpiredShowsPracticeContact(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	p, key, err := s.Store.CreatePractice(ctx, store.NewPractice{Name: `Sun & <Moon> Wellness`, Currency: "usd",
		Timezone: "UTC", Email: "frontdesk@sunmoon.example"})
	require.NoError(t, err)
	_, err = s.Store.Pool.Exec(ctx, `UPDATE practices SET phone=$2 WHERE id=$1`, p.ID, "+1 555 0100")
	require.NoError(t, err)
	id := s.newInvoice(t, key, s.newClient(t, key), 9000, nil).str("id")
	past := time.Now().Add(-time.Minute)
	tok, err := paylink.New(s.Config.PayLinkSecret, id, past)
	require.NoError(t, err)
	require.NoError(t, s.Store.SavePayLink(ctx, id, paylink.Hash(tok), past))

	pg := s.getPage(t, s.API.URL+"/pay/"+tok)
	require.Equal(t, 410, pg.Status)
	assert.Contains(t, pg.Body, "Please contact Sun &amp; &lt;Moon&gt; Wellness for a new payment link")
	assert.Contains(t, pg.Body, `<a href="mailto:frontdesk@sunmoon.example">frontdesk@sunmoon.example</a>`)
	assert.Contains(t, html.UnescapeString(pg.Body), `Phone: <a href="tel:+1%20555%200100">+1 555 0100</a>`)
}
