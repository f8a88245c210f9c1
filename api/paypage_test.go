package api

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/config"
)

func TestParseMajorUsesIntegerArithmetic(t *testing.T) {
	ok := []struct {
		in, cur string
		want    int64
	}{
		{"90.50", "usd", 9050}, {"90.5", "usd", 9050}, {"90", "usd", 9000}, {" $1,200.07 ", "usd", 120007},
		{".99", "usd", 99}, {"0.29", "usd", 29}, {"12000", "jpy", 12000}, {"¥12,000", "jpy", 12000},
		{"1.234", "kwd", 1234}, {"999999.99", "usd", 99_999_999}, {"€90.00", "eur", 9000}, {"007.10", "usd", 710},
	}
	for _, c := range ok {
		got, err := parseMajor(c.in, c.cur)
		if err != nil || got != c.want {
			t.Errorf("parseMajor(%q, %s) = %d, %v; want %d", c.in, c.cur, got, err, c.want)
		}
	}
	bad := []struct{ in, cur string }{
		{"", "usd"}, {"abc", "usd"}, {"90.505", "usd"}, {"90.", "usd"}, {"-5", "usd"}, {"1e3", "usd"},
		{"12.5", "jpy"}, {"1000000.00", "usd"}, {"99999999999999999999", "usd"}, {"9 0", "usd"}, {"0x10", "usd"},
		{"1.2.3", "usd"}, {"+5", "usd"},
	}
	for _, c := range bad {
		if got, err := parseMajor(c.in, c.cur); err == nil {
			t.Errorf("parseMajor(%q, %s) = %d, want an error", c.in, c.cur, got)
		}
	}
}

func TestMajorStringAndSymbol(t *testing.T) {
	for _, c := range []struct {
		amt       int64
		cur, want string
	}{{5000, "usd", "50.00"}, {5, "usd", "0.05"}, {12000, "jpy", "12000"}, {1234, "kwd", "1.234"}} {
		if got := majorString(c.amt, c.cur); got != c.want {
			t.Errorf("majorString(%d, %s) = %q, want %q", c.amt, c.cur, got, c.want)
		}
	}
	if s := currencySymbol("usd"); s != "$" {
		t.Errorf("symbol usd = %q", s)
	}
	if s := currencySymbol("chf"); s != "CHF " {
		t.Errorf("symbol chf = %q", s)
	}
}

func TestPayTemplateEscapesAndLabels(t *testing.T) {
	d := pageData{Title: "Invoice", Practice: &practiceView{Name: "Calm <Minds>"}, Number: "INV-1",
		Items: []itemView{{Date: "Jan 2, 2026", Description: `<script>alert(1)</script>`, Amount: "$90.00"}},
		Total: "$90.00", Paid: "$0.00", Due: "$90.00", StatusLabel: "Open",
		Form: &formView{Action: "/pay/x", CSRF: "c", Nonce: "n", ScriptNonce: "s", Symbol: "$", Exponent: 2,
			FullFormatted: "$90.00", Partial: true, MinMajor: "50.00", MinFormatted: "$50.00", TestMode: true,
			TestCards: []optionView{{Value: "pm_card_visa", Label: "Visa", Selected: true}}, ButtonText: "Pay $90.00", NewChosen: true}}
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, "pay", d); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "Calm &lt;Minds&gt;", `<button type="submit" id="pay-button">Pay $90.00</button>`,
		`<label for="cardholder_name">Cardholder name</label>`, `<label for="billing_zip">Billing ZIP code</label>`,
		"Save card for future payments", `name="viewport"`, `<script nonce="s">`, "Pay in full $90.00", "Pay part", "Minimum $50.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(out, "<script>alert") || strings.Contains(out, "js.stripe.com") || strings.Contains(out, "http://") {
		t.Error("page has unescaped user text or an external asset")
	}
	// Every input, select and button a payer uses has a label or is hidden.
	for _, id := range []string{"amount_part", "test_card", "cardholder_name", "billing_zip", "save_card"} {
		if !strings.Contains(out, `for="`+id+`"`) {
			t.Errorf("input %s has no label", id)
		}
	}
}

func TestPayPageVariantsAndCSP(t *testing.T) {
	gin.SetMode(gin.TestMode)
	csp := func(h *handlers, nonce string) string {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		h.pageHeaders(c, nonce)
		return w.Header().Get("Content-Security-Policy")
	}
	sandbox := &handlers{Deps: Deps{Config: &config.Config{StripeSecretKey: "sk_test_x", StripeAPIBase: "http://127.0.0.1:12111"}}}
	if !sandbox.testMode() || sandbox.elements() {
		t.Fatal("the sandbox is test mode without Elements")
	}
	got := csp(sandbox, "abc")
	for _, want := range []string{"default-src 'none'", "style-src 'unsafe-inline'", "img-src data:",
		"form-action 'self' http://127.0.0.1:12111", "script-src 'nonce-abc'"} {
		if !strings.Contains(got, want) {
			t.Errorf("sandbox CSP %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "stripe.com") {
		t.Errorf("sandbox CSP allows Stripe: %q", got)
	}
	live := &handlers{Deps: Deps{Config: &config.Config{StripeSecretKey: "sk_live_x", StripePublishableKey: "pk_live_x"}}}
	if live.testMode() || !live.elements() {
		t.Fatal("live keys: Elements, no test cards")
	}
	got = csp(live, "abc")
	for _, want := range []string{"script-src 'nonce-abc' https://js.stripe.com", "frame-src https://js.stripe.com", "connect-src https://api.stripe.com"} {
		if !strings.Contains(got, want) {
			t.Errorf("Elements CSP %q lacks %q", got, want)
		}
	}
	var buf bytes.Buffer
	d := pageData{Practice: &practiceView{Name: "P"}, Form: &formView{Elements: true, PublishableKey: "pk_live_x", ScriptNonce: "abc", ButtonText: "Pay $1.00"}}
	if err := pageTmpl.ExecuteTemplate(&buf, "pay", d); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<script src="https://js.stripe.com/v3/"></script>`, `id="card-element" data-key="pk_live_x"`, `name="payment_method"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("Elements page lacks %q", want)
		}
	}
	if strings.Contains(buf.String(), `id="test_card"`) {
		t.Error("live page offers test cards")
	}
}
