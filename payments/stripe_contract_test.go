package payments

// Contract tests: every Gateway call is sent to stripe-mock, which validates
// each request against Stripe's OpenAPI spec (unknown parameters, wrong
// types, missing required fields are rejected). They prove request shapes,
// not behaviour; internal/stripesandbox's tests cover behaviour.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
)

var (
	mockOnce sync.Once
	mockURL  string
	mockErr  error
	// mockMissing is set when the binary is absent (skippable outside CI),
	// as opposed to present but broken (always a failure).
	mockMissing bool
	mockCmd     *exec.Cmd
)

func TestMain(m *testing.M) {
	code := m.Run()
	if mockCmd != nil && mockCmd.Process != nil {
		_ = mockCmd.Process.Kill()
		_ = mockCmd.Wait()
	}
	os.Exit(code)
}

// stripeMockBin finds stripe-mock: $STRIPE_MOCK_BIN, then $(go env GOPATH)/bin,
// then $PATH.
func stripeMockBin() string {
	if p := os.Getenv("STRIPE_MOCK_BIN"); p != "" {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "stripe-mock")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	return ""
}

// stripeMock starts one stripe-mock for the package and returns its base
// URL. Without the binary the test fails under CI and is skipped elsewhere.
func stripeMock(t *testing.T) string {
	t.Helper()
	mockOnce.Do(func() {
		bin := stripeMockBin()
		if bin == "" {
			mockMissing = true
			mockErr = errors.New("stripe-mock not found: go install github.com/stripe/stripe-mock@v0.203.0 or set STRIPE_MOCK_BIN")
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			mockErr = err
			return
		}
		addr := l.Addr().String()
		_ = l.Close()
		mockCmd = exec.Command(bin, "-http-addr", addr)
		mockCmd.Stdout, mockCmd.Stderr = io.Discard, io.Discard
		if err := mockCmd.Start(); err != nil {
			mockErr = fmt.Errorf("start stripe-mock: %w", err)
			return
		}
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				_ = c.Close()
				mockURL = "http://" + addr
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		mockErr = fmt.Errorf("stripe-mock did not listen on %s", addr)
	})
	if mockErr != nil {
		if os.Getenv("CI") != "" || !mockMissing {
			t.Fatal(mockErr)
		}
		t.Skip(mockErr)
	}
	return mockURL
}

// sentRequest is one request as it went over the wire.
type sentRequest struct {
	Method, Path string
	Header       http.Header
	Form         url.Values
}

// recorder keeps what the gateway sent, so tests check parameters as well as
// stripe-mock's acceptance of them.
type recorder struct {
	mu   sync.Mutex
	reqs []sentRequest
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	form, _ := url.ParseQuery(string(body))
	if req.Method == http.MethodGet {
		form = req.URL.Query()
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, sentRequest{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Form: form})
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) last(t *testing.T) sentRequest {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request sent")
	}
	return r.reqs[len(r.reqs)-1]
}

func newMockGateway(t *testing.T) (*Stripe, *recorder) {
	base := stripeMock(t)
	rec := &recorder{}
	gw := NewStripe(StripeConfig{
		SecretKey:  "sk_test_contract",
		APIBase:    base,
		HTTPClient: &http.Client{Transport: rec, Timeout: 10 * time.Second},
	})
	return gw, rec
}

func wantForm(t *testing.T, r sentRequest, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := r.Form.Get(k); got != v {
			t.Errorf("%s %s: param %s = %q, want %q (all: %v)", r.Method, r.Path, k, got, v, r.Form)
		}
	}
}

func TestContractCreateCustomer(t *testing.T) {
	gw, rec := newMockGateway(t)
	id, err := gw.CreateCustomer(context.Background(), CustomerRequest{
		IdempotencyKey: "cust_cli_1", ClientID: "cli_1", PracticeID: "prac_1", Email: "a@example.com", Name: "A Client",
	})
	if err != nil {
		t.Fatalf("stripe-mock rejected create customer: %v", err)
	}
	if !strings.HasPrefix(id, "cus_") {
		t.Errorf("customer id %q", id)
	}
	r := rec.last(t)
	if r.Method != http.MethodPost || r.Path != "/v1/customers" {
		t.Errorf("sent %s %s", r.Method, r.Path)
	}
	if got := r.Header.Get("Idempotency-Key"); got != "cust_cli_1" {
		t.Errorf("Idempotency-Key = %q", got)
	}
	wantForm(t, r, map[string]string{"email": "a@example.com", "metadata[client_id]": "cli_1", "metadata[practice_id]": "prac_1"})
}

func TestContractChargeCardSaved(t *testing.T) {
	gw, rec := newMockGateway(t)
	res, err := gw.Charge(context.Background(), ChargeRequest{
		IdempotencyKey: "pay_1", Amount: 9000, Currency: "USD", CustomerID: "cus_1",
		PaymentMethodID: "pm_card_visa", SaveCard: true, PayerName: "A Client", BillingZIP: "94107",
		Description: "INV-0042", ReturnURL: "https://billflow.example/pay/return",
		Metadata: map[string]string{"practice_id": "prac_1", "client_id": "cli_1", "invoice_id": "inv_1", "payment_id": "pay_1"},
	})
	if err != nil {
		t.Fatalf("stripe-mock rejected charge: %v", err)
	}
	if !strings.HasPrefix(res.PaymentIntentID, "pi_") {
		t.Errorf("payment intent id %q", res.PaymentIntentID)
	}
	r := rec.last(t)
	if r.Path != "/v1/payment_intents" || r.Header.Get("Idempotency-Key") != "pay_1" {
		t.Errorf("sent %s with key %q", r.Path, r.Header.Get("Idempotency-Key"))
	}
	wantForm(t, r, map[string]string{
		"amount": "9000", "currency": "usd", "confirm": "true", "customer": "cus_1",
		"payment_method": "pm_card_visa", "setup_future_usage": "off_session",
		"return_url": "https://billflow.example/pay/return", "metadata[payment_id]": "pay_1",
		"payment_method_types[0]": "card", "expand[0]": "payment_method",
	})
}

func TestContractChargeOffSessionSavedMethod(t *testing.T) {
	gw, rec := newMockGateway(t)
	// A real pm_ ID: the gateway first reads it to learn card vs bank.
	_, err := gw.Charge(context.Background(), ChargeRequest{
		IdempotencyKey: "pay_2", Amount: 4500, Currency: "usd", CustomerID: "cus_1",
		PaymentMethodID: "pm_1Abc", OffSession: true, ReturnURL: "https://ignored.example",
		Metadata: map[string]string{"payment_id": "pay_2"},
	})
	if err != nil {
		t.Fatalf("stripe-mock rejected off-session charge: %v", err)
	}
	r := rec.last(t)
	wantForm(t, r, map[string]string{"off_session": "true", "return_url": "", "payment_method": "pm_1Abc"})
	rec.mu.Lock()
	first := rec.reqs[len(rec.reqs)-2]
	rec.mu.Unlock()
	if first.Method != http.MethodGet || first.Path != "/v1/payment_methods/pm_1Abc" {
		t.Errorf("expected a payment method lookup first, got %s %s", first.Method, first.Path)
	}
}

func TestContractChargeBankDebit(t *testing.T) {
	gw, rec := newMockGateway(t)
	_, err := gw.Charge(context.Background(), ChargeRequest{
		IdempotencyKey: "pay_3", Amount: 18000, Currency: "usd", CustomerID: "cus_1",
		PaymentMethodID: "pm_usBankAccount", SaveCard: true,
		Metadata: map[string]string{"payment_id": "pay_3"},
	})
	if err != nil {
		t.Fatalf("stripe-mock rejected bank debit: %v", err)
	}
	wantForm(t, rec.last(t), map[string]string{
		"payment_method_types[0]":                 "us_bank_account",
		"mandate_data[customer_acceptance][type]": "offline",
	})
}

func TestContractGetAndFindPaymentIntent(t *testing.T) {
	gw, rec := newMockGateway(t)
	res, err := gw.GetPaymentIntent(context.Background(), "pi_123")
	if err != nil {
		t.Fatalf("get payment intent: %v", err)
	}
	if res.PaymentIntentID == "" {
		t.Error("no payment intent id")
	}
	if r := rec.last(t); r.Method != http.MethodGet || r.Path != "/v1/payment_intents/pi_123" {
		t.Errorf("sent %s %s", r.Method, r.Path)
	}
	// stripe-mock answers with a fixture whose metadata is not ours, so the
	// gateway must not mistake it for our payment.
	found, err := gw.FindPaymentIntent(context.Background(), "pay_1")
	if err != nil {
		t.Fatalf("search payment intents: %v", err)
	}
	if found != nil {
		t.Errorf("fixture intent %s taken for payment pay_1", found.PaymentIntentID)
	}
	r := rec.last(t)
	if r.Path != "/v1/payment_intents/search" {
		t.Errorf("sent %s", r.Path)
	}
	wantForm(t, r, map[string]string{"query": "metadata['payment_id']:'pay_1'"})
}

func TestContractCancelPaymentIntent(t *testing.T) {
	gw, rec := newMockGateway(t)
	res, err := gw.CancelPaymentIntent(context.Background(), "pi_123")
	if err != nil {
		t.Fatalf("cancel payment intent: %v", err)
	}
	if res.PaymentIntentID == "" {
		t.Error("no payment intent id")
	}
	r := rec.last(t)
	if r.Method != http.MethodPost || r.Path != "/v1/payment_intents/pi_123/cancel" {
		t.Errorf("sent %s %s", r.Method, r.Path)
	}
	wantForm(t, r, map[string]string{"cancellation_reason": "abandoned", "expand[0]": "payment_method"})
}

func TestContractRefund(t *testing.T) {
	gw, rec := newMockGateway(t)
	res, err := gw.Refund(context.Background(), RefundRequest{
		IdempotencyKey: "ref_1", PaymentIntentID: "pi_123", Amount: 2500, Reason: "requested_by_customer",
		Metadata: map[string]string{"refund_id": "ref_1", "invoice_id": "inv_1"},
	})
	if err != nil {
		t.Fatalf("stripe-mock rejected refund: %v", err)
	}
	if !strings.HasPrefix(res.RefundID, "re_") {
		t.Errorf("refund id %q", res.RefundID)
	}
	r := rec.last(t)
	if r.Path != "/v1/refunds" || r.Header.Get("Idempotency-Key") != "ref_1" {
		t.Errorf("sent %s key %q", r.Path, r.Header.Get("Idempotency-Key"))
	}
	wantForm(t, r, map[string]string{"payment_intent": "pi_123", "amount": "2500", "reason": "requested_by_customer"})

	if _, err := gw.Refund(context.Background(), RefundRequest{PaymentIntentID: "pi_123", Reason: "oops"}); !errors.As(err, new(*Error)) || IsRetryable(err) {
		t.Errorf("bad reason: err = %v, want non-retryable *Error", err)
	}
}

func TestContractPaymentMethods(t *testing.T) {
	gw, rec := newMockGateway(t)
	ctx := context.Background()
	m, err := gw.AttachPaymentMethod(ctx, "pm_card_visa", "cus_1", "attach_1")
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if m.ID == "" || m.Type != "card" || m.Last4 == "" {
		t.Errorf("attached method %+v", m)
	}
	r := rec.last(t)
	if r.Path != "/v1/payment_methods/pm_card_visa/attach" || r.Header.Get("Idempotency-Key") != "attach_1" {
		t.Errorf("sent %s key %q", r.Path, r.Header.Get("Idempotency-Key"))
	}
	wantForm(t, r, map[string]string{"customer": "cus_1"})

	if err := gw.DetachPaymentMethod(ctx, "pm_123"); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if r := rec.last(t); r.Path != "/v1/payment_methods/pm_123/detach" || r.Method != http.MethodPost {
		t.Errorf("sent %s %s", r.Method, r.Path)
	}
	got, err := gw.GetPaymentMethod(ctx, "pm_123")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.ID == "" || got.Brand == "" {
		t.Errorf("method %+v", got)
	}
}

// TestContractCheckBites proves stripe-mock is really validating: the same
// backend the gateway uses sends a PaymentIntent with an unknown parameter
// and one with a non-integer amount, and both are rejected as invalid.
func TestContractCheckBites(t *testing.T) {
	gw, _ := newMockGateway(t)
	cases := map[string]func(p *stripe.PaymentIntentParams){
		"unknown parameter": func(p *stripe.PaymentIntentParams) { p.AddExtra("health_info", "F41.1") },
		"wrong type":        func(p *stripe.PaymentIntentParams) { p.AddExtra("confirm", "maybe") },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			p := &stripe.PaymentIntentParams{Amount: stripe.Int64(1000), Currency: stripe.String("usd")}
			mutate(p)
			pi := &stripe.PaymentIntent{}
			err := gw.Backend().Call(http.MethodPost, "/v1/payment_intents", "sk_test_contract", p, pi)
			if err == nil {
				t.Fatal("stripe-mock accepted a malformed request")
			}
			mapped := mapError("create payment intent", err)
			var pe *Error
			if !errors.As(mapped, &pe) || pe.Kind != KindInvalid || pe.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("got %v, want invalid 400", mapped)
			}
		})
	}
	// And the well-formed version of the same call passes.
	p := &stripe.PaymentIntentParams{Amount: stripe.Int64(1000), Currency: stripe.String("usd")}
	if err := gw.Backend().Call(http.MethodPost, "/v1/payment_intents", "sk_test_contract", p, &stripe.PaymentIntent{}); err != nil {
		t.Fatalf("well-formed request rejected: %v", err)
	}
}
