package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// portalReq requests a portal page with the session cookie ("" for none) and
// extra headers, without following redirects.
func (s *stack) portalReq(t *testing.T, method, path, cookie string, form url.Values, hdr ...string) *page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.API.URL+path, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "bf_portal", Value: cookie})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := noRedirect.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return &page{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestPortalSignInCookieAndScope(t *testing.T) {
	s := getStack(t)
	ctx := context.Background()
	r := s.do(t, "POST", "/v1/clients", s.Key, map[string]any{"name": `Ada <script>alert(1)</script> Lovelace`, "email": "ada@example.com"})
	require.Equal(t, 201, r.Status, string(r.Raw))
	cl := r.str("id")
	s.newInvoice(t, s.Key, cl, 9000, map[string]any{"items": []map[string]any{
		session(practiceToday(t), `Session <b>bold</b> & "quoted"`, 9000, "90837")}})
	other := s.newClient(t, s.Key)
	theirs := s.newInvoice(t, s.Key, other, 9000, nil).str("id")
	tok := s.portalToken(t, s.Key, cl)

	// Signing in: 303 to /portal, the token in an HttpOnly, SameSite=Strict cookie for /portal only.
	in := s.portalReq(t, "GET", "/portal?token="+url.QueryEscape(tok), "", nil)
	require.Equal(t, 303, in.Status, in.Body)
	assert.Equal(t, "/portal", in.Header.Get("Location"))
	assert.Equal(t, "no-referrer", in.Header.Get("Referrer-Policy"))
	ck := in.Header.Get("Set-Cookie")
	assert.Contains(t, ck, "bf_portal="+tok)
	assert.Contains(t, ck, "Path=/portal")
	assert.Contains(t, ck, "HttpOnly")
	assert.Contains(t, ck, "SameSite=Strict")
	assert.NotContains(t, ck, "Secure", "plain http in the test; Secure whenever PUBLIC_BASE_URL or the request is https")
	assert.NotContains(t, ck, "Max-Age", "a session cookie")
	https := s.portalReq(t, "GET", "/portal?token="+url.QueryEscape(tok), "", nil, "X-Forwarded-Proto", "https")
	assert.Contains(t, https.Header.Get("Set-Cookie"), "Secure")

	home := s.portalReq(t, "GET", "/portal", tok, nil)
	require.Equal(t, 200, home.Status, home.Body)
	assertPageHeaders(t, &page{Status: home.Status, Header: home.Header, Body: home.Body})
	assert.Contains(t, home.Body, "Billing &amp; Payments")
	assert.Contains(t, home.Body, "Ada &lt;script&gt;alert(1)&lt;/script&gt; Lovelace")
	assert.Contains(t, home.Body, "Session &lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34;")
	assert.NotContains(t, home.Body, "<script>alert")
	assert.NotContains(t, home.Body, "<b>bold")
	assert.Empty(t, externalRef.FindAllString(home.Body, -1), "no external asset or link")
	assert.Regexp(t, `id="balance-amount">\$90\.00<`, home.Body)
	csrf := csrfRe.FindStringSubmatch(home.Body)
	require.NotNil(t, csrf)

	// Without the cookie, with a practice key, or a forged or revoked token: 401, ask for a new link.
	for name, p := range map[string]*page{
		"no cookie":             s.portalReq(t, "GET", "/portal", "", nil),
		"practice key header":   s.portalReq(t, "GET", "/portal", "", nil, "Authorization", "Bearer "+s.Key),
		"practice key as token": s.portalReq(t, "GET", "/portal?token="+url.QueryEscape(s.Key), "", nil),
		"practice key cookie":   s.portalReq(t, "GET", "/portal", s.Key, nil),
		"forged token":          s.portalReq(t, "GET", "/portal?token=bf_pt_forged", "", nil),
		"empty token":           s.portalReq(t, "GET", "/portal?token=", "", nil),
		"sub-page, no cookie":   s.portalReq(t, "GET", "/portal/pay", "", nil),
	} {
		assert.Equal(t, 401, p.Status, name)
		assert.Contains(t, p.Body, "This link has expired or is not valid", name)
		assert.Contains(t, p.Body, "Please ask your practice for a new link", name)
	}

	// Another client's invoice, and unknown documents, are not there.
	assert.Equal(t, 404, s.portalReq(t, "GET", "/portal/invoices/"+theirs+"/pdf", tok, nil).Status)
	assert.Equal(t, 404, s.portalReq(t, "GET", "/portal/invoices/"+theirs+"/pay", tok, nil).Status)
	assert.Equal(t, 404, s.portalReq(t, "GET", "/portal/documents/doc_nosuchdocument/pdf", tok, nil).Status)
	// Pay Now on an own invoice hands out a fresh pay link.
	mine := s.do(t, "GET", "/v1/invoices?client_id="+cl, s.Key, nil).Body["data"].([]any)[0].(map[string]any)["id"].(string)
	pay := s.portalReq(t, "GET", "/portal/invoices/"+mine+"/pay", tok, nil)
	require.Equal(t, 303, pay.Status)
	assert.Regexp(t, `^/portal/pay/pl1\.`, pay.Header.Get("Location"))
	assert.Equal(t, 200, s.getPage(t, s.API.URL+pay.Header.Get("Location")).Status)

	// Forms need the session's CSRF token.
	assert.Equal(t, 403, s.portalReq(t, "POST", "/portal/pay", tok, url.Values{"csrf": {"forged"}, "nonce": {strings.Repeat("a", 32)},
		"amount_choice": {"full"}, "full_amount": {"9000"}, "method": {"new"}, "test_card": {"pm_card_visa"}}).Status)
	assert.Equal(t, 403, s.portalReq(t, "POST", "/portal/payment-methods/spm_x/remove", tok, url.Values{}).Status)
	assert.Equal(t, 403, s.portalReq(t, "POST", "/portal/sign-out", tok, url.Values{"csrf": {csrf[1]}},
		"Origin", "https://evil.example").Status, "a cross-site form")
	// A stale amount is refused: the balance is $90.00, not $50.00.
	stale := s.portalReq(t, "POST", "/portal/pay", tok, url.Values{"csrf": {csrf[1]}, "nonce": {strings.Repeat("b", 32)},
		"amount_choice": {"full"}, "full_amount": {"5000"}, "method": {"new"}, "test_card": {"pm_card_visa"},
		"cardholder_name": {"Ada"}, "billing_zip": {"10001"}})
	assert.Equal(t, 409, stale.Status)
	assert.Contains(t, stale.Body, "Your balance changed")
	assert.Regexp(t, `Pay \$90\.00</button>`, stale.Body)

	// A bad range on the page: 400, said in the history section, the default range shown.
	bad := s.portalReq(t, "GET", "/portal?from=2026-05-02&to=2026-05-01", tok, nil)
	assert.Equal(t, 400, bad.Status)
	assert.Contains(t, bad.Body, `id="history-error">From (2026-05-02) must be on or before to (2026-05-01). Showing the last 90 days instead.`)

	// From another site the Strict cookie is held back: one same-site hop brings it.
	hop := s.portalReq(t, "GET", "/portal?from=2026-01-01", "", nil, "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, 200, hop.Status)
	assert.Contains(t, hop.Body, `<meta http-equiv="refresh" content="0; url=/portal?from=2026-01-01">`)

	// Signing out clears the cookie.
	out := s.portalReq(t, "POST", "/portal/sign-out", tok, url.Values{"csrf": {csrf[1]}})
	assert.Equal(t, 200, out.Status)
	assert.Contains(t, out.Header.Get("Set-Cookie"), "Max-Age=0")

	// A revoked token's cookie is refused and cleared.
	_, err := s.Store.RevokePortalTokens(ctx, cl)
	require.NoError(t, err)
	gone := s.portalReq(t, "GET", "/portal", tok, nil)
	assert.Equal(t, 401, gone.Status)
	assert.Contains(t, gone.Header.Get("Set-Cookie"), "Max-Age=0")
}
