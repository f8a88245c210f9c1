package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/billflow/billflow/paylink"
	"github.com/billflow/billflow/store"
)

// The OpenAPI conformance test calls every operation of the document the
// server serves with every kind of credential, checks who gets what, and
// validates every response, success or error, against the document.

// cred is one kind of credential.
type cred string

const (
	credA    cred = "A key"  // practice A's API key (the stack's demo practice)
	credB    cred = "B key"  // another practice's API key
	credA1   cred = "A1 tok" // client A1's portal token (A1 owns the resources called)
	credA2   cred = "A2 tok" // client A2's portal token (same practice, another client)
	credNone cred = "none"   // no credential
	credLink cred = "link"   // A1's pay link (the /pay routes only)
)

var bearerCreds = []cred{credA, credB, credA1, credA2, credNone}

// accessClass is who an operation lets in, read from its security in the document.
type accessClass string

const (
	classPublic           accessClass = "public"
	classPracticeOnly     accessClass = "practice key"
	classPracticeOrClient accessClass = "practice key or its client's token"
	classCodec            accessClass = "practice key (none from loopback outside production)"
	classPortal           accessClass = "client portal token (query or cookie)"
	classPortalCookie     accessClass = "client portal cookie"
	classPayLink          accessClass = "pay link in the path"
)

func classOf(doc *openapi3.T, op *openapi3.Operation) accessClass {
	if _, ok := op.Extensions["x-billflow-credential"]; ok {
		return classPayLink
	}
	sec := op.Security
	if sec == nil {
		sec = &doc.Security
	}
	has := func(name string) bool {
		for _, req := range *sec {
			if _, ok := req[name]; ok {
				return true
			}
		}
		return false
	}
	anonymous := len(*sec) == 0
	for _, req := range *sec {
		anonymous = anonymous || len(req) == 0
	}
	switch {
	case has("portalTokenQuery"):
		return classPortal
	case has("portalCookie"):
		return classPortalCookie
	case has("practiceKey") && has("portalToken"):
		return classPracticeOrClient
	case has("practiceKey") && anonymous:
		return classCodec
	case has("practiceKey"):
		return classPracticeOnly
	case anonymous:
		return classPublic
	}
	return ""
}

// expected is each credential's status for a class, calling A1's resources
// (scoped: the path names one of them).
func expected(class accessClass, success int, scoped bool) map[cred]int {
	switch class {
	case classPublic:
		return map[cred]int{credA: success, credB: success, credA1: success, credA2: success, credNone: success}
	case classPracticeOnly:
		return map[cred]int{credA: success, credB: 404, credA1: 404, credA2: 404, credNone: 401}
	case classPracticeOrClient:
		return map[cred]int{credA: success, credB: 404, credA1: success, credA2: 404, credNone: 401}
	case classCodec:
		// Payloads are no practice's data; outside production the local UI
		// calls from loopback without a key. A portal token is never enough.
		return map[cred]int{credA: success, credB: success, credA1: 404, credA2: 404, credNone: success}
	case classPortal:
		// The portal shows the token's own client: A2's token opens A2's portal.
		return map[cred]int{credA: 401, credB: 401, credA1: success, credA2: success, credNone: 401}
	case classPortalCookie:
		// The portal's cookie holds a portal token; a key in its place is refused.
		a2 := success
		if scoped {
			a2 = 404
		}
		return map[cred]int{credA: 401, credB: 401, credA1: success, credA2: a2, credNone: 401}
	case classPayLink:
		// Only the link opens the page; a key or portal token in its place is an unknown link.
		return map[cred]int{credLink: success, credA: 404, credB: 404, credA1: 404, credA2: 404, credNone: 404}
	}
	return nil
}

// apiCall is one request.
type apiCall struct {
	method, path string // path with its query
	bearer       string
	body         []byte
	contentType  string
	header       []string // name, value, ...
}

func jsonCall(method, path, bearer string, body any, header ...string) apiCall {
	c := apiCall{method: method, path: path, bearer: bearer, header: header}
	if body != nil {
		c.body, _ = json.Marshal(body)
		c.contentType = "application/json"
	}
	return c
}

// apiResult is one response, read whole.
type apiResult struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r *apiResult) errCode() string {
	e, _ := r.json["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r *apiResult) str(k string) string { v, _ := r.json[k].(string); return v }

// scenario is a further request of one operation, for a status the
// credential matrix does not reach (a decline, a conflict, bad input).
type scenario struct {
	name  string
	want  int
	code  string // the error code expected, if any
	call  func(t *testing.T) apiCall
	check func(t *testing.T, r *apiResult)
}

// opCase says how to call one operation.
type opCase struct {
	success int
	// call builds the request for one credential; succeed says whether it is
	// expected to succeed (so it may first make what a success needs).
	call     func(t *testing.T, c cred, succeed bool) apiCall
	override map[cred]int
	check    func(t *testing.T, c cred, r *apiResult)
	before   []scenario
	after    []scenario
}

// conformance runs the calls and validates every response.
type conformance struct {
	s         *stack
	doc       *openapi3.T
	router    routers.Router
	opts      *openapi3filter.Options
	validated atomic.Int64
	cells     map[string]map[cred]string
	extras    map[string][]string
}

var registerDecoders sync.Once

func newConformance(t *testing.T, s *stack) *conformance {
	registerDecoders.Do(func() {
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/pdf", openapi3filter.FileBodyDecoder)
	})
	// The document under test is the one the server serves.
	res, err := http.Get(s.API.URL + "/v1/openapi.yaml")
	require.NoError(t, err)
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "application/yaml", res.Header.Get("Content-Type"))
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return &conformance{s: s, doc: doc, router: router, cells: map[string]map[cred]string{}, extras: map[string][]string{},
		opts: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.EnableFormatValidation()}}}
}

// send makes the request (never following redirects) and checks the
// response against the document: its status must be documented for the
// operation and its headers and body must match.
func (cf *conformance) send(t *testing.T, call apiCall) *apiResult {
	t.Helper()
	var body io.Reader
	if call.body != nil {
		body = bytes.NewReader(call.body)
	}
	req, err := http.NewRequest(call.method, cf.s.API.URL+call.path, body)
	require.NoError(t, err)
	if call.contentType != "" {
		req.Header.Set("Content-Type", call.contentType)
	}
	if call.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+call.bearer)
	}
	for i := 0; i+1 < len(call.header); i += 2 {
		req.Header.Set(call.header[i], call.header[i+1])
	}
	res, err := noRedirect.Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	out := &apiResult{status: res.StatusCode, header: res.Header, body: raw}
	_ = json.Unmarshal(raw, &out.json)
	if out.status == 404 && out.errCode() == "route_not_found" {
		return out // the caller decides: only a route still being built may say so
	}
	cf.validate(t, req, out)
	return out
}

func (cf *conformance) validate(t *testing.T, req *http.Request, r *apiResult) {
	t.Helper()
	route, params, err := cf.router.FindRoute(req)
	if !assert.NoError(t, err, "%s %s is not in the document", req.Method, req.URL.Path) {
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: cf.opts}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)), Options: cf.opts})
	cf.validated.Add(1)
	if err != nil {
		shown := string(r.body)
		if len(shown) > 600 {
			shown = shown[:600] + "…"
		}
		why := err.Error()
		if len(why) > 1500 {
			why = why[:1500] + "…"
		}
		t.Errorf("%s %s → %d (%s) does not match the document: %s\nbody: %s", req.Method, req.URL.Path, r.status,
			r.header.Get("Content-Type"), why, shown)
	}
}

// world is the fixture: practice A with clients A1 and A2 (and A3), practice B.
type world struct {
	keyA, keyB          string
	a1, a2, a3          string
	tokA1, tokA2, tokA3 string
	tokB1, b1, b1PM     string // practice B does not let clients remove cards
	invMain             string // A1's: partial payments on, a partial payment with a saved card
	invPaid             string // A1's: paid, then partly refunded
	invVoid             string // A1's: voided during the run
	inv3DS              string // A2's: for a card that needs 3-D Secure
	invNoPDF            string // A3's, stored without a workflow: no PDF yet, cheap to call
	pmA1                string // A1's saved card
	statement           string // A1's statement (document ID)
	payLink, expired    string // pay-link tokens of invMain
	payLink3DS          string // a pay link of inv3DS
	period              map[string]any
	encoded             []byte // codec-encoded payloads
}

func randomHex16() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func buildWorld(t *testing.T, s *stack, cf *conformance) *world {
	ctx := context.Background()
	w := &world{keyA: s.Key}
	p, keyB, err := s.Store.CreatePractice(ctx, store.NewPractice{Name: "Elsewhere Counseling", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	no := false
	_, err = s.Store.UpdatePracticeSettings(ctx, p.ID, store.PracticeSettings{AllowClientCardRemoval: &no})
	require.NoError(t, err)
	w.keyB = keyB
	w.a1, w.a2, w.a3 = s.newClient(t, w.keyA), s.newClient(t, w.keyA), s.newClient(t, w.keyA)
	w.tokA1, w.tokA2, w.tokA3 = s.portalToken(t, w.keyA, w.a1), s.portalToken(t, w.keyA, w.a2), s.portalToken(t, w.keyA, w.a3)
	w.b1 = s.newClient(t, w.keyB)
	w.tokB1 = s.portalToken(t, w.keyB, w.b1)
	pm := cf.send(t, jsonCall("POST", "/v1/clients/"+w.b1+"/payment-methods", w.tokB1, map[string]any{"payment_method": "pm_card_visa"}))
	require.Equal(t, 201, pm.status, string(pm.body))
	w.b1PM = pm.str("id")

	w.invMain = s.newInvoice(t, w.keyA, w.a1, 20000, map[string]any{"partial_payments": map[string]any{"enabled": true,
		"minimum_amount": 500, "max_installments": 12}}).str("id")
	w.invPaid = s.newInvoice(t, w.keyA, w.a1, 6000, nil).str("id")
	w.invVoid = s.newInvoice(t, w.keyA, w.a1, 9000, nil).str("id")
	w.inv3DS = s.newInvoice(t, w.keyA, w.a2, 9000, nil).str("id")
	today := dateOnly(time.Now())
	noPDF, err := s.Store.CreateInvoice(ctx, store.NewInvoice{PracticeID: s.Practice, ClientID: w.a3, Currency: "usd", IssueDate: today,
		DueDate: today.AddDate(0, 0, 7), Items: []store.Item{{ServiceDate: today, Description: "Session", Units: 1, UnitAmount: 9000}}})
	require.NoError(t, err)
	w.invNoPDF = noPDF.ID

	// A partial payment that saves the card.
	pay := cf.send(t, jsonCall("POST", "/v1/invoices/"+w.invMain+"/payments", w.keyA, map[string]any{"amount": 8000,
		"payment_method": "pm_card_visa", "save_card": true, "payer_name": "Ada Lovelace", "billing_zip": "10001"}))
	require.Equal(t, 200, pay.status, string(pay.body))
	pms := cf.send(t, jsonCall("GET", "/v1/clients/"+w.a1+"/payment-methods", w.keyA, nil))
	require.Equal(t, 200, pms.status)
	saved := pms.json["data"].([]any)
	require.Len(t, saved, 1)
	w.pmA1 = saved[0].(map[string]any)["id"].(string)
	// A paid invoice, then a partial refund of it. (A refund closes an
	// invoice to further payments, so it is not invMain.)
	paid := cf.send(t, jsonCall("POST", "/v1/invoices/"+w.invPaid+"/payments", w.keyA, map[string]any{"amount": 6000,
		"payment_method": "pm_card_mastercard"}))
	require.Equal(t, 200, paid.status, string(paid.body))
	ref := cf.send(t, jsonCall("POST", "/v1/invoices/"+w.invPaid+"/refunds", w.keyA, map[string]any{"amount": 1000,
		"payment_id": paid.json["payment"].(map[string]any)["id"], "reason": "requested_by_customer"}))
	require.Equal(t, 200, ref.status, string(ref.body))

	w.period = map[string]any{"from": today.AddDate(0, 0, -30).Format(time.DateOnly), "to": today.Format(time.DateOnly)}
	st := cf.send(t, jsonCall("POST", "/v1/clients/"+w.a1+"/statements", w.keyA, w.period))
	require.Equal(t, 201, st.status, string(st.body))
	w.statement = st.str("id")

	// Pay links of invMain: a live one and one past its expiry.
	w.payLink, err = paylink.New(s.Config.PayLinkSecret, w.invMain, time.Now().Add(24*time.Hour))
	require.NoError(t, err)
	require.NoError(t, s.Store.SavePayLink(ctx, w.invMain, paylink.Hash(w.payLink), time.Now().Add(24*time.Hour)))
	past := time.Now().Add(-time.Hour)
	w.expired, err = paylink.New(s.Config.PayLinkSecret, w.invMain, past)
	require.NoError(t, err)
	require.NoError(t, s.Store.SavePayLink(ctx, w.invMain, paylink.Hash(w.expired), past))
	w.payLink3DS, err = paylink.New(s.Config.PayLinkSecret, w.inv3DS, time.Now().Add(24*time.Hour))
	require.NoError(t, err)
	require.NoError(t, s.Store.SavePayLink(ctx, w.inv3DS, paylink.Hash(w.payLink3DS), time.Now().Add(24*time.Hour)))

	enc := cf.send(t, jsonCall("POST", "/codec/encode", w.keyA, map[string]any{"payloads": []any{map[string]any{
		"metadata": map[string]any{"encoding": "anNvbi9wbGFpbg=="}, "data": "eyJpbnZvaWNlIjoiMSJ9"}}}))
	require.Equal(t, 200, enc.status, string(enc.body))
	w.encoded = enc.body

	// The invoice PDF is rendered by the worker after creation.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		res, _ := s.download(t, "/v1/invoices/"+w.invMain+"/pdf", w.keyA)
		assert.Equal(c, 200, res.StatusCode)
	}, 60*time.Second, 250*time.Millisecond, "invMain's PDF")
	return w
}

func (w *world) bearer(c cred) string {
	switch c {
	case credA:
		return w.keyA
	case credB:
		return w.keyB
	case credA1:
		return w.tokA1
	case credA2:
		return w.tokA2
	}
	return ""
}

var webhookSeq atomic.Int64

func signedEvent(typ string) ([]byte, string) {
	payload := []byte(fmt.Sprintf(`{"id":"evt_oas_%d_%d","object":"event","api_version":"2023-10-16","created":%d,"type":%q,`+
		`"data":{"object":{"id":"cus_oas","object":"customer"}}}`, time.Now().UnixNano(), webhookSeq.Add(1), time.Now().Unix(), typ))
	return payload, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: webhookSecret}).Header
}

// payForm is a pay-page form for a part payment with a test card (or the
// full amount, for part "full:<minor units>"); every call has a fresh nonce,
// so it is a new attempt.
func payForm(csrf, card, part string) []byte {
	v := url.Values{"csrf": {csrf}, "nonce": {randomHex16()}, "amount_choice": {"part"}, "amount_part": {part}, "method": {"new"},
		"test_card": {card}, "cardholder_name": {"Ada Lovelace"}, "billing_zip": {"10001"}}
	if full, ok := strings.CutPrefix(part, "full:"); ok {
		v.Del("amount_part")
		v.Set("amount_choice", "full")
		v.Set("full_amount", full)
	}
	return []byte(v.Encode())
}

// cases says how to call each operation of the document, in the order they
// run: reads first, then what changes A1's account, the balance payment last.
func (w *world) cases(t *testing.T, cf *conformance) ([]string, map[string]opCase) {
	s := cf.s
	today := dateOnly(time.Now())
	simple := func(method, path string) func(*testing.T, cred, bool) apiCall {
		return func(_ *testing.T, c cred, _ bool) apiCall { return jsonCall(method, path, w.bearer(c), nil) }
	}
	withBody := func(method, path string, body any) func(*testing.T, cred, bool) apiCall {
		return func(_ *testing.T, c cred, _ bool) apiCall { return jsonCall(method, path, w.bearer(c), body) }
	}
	payToken := func(c cred) string {
		switch c {
		case credLink:
			return w.payLink
		case credNone:
			return "pl1.forged.token"
		}
		return w.bearer(c) // a key or portal token is no pay link
	}
	csrfs := map[string]string{}
	csrfFor := func(t *testing.T, token string) string {
		if csrfs[token] == "" {
			pg := cf.send(t, apiCall{method: "GET", path: "/pay/" + token})
			require.Equal(t, 200, pg.status)
			csrfs[token] = formFields(t, string(pg.body)).Get("csrf")
		}
		return csrfs[token]
	}
	csrfOf := func(t *testing.T) string { return csrfFor(t, w.payLink) }
	freshInvoiceA1 := func(t *testing.T) string {
		return s.newInvoice(t, w.keyA, w.a1, 5000, nil).str("id")
	}

	order := []string{
		"GET /healthz", "GET /readyz", "GET /metrics", "GET /v1/openapi.yaml",
		"OPTIONS /codec/encode", "POST /codec/encode", "OPTIONS /codec/decode", "POST /codec/decode",
		"POST /v1/webhooks/stripe",
		"POST /v1/clients", "GET /v1/clients/{id}", "POST /v1/clients/{id}/portal-token",
		"GET /v1/invoices", "GET /v1/invoices/{id}", "GET /v1/invoices/{id}/pdf", "GET /v1/documents/{id}/pdf",
		"GET /v1/clients/{id}/payment-methods", "POST /v1/clients/{id}/payment-methods", "DELETE /v1/clients/{id}/payment-methods/{pm}",
		"POST /v1/clients/{id}/statements", "POST /v1/clients/{id}/superbills",
		"GET /v1/clients/{id}/billing", "GET /v1/clients/{id}/account-history",
		"GET /portal", "GET /portal/invoices/{id}/pay", "GET /portal/invoices/{id}/pdf", "GET /portal/documents/{id}/pdf",
		"POST /portal/payment-methods/{pm}/remove", "POST /portal/sign-out",
		"GET /pay/{token}", "GET /pay/{token}/pdf", "POST /pay/{token}", "GET /portal/pay/{token}", "POST /portal/pay/{token}",
		"POST /v1/invoices", "POST /v1/invoices/{id}/void", "POST /v1/invoices/{id}/send",
		"POST /v1/invoices/{id}/payments", "POST /v1/invoices/{id}/refunds",
		"GET /portal/pay", "POST /v1/clients/{id}/balance-payments", "POST /portal/pay",
	}
	cases := map[string]opCase{
		"GET /healthz":          {success: 200, call: simple("GET", "/healthz")},
		"GET /readyz":           {success: 200, call: simple("GET", "/readyz")},
		"GET /metrics":          {success: 200, call: simple("GET", "/metrics")},
		"GET /v1/openapi.yaml":  {success: 200, call: simple("GET", "/v1/openapi.yaml")},
		"OPTIONS /codec/encode": {success: 204, call: w.preflight("/codec/encode", s)},
		"OPTIONS /codec/decode": {success: 204, call: w.preflight("/codec/decode", s)},
		"POST /codec/encode": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "POST", path: "/codec/encode", bearer: w.bearer(c), contentType: "application/json",
				body: []byte(`{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"MQ=="}]}`)}
		}},
		"POST /codec/decode": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "POST", path: "/codec/decode", bearer: w.bearer(c), contentType: "application/json", body: w.encoded}
		}, check: func(t *testing.T, c cred, r *apiResult) {
			if r.status == 200 {
				assert.Contains(t, string(r.body), "eyJpbnZvaWNlIjoiMSJ9", "decoded back to the plain payload")
			}
		}, after: []scenario{{name: "not payloads", want: 400, code: "invalid_payloads", call: func(*testing.T) apiCall {
			return apiCall{method: "POST", path: "/codec/decode", bearer: w.keyA, contentType: "application/json", body: []byte(`{"payloads":"x"}`)}
		}}}},
		"POST /v1/webhooks/stripe": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			payload, sig := signedEvent("customer.created")
			return apiCall{method: "POST", path: "/v1/webhooks/stripe", bearer: w.bearer(c), contentType: "application/json",
				body: payload, header: []string{"Stripe-Signature", sig}}
		}, after: []scenario{
			{name: "delivered twice", want: 200, call: func(t *testing.T) apiCall {
				payload, sig := signedEvent("customer.updated")
				first := cf.send(t, apiCall{method: "POST", path: "/v1/webhooks/stripe", contentType: "application/json", body: payload,
					header: []string{"Stripe-Signature", sig}})
				require.Equal(t, 200, first.status)
				return apiCall{method: "POST", path: "/v1/webhooks/stripe", contentType: "application/json", body: payload,
					header: []string{"Stripe-Signature", sig}}
			}},
			{name: "unsigned", want: 400, code: "invalid_signature", call: func(*testing.T) apiCall {
				payload, _ := signedEvent("customer.created")
				return apiCall{method: "POST", path: "/v1/webhooks/stripe", contentType: "application/json", body: payload}
			}},
		}},

		"POST /v1/clients": {success: 201, override: map[cred]int{credB: 201}, // B makes a client of its own
			call: withBody("POST", "/v1/clients", map[string]any{"name": "Grace Hopper", "email": "grace@example.com",
				"address":   map[string]any{"line1": "1 Main St", "city": "Arlington", "state": "VA", "postal_code": "22201", "country": "US"},
				"insurance": map[string]any{"payer": "Aetna", "member_id": "W123"}}),
			after: []scenario{{name: "bad email", want: 400, code: "parameter_invalid", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients", w.keyA, map[string]any{"name": "X", "email": "not an email"})
			}}, {name: "unknown field", want: 400, code: "invalid_json", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients", w.keyA, map[string]any{"name": "X", "email": "x@example.com", "ssn": "1"})
			}}, {name: "retried with its Idempotency-Key", want: 201, call: func(t *testing.T) apiCall {
				call := jsonCall("POST", "/v1/clients", w.keyA, map[string]any{"name": "Ada Retry", "email": "ada@example.com"},
					"Idempotency-Key", "oas-"+randomHex16())
				require.Equal(t, 201, cf.send(t, call).status)
				return call
			}, check: func(t *testing.T, r *apiResult) {
				assert.Equal(t, "true", r.header.Get("Idempotent-Replayed"))
			}}, {name: "its key with another body", want: 409, code: "idempotency_key_reused", call: func(t *testing.T) apiCall {
				key := "oas-" + randomHex16()
				require.Equal(t, 201, cf.send(t, jsonCall("POST", "/v1/clients", w.keyA, map[string]any{"name": "Ada", "email": "ada@example.com"},
					"Idempotency-Key", key)).status)
				return jsonCall("POST", "/v1/clients", w.keyA, map[string]any{"name": "Bob", "email": "bob@example.com"}, "Idempotency-Key", key)
			}}}},
		"GET /v1/clients/{id}": {success: 200, call: simple("GET", "/v1/clients/"+w.a1),
			after: []scenario{{name: "unknown client", want: 404, code: "resource_missing", call: func(*testing.T) apiCall {
				return jsonCall("GET", "/v1/clients/cli_doesnotexist", w.keyA, nil)
			}}}},
		"POST /v1/clients/{id}/portal-token": {success: 201, call: simple("POST", "/v1/clients/"+w.a1+"/portal-token"),
			after: []scenario{{name: "a year", want: 400, code: "parameter_invalid", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients/"+w.a1+"/portal-token", w.keyA, map[string]any{"expires_in_days": 365})
			}}}},

		"GET /v1/invoices": {success: 200, override: map[cred]int{credB: 200}, // B's own invoices: none of A1's
			call: simple("GET", "/v1/invoices?client_id="+w.a1),
			check: func(t *testing.T, c cred, r *apiResult) {
				switch c {
				case credB:
					assert.Empty(t, r.json["data"], "another practice lists nothing of A1")
				case credA, credA1:
					assert.NotEmpty(t, r.json["data"])
					assert.NotContains(t, string(r.body), w.inv3DS, "only A1's invoices")
				}
			},
			after: []scenario{
				{name: "bad status", want: 400, code: "parameter_invalid", call: func(*testing.T) apiCall {
					return jsonCall("GET", "/v1/invoices?status=overdue", w.keyA, nil)
				}},
				{name: "a page of one", want: 200, call: func(*testing.T) apiCall {
					return jsonCall("GET", "/v1/invoices?limit=1&client_id="+w.a1, w.tokA1, nil)
				}},
			}},
		"GET /v1/invoices/{id}": {success: 200, call: simple("GET", "/v1/invoices/"+w.invPaid),
			check: func(t *testing.T, c cred, r *apiResult) {
				if r.status == 200 {
					assert.NotEmpty(t, r.json["items"])
					assert.NotEmpty(t, r.json["payments"])
					assert.NotEmpty(t, r.json["refunds"])
				}
			}},
		"GET /v1/invoices/{id}/pdf": {success: 200, call: simple("GET", "/v1/invoices/"+w.invMain+"/pdf"),
			after: []scenario{{name: "not rendered yet", want: 404, code: "document_not_ready", call: func(*testing.T) apiCall {
				return jsonCall("GET", "/v1/invoices/"+w.invNoPDF+"/pdf", w.keyA, nil)
			}}}},
		"GET /v1/documents/{id}/pdf": {success: 200, call: simple("GET", "/v1/documents/"+w.statement+"/pdf"),
			after: []scenario{{name: "unknown document", want: 404, code: "resource_missing", call: func(*testing.T) apiCall {
				return jsonCall("GET", "/v1/documents/doc_doesnotexist/pdf", w.keyA, nil)
			}}}},

		"GET /v1/clients/{id}/payment-methods": {success: 200, call: simple("GET", "/v1/clients/"+w.a1+"/payment-methods")},
		"POST /v1/clients/{id}/payment-methods": {success: 201, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return jsonCall("POST", "/v1/clients/"+w.a1+"/payment-methods", w.bearer(c), map[string]any{"payment_method": "pm_card_mastercard",
				"cardholder_name": "Ada Lovelace", "billing_zip": "10001"})
		}, after: []scenario{
			{name: "declined card", want: 402, code: "card_declined", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients/"+w.a1+"/payment-methods", w.keyA, map[string]any{"payment_method": "pm_card_chargeDeclined"})
			}},
			{name: "not a pm_ ID", want: 400, code: "parameter_invalid", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients/"+w.a1+"/payment-methods", w.keyA, map[string]any{"payment_method": "4242424242424242"})
			}},
		}},
		"DELETE /v1/clients/{id}/payment-methods/{pm}": {success: 200, call: func(t *testing.T, c cred, succeed bool) apiCall {
			target := w.pmA1 // kept: the others must not reach it
			if succeed {
				add := cf.send(t, jsonCall("POST", "/v1/clients/"+w.a1+"/payment-methods", w.keyA, map[string]any{"payment_method": "pm_card_amex"}))
				require.Equal(t, 201, add.status, string(add.body))
				target = add.str("id")
			}
			return jsonCall("DELETE", "/v1/clients/"+w.a1+"/payment-methods/"+target, w.bearer(c), nil)
		}, after: []scenario{
			{name: "unknown method", want: 404, code: "resource_missing", call: func(*testing.T) apiCall {
				return jsonCall("DELETE", "/v1/clients/"+w.a1+"/payment-methods/spm_doesnotexist", w.keyA, nil)
			}},
			{name: "practice B forbids clients", want: 403, code: "card_removal_not_allowed", call: func(*testing.T) apiCall {
				return jsonCall("DELETE", "/v1/clients/"+w.b1+"/payment-methods/"+w.b1PM, w.tokB1, nil)
			}},
		}},

		"POST /v1/clients/{id}/statements": {success: 201, call: withBody("POST", "/v1/clients/"+w.a1+"/statements", w.period),
			check: func(t *testing.T, c cred, r *apiResult) {
				if r.status == 201 {
					assert.Equal(t, w.statement, r.str("id"), "the same period is the same document")
				}
			},
			after: []scenario{{name: "to before from", want: 400, code: "parameter_invalid", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients/"+w.a1+"/statements", w.keyA, map[string]any{"from": "2026-02-01", "to": "2026-01-01"})
			}}}},
		"POST /v1/clients/{id}/superbills": {success: 201, call: withBody("POST", "/v1/clients/"+w.a1+"/superbills", w.period),
			after: []scenario{{name: "no services", want: 400, code: "no_services_in_period", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients/"+w.a1+"/superbills", w.keyA, map[string]any{"from": "2020-01-01", "to": "2020-01-31"})
			}}}},

		"GET /v1/clients/{id}/billing": {success: 200, call: simple("GET", "/v1/clients/"+w.a1+"/billing"),
			check: func(t *testing.T, c cred, r *apiResult) {
				if r.status == 200 {
					assert.Contains(t, string(r.body), w.invMain)
					assert.Contains(t, string(r.body), w.statement)
				}
			}},
		"GET /v1/clients/{id}/account-history": {success: 200,
			call: simple("GET", "/v1/clients/"+w.a1+"/account-history?from="+today.AddDate(0, 0, -30).Format(time.DateOnly)+"&to="+today.Format(time.DateOnly)),
			check: func(t *testing.T, c cred, r *apiResult) {
				if r.status == 200 {
					for _, typ := range []string{`"session"`, `"payment"`, `"refund"`} {
						assert.Contains(t, string(r.body), typ)
					}
				}
			},
			after: []scenario{{name: "from after to", want: 400, call: func(*testing.T) apiCall {
				return jsonCall("GET", "/v1/clients/"+w.a1+"/account-history?from=2026-02-01&to=2026-01-01", w.keyA, nil)
			}}}},
		"GET /portal": {success: 303, call: func(_ *testing.T, c cred, _ bool) apiCall {
			if c == credNone {
				return apiCall{method: "GET", path: "/portal"}
			}
			return apiCall{method: "GET", path: "/portal?token=" + url.QueryEscape(w.bearer(c))}
		}, check: func(t *testing.T, c cred, r *apiResult) {
			if r.status == 303 {
				assert.Contains(t, r.header.Get("Set-Cookie"), "bf_portal=")
			}
		}, after: []scenario{
			{name: "with the cookie", want: 200, call: func(*testing.T) apiCall {
				return apiCall{method: "GET", path: "/portal", header: w.portalCookie(w.tokA1)}
			}},
			{name: "history range reversed", want: 400, call: func(*testing.T) apiCall {
				return apiCall{method: "GET", path: "/portal?from=2026-02-01&to=2026-01-01", header: w.portalCookie(w.tokA1)}
			}},
		}},
		"GET /portal/pay": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "GET", path: "/portal/pay", header: w.portalCookie(w.bearer(c))}
		}},
		"POST /portal/pay": {success: 303, call: func(t *testing.T, c cred, succeed bool) apiCall {
			body := []byte("csrf=x")
			if succeed {
				if c == credA1 {
					freshInvoiceA1(t) // the balance payments before settled everything
				}
				body = w.portalPayForm(t, cf, w.bearer(c), "pm_card_visa")
			}
			return apiCall{method: "POST", path: "/portal/pay", header: w.portalCookie(w.bearer(c)),
				contentType: "application/x-www-form-urlencoded", body: body}
		}, before: []scenario{
			{name: "declined card", want: 402, call: func(t *testing.T) apiCall {
				freshInvoiceA1(t)
				return apiCall{method: "POST", path: "/portal/pay", header: w.portalCookie(w.tokA1),
					contentType: "application/x-www-form-urlencoded", body: w.portalPayForm(t, cf, w.tokA1, "pm_card_chargeDeclined")}
			}},
			{name: "no CSRF token", want: 403, call: func(*testing.T) apiCall {
				return apiCall{method: "POST", path: "/portal/pay", header: w.portalCookie(w.tokA1),
					contentType: "application/x-www-form-urlencoded", body: []byte("nonce=" + randomHex16())}
			}},
			{name: "balance changed", want: 409, call: func(t *testing.T) apiCall {
				body := w.portalPayForm(t, cf, w.tokA1, "pm_card_visa")
				freshInvoiceA1(t) // the balance grows after the page was shown
				return apiCall{method: "POST", path: "/portal/pay", header: w.portalCookie(w.tokA1),
					contentType: "application/x-www-form-urlencoded", body: body}
			}},
		}},
		"GET /portal/invoices/{id}/pay": {success: 303, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "GET", path: "/portal/invoices/" + w.invMain + "/pay", header: w.portalCookie(w.bearer(c))}
		}, check: func(t *testing.T, c cred, r *apiResult) {
			if r.status == 303 {
				assert.Contains(t, r.header.Get("Location"), "/pay/pl1.")
			}
		}},
		"GET /portal/invoices/{id}/pdf": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "GET", path: "/portal/invoices/" + w.invMain + "/pdf", header: w.portalCookie(w.bearer(c))}
		}, after: []scenario{{name: "not rendered yet", want: 404, call: func(*testing.T) apiCall {
			return apiCall{method: "GET", path: "/portal/invoices/" + w.invNoPDF + "/pdf", header: w.portalCookie(w.tokA3)}
		}}}},
		"GET /portal/documents/{id}/pdf": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "GET", path: "/portal/documents/" + w.statement + "/pdf", header: w.portalCookie(w.bearer(c))}
		}},
		"POST /portal/payment-methods/{pm}/remove": {success: 303, call: func(t *testing.T, c cred, succeed bool) apiCall {
			target := w.pmA1
			if succeed {
				add := cf.send(t, jsonCall("POST", "/v1/clients/"+w.a1+"/payment-methods", w.keyA, map[string]any{"payment_method": "pm_card_amex"}))
				require.Equal(t, 201, add.status, string(add.body))
				target = add.str("id")
			}
			return apiCall{method: "POST", path: "/portal/payment-methods/" + target + "/remove", header: w.portalCookie(w.bearer(c)),
				contentType: "application/x-www-form-urlencoded", body: w.portalCSRFForm(t, cf, w.bearer(c))}
		}, after: []scenario{
			{name: "no CSRF token", want: 403, call: func(*testing.T) apiCall {
				return apiCall{method: "POST", path: "/portal/payment-methods/" + w.pmA1 + "/remove", header: w.portalCookie(w.tokA1),
					contentType: "application/x-www-form-urlencoded", body: []byte("csrf=wrong")}
			}},
			{name: "practice B forbids clients", want: 403, call: func(t *testing.T) apiCall {
				return apiCall{method: "POST", path: "/portal/payment-methods/" + w.b1PM + "/remove", header: w.portalCookie(w.tokB1),
					contentType: "application/x-www-form-urlencoded", body: w.portalCSRFForm(t, cf, w.tokB1)}
			}},
		}},
		"POST /portal/sign-out": {success: 200, call: func(t *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "POST", path: "/portal/sign-out", header: w.portalCookie(w.bearer(c)),
				contentType: "application/x-www-form-urlencoded", body: w.portalCSRFForm(t, cf, w.bearer(c))}
		}, check: func(t *testing.T, c cred, r *apiResult) {
			if r.status == 200 {
				assert.Contains(t, r.header.Get("Set-Cookie"), "bf_portal=;")
			}
		}},

		"GET /pay/{token}": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "GET", path: "/pay/" + payToken(c), bearer: w.bearer(c)}
		}, after: []scenario{{name: "expired link", want: 410, call: func(*testing.T) apiCall {
			return apiCall{method: "GET", path: "/pay/" + w.expired}
		}}}},
		"GET /pay/{token}/pdf": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "GET", path: "/pay/" + payToken(c) + "/pdf", bearer: w.bearer(c)}
		}, after: []scenario{{name: "expired link", want: 410, call: func(*testing.T) apiCall {
			return apiCall{method: "GET", path: "/pay/" + w.expired + "/pdf"}
		}}}},
		"POST /pay/{token}": {success: 200, call: func(t *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "POST", path: "/pay/" + payToken(c), bearer: w.bearer(c), contentType: "application/x-www-form-urlencoded",
				body: payForm(csrfOf(t), "pm_card_visa", "10.00")}
		}, after: []scenario{
			{name: "declined card", want: 402, call: func(t *testing.T) apiCall {
				return apiCall{method: "POST", path: "/pay/" + w.payLink, contentType: "application/x-www-form-urlencoded",
					body: payForm(csrfOf(t), "pm_card_chargeDeclined", "10.00")}
			}},
			{name: "card needs 3-D Secure", want: 303, call: func(t *testing.T) apiCall {
				return apiCall{method: "POST", path: "/pay/" + w.payLink3DS, contentType: "application/x-www-form-urlencoded",
					body: payForm(csrfFor(t, w.payLink3DS), "pm_card_authenticationRequired", "full:9000")}
			}},
			{name: "no CSRF token", want: 403, call: func(*testing.T) apiCall {
				return apiCall{method: "POST", path: "/pay/" + w.payLink, contentType: "application/x-www-form-urlencoded",
					body: payForm("", "pm_card_visa", "10.00")}
			}},
			{name: "saved card, no portal session", want: 403, call: func(t *testing.T) apiCall {
				v, err := url.ParseQuery(string(payForm(csrfOf(t), "pm_card_visa", "10.00")))
				require.NoError(t, err)
				v.Set("method", "saved:spm_anycard")
				return apiCall{method: "POST", path: "/pay/" + w.payLink, contentType: "application/x-www-form-urlencoded",
					body: []byte(v.Encode())}
			}},
			{name: "amount not a number", want: 400, call: func(t *testing.T) apiCall {
				return apiCall{method: "POST", path: "/pay/" + w.payLink, contentType: "application/x-www-form-urlencoded",
					body: payForm(csrfOf(t), "pm_card_visa", "ten dollars")}
			}},
			{name: "expired link", want: 410, call: func(t *testing.T) apiCall {
				return apiCall{method: "POST", path: "/pay/" + w.expired, contentType: "application/x-www-form-urlencoded",
					body: payForm(csrfOf(t), "pm_card_visa", "10.00")}
			}},
		}},

		// Inside the portal: the same page, with A1's session cookie along
		// (a pay link of A1's invoice); without the link it is no page.
		"GET /portal/pay/{token}": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "GET", path: "/portal/pay/" + payToken(c), header: w.portalCookie(w.tokA1)}
		}},
		"POST /portal/pay/{token}": {success: 200, call: func(t *testing.T, c cred, _ bool) apiCall {
			return apiCall{method: "POST", path: "/portal/pay/" + payToken(c), header: w.portalCookie(w.tokA1),
				contentType: "application/x-www-form-urlencoded", body: payForm(csrfOf(t), "pm_card_visa", "10.00")}
		}},

		"POST /v1/invoices": {success: 201, override: map[cred]int{credB: 400}, // A1 is no client of B's: resource_missing on client_id
			call: withBody("POST", "/v1/invoices", map[string]any{"client_id": w.a1, "due_date": today.AddDate(0, 0, 14).Format(time.DateOnly),
				"memo": "Thank you", "items": []map[string]any{{"service_date": today.Format(time.DateOnly), "description": "Family therapy, 50 min",
					"unit_amount": 15000, "cpt_code": "90847", "diagnosis_codes": []string{"F43.23"}, "place_of_service": "11", "modifiers": []string{"95"}}}}),
			check: func(t *testing.T, c cred, r *apiResult) {
				if c == credB {
					assert.Equal(t, "resource_missing", r.errCode())
				}
			},
			after: []scenario{{name: "no items", want: 400, code: "parameter_invalid", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/invoices", w.keyA, map[string]any{"client_id": w.a1, "due_date": today.Format(time.DateOnly), "items": []any{}})
			}}}},
		"POST /v1/invoices/{id}/void": {success: 200, call: simple("POST", "/v1/invoices/"+w.invVoid+"/void"),
			after: []scenario{{name: "void again", want: 409, call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/invoices/"+w.invVoid+"/void", w.keyA, nil)
			}}}},
		"POST /v1/invoices/{id}/send": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			return jsonCall("POST", "/v1/invoices/"+w.invMain+"/send", w.bearer(c), nil, "Idempotency-Key", "oas-send-"+randomHex16())
		}, after: []scenario{{name: "void invoice", want: 409, call: func(*testing.T) apiCall {
			return jsonCall("POST", "/v1/invoices/"+w.invVoid+"/send", w.keyA, nil)
		}}}},
		"POST /v1/invoices/{id}/payments": {success: 200, call: func(_ *testing.T, c cred, _ bool) apiCall {
			body := map[string]any{"amount": 1000, "payment_method": "pm_card_visa"}
			if c == credA1 {
				body = map[string]any{"amount": 1000, "saved_payment_method_id": w.pmA1}
			}
			return jsonCall("POST", "/v1/invoices/"+w.invMain+"/payments", w.bearer(c), body)
		}, after: []scenario{
			{name: "declined card", want: 402, code: "card_declined", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/invoices/"+w.invMain+"/payments", w.keyA, map[string]any{"amount": 1000, "payment_method": "pm_card_chargeDeclined"})
			}},
			{name: "3-D Secure", want: 200, call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/invoices/"+w.inv3DS+"/payments", w.keyA, map[string]any{"amount": 9000, "payment_method": "pm_card_authenticationRequired"})
			}},
			{name: "no amount", want: 400, code: "parameter_missing", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/invoices/"+w.invMain+"/payments", w.keyA, map[string]any{"payment_method": "pm_card_visa"})
			}},
			{name: "void invoice", want: 409, call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/invoices/"+w.invVoid+"/payments", w.keyA, map[string]any{"amount": 9000, "payment_method": "pm_card_visa"})
			}},
		}},
		"POST /v1/invoices/{id}/refunds": {success: 200, call: withBody("POST", "/v1/invoices/"+w.invPaid+"/refunds", map[string]any{"amount": 500}),
			after: []scenario{{name: "more than paid", want: 400, code: "parameter_invalid", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/invoices/"+w.invPaid+"/refunds", w.keyA, map[string]any{"amount": 99_000_000})
			}}}},

		"POST /v1/clients/{id}/balance-payments": {success: 200, call: func(t *testing.T, c cred, succeed bool) apiCall {
			if succeed && c != credA {
				freshInvoiceA1(t) // A's payment settled everything before
			}
			return jsonCall("POST", "/v1/clients/"+w.a1+"/balance-payments", w.bearer(c), map[string]any{"payment_method": "pm_card_visa"})
		}, before: []scenario{
			{name: "declined card", want: 402, code: "card_declined", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients/"+w.a1+"/balance-payments", w.keyA, map[string]any{"payment_method": "pm_card_chargeDeclined"})
			}},
			{name: "amount is not the balance", want: 400, code: "amount_mismatch", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients/"+w.a1+"/balance-payments", w.keyA, map[string]any{"amount": 1, "payment_method": "pm_card_visa"})
			}},
		}, after: []scenario{
			{name: "nothing left to pay", want: 400, code: "no_balance", call: func(*testing.T) apiCall {
				return jsonCall("POST", "/v1/clients/"+w.a1+"/balance-payments", w.keyA, map[string]any{"payment_method": "pm_card_visa"})
			}},
			{name: "then the pay page's form (POST /pay)", want: 409, call: func(t *testing.T) apiCall {
				return apiCall{method: "POST", path: "/pay/" + w.payLink, contentType: "application/x-www-form-urlencoded",
					body: payForm(csrfOf(t), "pm_card_visa", "10.00")}
			}},
		}},
	}
	return order, cases
}

// portalCookie is the portal's session cookie holding tok ("" for none).
func (w *world) portalCookie(tok string) []string {
	if tok == "" {
		return nil
	}
	return []string{"Cookie", "bf_portal=" + tok}
}

// portalCSRFForm is a portal form with the CSRF token of tok's session, read
// from the page (a key in the cookie has no page: then a made-up token).
func (w *world) portalCSRFForm(t *testing.T, cf *conformance, tok string) []byte {
	csrf := "none"
	if strings.HasPrefix(tok, "bf_pt_") {
		pg := cf.send(t, apiCall{method: "GET", path: "/portal", header: w.portalCookie(tok)})
		require.Equal(t, 200, pg.status)
		m := hiddenRe.FindStringSubmatch(string(pg.body))
		require.NotNil(t, m, "the portal page has a CSRF field")
		csrf = m[2]
	}
	return []byte(url.Values{"csrf": {csrf}}.Encode())
}

// portalPayForm fills the balance pay form of tok's session with a test card.
func (w *world) portalPayForm(t *testing.T, cf *conformance, tok, card string) []byte {
	pg := cf.send(t, apiCall{method: "GET", path: "/portal/pay", header: w.portalCookie(tok)})
	require.Equal(t, 200, pg.status, string(pg.body))
	v := withCard(formFields(t, string(pg.body)), card)
	v.Set("amount_choice", "full")
	return []byte(v.Encode())
}

func (w *world) preflight(path string, s *stack) func(*testing.T, cred, bool) apiCall {
	return func(_ *testing.T, c cred, _ bool) apiCall {
		return apiCall{method: "OPTIONS", path: path, bearer: w.bearer(c),
			header: []string{"Origin", s.Config.TemporalUIOrigin, "Access-Control-Request-Method", "POST"}}
	}
}

// pendingOps are documented with the contract agreed for them while they are
// built in another branch; only they may answer route_not_found (and are
// then skipped). None at the moment.
var pendingOps = map[string]bool{}

func TestOpenAPIConformance(t *testing.T) {
	s := getStack(t)
	cf := newConformance(t, s)
	w := buildWorld(t, s, cf)
	order, cases := w.cases(t, cf)

	// Every operation of the document has a case, and every case an operation.
	documented := map[string]*openapi3.Operation{}
	for path, item := range cf.doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = op
		}
	}
	for key := range documented {
		assert.Contains(t, order, key, "the conformance test does not call %s: add a case", key)
	}
	for _, key := range order {
		require.Contains(t, documented, key, "%s is not in the document", key)
		require.Contains(t, cases, key)
	}

	for _, key := range order {
		op, oc := documented[key], cases[key]
		class := classOf(cf.doc, op)
		want := expected(class, oc.success, strings.Contains(key, "{"))
		require.NotNil(t, want, "%s: security %v is no known class", key, op.Security)
		for c, st := range oc.override {
			want[c] = st
		}
		cf.cells[key] = map[cred]string{}
		t.Run(key, func(t *testing.T) {
			run := func(sc scenario) {
				r := cf.send(t, sc.call(t))
				if r.status == 404 && r.errCode() == "route_not_found" {
					t.Errorf("%s (%s): route_not_found", key, sc.name)
					return
				}
				cf.extras[key] = append(cf.extras[key], fmt.Sprintf("%s %d", sc.name, r.status))
				if assert.Equal(t, sc.want, r.status, "%s (%s): %s", key, sc.name, r.body) && sc.code != "" {
					assert.Equal(t, sc.code, r.errCode(), "%s (%s)", key, sc.name)
				}
				if sc.check != nil {
					sc.check(t, r)
				}
			}
			for _, sc := range oc.before {
				run(sc)
			}
			creds := bearerCreds
			if class == classPayLink {
				creds = append([]cred{credLink}, bearerCreds...)
			}
			for _, c := range creds {
				r := cf.send(t, oc.call(t, c, want[c] == oc.success))
				if r.status == 404 && r.errCode() == "route_not_found" {
					if !pendingOps[key] {
						t.Fatalf("%s answers route_not_found", key)
					}
					for _, c := range creds {
						cf.cells[key][c] = "skip"
					}
					t.Skipf("%s is not registered yet (being built in another branch): skipped", key)
				}
				cf.cells[key][c] = fmt.Sprint(r.status)
				assert.Equal(t, want[c], r.status, "%s with %s (%s): %s", key, c, class, r.body)
				if want[c] == 404 && c != credLink && class != classPayLink && class != classPortal && class != classPortalCookie {
					assert.Equal(t, "resource_missing", r.errCode(), "%s with %s: 404 as for a missing resource, never 403", key, c)
				}
				if oc.check != nil {
					oc.check(t, c, r)
				}
			}
			for _, sc := range oc.after {
				run(sc)
			}
		})
	}

	// A payer hammering one link: 429 with Retry-After, and the answer is documented.
	t.Run("POST /v1/invoices/{id}/payments rate limit", func(t *testing.T) {
		var last *apiResult
		for i := 0; i < 15; i++ {
			last = cf.send(t, jsonCall("POST", "/v1/invoices/"+w.invNoPDF+"/payments", w.tokA3, map[string]any{}))
			if last.status == 429 {
				break
			}
			require.Equal(t, 400, last.status, string(last.body))
		}
		require.Equal(t, 429, last.status)
		assert.Equal(t, "too_many_payment_attempts", last.errCode())
		assert.NotEmpty(t, last.header.Get("Retry-After"))
		key := "POST /v1/invoices/{id}/payments"
		cf.extras[key] = append(cf.extras[key], "rate limited 429")
	})

	// The table: operation × credential → status.
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	cols := append([]cred{credLink}, bearerCreds...)
	fmt.Fprint(tw, "operation\tclass")
	for _, c := range cols {
		fmt.Fprintf(tw, "\t%s", c)
	}
	fmt.Fprintln(tw, "\tfurther cases")
	for _, key := range order {
		fmt.Fprintf(tw, "%s\t%s", key, shortClass(classOf(cf.doc, documented[key])))
		for _, c := range cols {
			v := cf.cells[key][c]
			if v == "" {
				v = "-"
			}
			fmt.Fprintf(tw, "\t%s", v)
		}
		fmt.Fprintf(tw, "\t%s\n", strings.Join(cf.extras[key], ", "))
	}
	_ = tw.Flush()
	t.Logf("operations × credentials → status (%d responses validated against the document):\n%s", cf.validated.Load(), b.String())
}

func shortClass(c accessClass) string {
	return map[accessClass]string{classPublic: "public", classPracticeOnly: "practice", classPracticeOrClient: "practice|client",
		classCodec: "codec", classPortal: "portal", classPortalCookie: "portal cookie", classPayLink: "pay link"}[c]
}
