package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/store"
)

// reloads runs actions that load a new page, and waits until the old one is
// gone: the same ids are on both, so waiting for an id alone proves nothing.
func (b *browser) reloads(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	b.do(t, chromedp.Evaluate[chromedp.Void](`document.documentElement.setAttribute('data-stale', '1')`))
	b.do(t, actions...)
	b.do(t, chromedp.WaitNotPresent(chromedp.CSS("html[data-stale]")), chromedp.WaitReady(chromedp.CSS("body")))
}

func (b *browser) count(t *testing.T, css string) int {
	t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, css)))
	require.NoError(t, err)
	return n
}

func (b *browser) location(t *testing.T) string {
	t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(t, err)
	return loc
}

// download clicks a Download link, waits for the browser to save the file,
// and returns its name and bytes, and the Content-Type the same URL answers
// with the browser's own cookies (download navigations are not in the
// page's network events).
func (b *browser) download(t *testing.T, linkID string) (name, contentType string, body []byte) {
	t.Helper()
	href, err := chromedp.Run(b.ctx, chromedp.JavascriptAttribute[string](chromedp.ID(linkID), "href"))
	require.NoError(t, err)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	begin := chromedp.Events(ctx, cdpbrowser.DownloadWillBegin)
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	var cookies []*network.Cookie
	b.do(t, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptrTo(true)})
		if err != nil {
			return err
		}
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{href}})
		cookies = res.Cookies
		return err
	}), chromedp.Click(chromedp.ID(linkID)))
	for ev, err := range begin {
		require.NoError(t, err)
		name = ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		require.NoError(t, err)
		require.NotEqual(t, cdpbrowser.DownloadProgressStateCanceled, ev.State, "download of %s cancelled", href)
		if ev.State != cdpbrowser.DownloadProgressStateCompleted {
			continue
		}
		body, err = os.ReadFile(filepath.Join(dir, ev.GUID))
		require.NoError(t, err)
		break
	}
	require.NotNil(t, body, "no download of %s", href)
	req, err := http.NewRequest("GET", href, nil)
	require.NoError(t, err)
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	return name, res.Header.Get("Content-Type"), body
}

func ptrTo[T any](v T) *T { return &v }

func TestPortalBrowserBillingAndPayments(t *testing.T) {
	s := getStack(t)
	b := newBrowser(t)
	ctx := context.Background()
	today := practiceToday(t)
	cl := s.newClient(t, s.Key)

	intake := s.newInvoice(t, s.Key, cl, 0, map[string]any{"items": []map[string]any{
		session(today.AddDate(0, 0, -60), "Intake assessment", 9000, "90791")}})
	partly := s.newInvoice(t, s.Key, cl, 0, map[string]any{"partial_payments": map[string]any{"enabled": true},
		"items": []map[string]any{session(today, `Couples session <img src="http://127.0.0.1:9/x"> & "notes"`, 18000, "90847")}})
	overdue := s.newInvoice(t, s.Key, cl, 12000, nil)
	paid := s.newInvoice(t, s.Key, cl, 5000, nil)
	s.pay(t, s.Key, partly.str("id"), 6000, nil)
	s.pay(t, s.Key, paid.str("id"), 5000, nil)
	_, err := s.Store.Pool.Exec(ctx, `UPDATE invoices SET due_date=$2 WHERE id=$1`, overdue.str("id"), today.AddDate(0, 0, -3))
	require.NoError(t, err)
	st := s.do(t, "POST", "/v1/clients/"+cl+"/statements", s.Key,
		map[string]any{"from": day(today.AddDate(0, 0, -70)), "to": day(today)})
	require.Equal(t, 201, st.Status, string(st.Raw))
	num := func(r *resp) string { return r.str("number") }

	// The link from the email: the token is swapped for a cookie and leaves the URL.
	tok := s.portalToken(t, s.Key, cl)
	b.do(t, chromedp.EmulateViewport(375, 800), chromedp.Navigate(s.API.URL+"/portal?token="+tok),
		chromedp.WaitVisible(chromedp.ID("balance-amount")))
	assert.Equal(t, s.API.URL+"/portal", b.location(t), "no token in the address bar")
	assert.Equal(t, "$330.00", b.text(t, "balance-amount"), "90 + 120 + 120")
	assert.Equal(t, "Open", b.text(t, "status-"+num(intake)))
	assert.Equal(t, "Partially paid", b.text(t, "status-"+num(partly)))
	assert.Equal(t, "$120.00", b.text(t, "due-"+num(partly)))
	assert.Equal(t, "Overdue", b.text(t, "status-"+num(overdue)))
	assert.Equal(t, "Paid", b.text(t, "status-"+num(paid)))
	assert.Equal(t, 0, b.count(t, "#pay-"+num(paid)), "nothing to pay on a paid invoice")
	assert.Equal(t, 1, b.count(t, "#pdf-"+num(paid)))
	assert.Equal(t, 1, b.count(t, "#statements li"))
	assert.Contains(t, b.text(t, "history-table"), `Couples session <img src="http://127.0.0.1:9/x"> & "notes"`, "user text shown as text")
	assert.Equal(t, 0, b.count(t, "img"))
	assert.True(t, b.fitsWidth(t), "the portal fits 375 px without horizontal scrolling")
	allLabelled, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](
		`[...document.querySelectorAll('input:not([type=hidden]), select')].every(e => e.labels && e.labels.length > 0)`))
	require.NoError(t, err)
	assert.True(t, allLabelled, "every input has a label")
	b.shot(t, "portal-375.png", 375)
	b.shot(t, "portal-1280.png", 1280)

	// Account history: the last 90 days hold the intake; from 30 days ago, it is gone.
	b.do(t, chromedp.EmulateViewport(375, 800))
	intakeRow := `#history-table tr[data-type=session][data-date="` + day(today.AddDate(0, 0, -60)) + `"]`
	assert.Equal(t, 1, b.count(t, intakeRow))
	before := b.count(t, "#history-table tbody tr")
	// Keyboard only: type the date into the From field, Enter submits the range.
	b.reloads(t, chromedp.SetValue(chromedp.ID("from"), day(today.AddDate(0, 0, -30))),
		chromedp.Focus(chromedp.ID("from")), chromedp.KeyEvent(kb.Enter))
	assert.Contains(t, b.location(t), "from="+day(today.AddDate(0, 0, -30)))
	assert.Equal(t, day(today.AddDate(0, 0, -30)), b.value(t, "from"), "the picker keeps the range")
	assert.Equal(t, 0, b.count(t, intakeRow), "the intake is outside the range")
	assert.Equal(t, before-1, b.count(t, "#history-table tbody tr"))
	b.shot(t, "portal-history-range-375.png", 375)
	// A range the wrong way round says so, and shows the default range.
	b.reloads(t, chromedp.SetValue(chromedp.ID("from"), day(today)), chromedp.SetValue(chromedp.ID("to"), day(today.AddDate(0, 0, -1))),
		chromedp.Click(chromedp.ID("show-range")))
	assert.Contains(t, b.text(t, "history-error"), "must be on or before to")
	assert.Equal(t, 1, b.count(t, intakeRow))

	// Download PDF: the invoice (the issue activity renders it) and the statement, under the cookie.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		doc, err := s.Store.LatestInvoiceDocument(ctx, intake.str("id"))
		assert.NoError(c, err)
		assert.NotNil(c, doc)
	}, 30*time.Second, 300*time.Millisecond, "the invoice PDF is rendered")
	for link, want := range map[string]string{"pdf-" + num(intake): num(intake) + ".pdf", "pdf-" + st.str("id"): "Statement "} {
		name, typ, body := b.download(t, link)
		assert.Contains(t, name, want, link)
		assert.True(t, strings.HasSuffix(name, ".pdf"), name)
		assert.Equal(t, "application/pdf", typ, link)
		assert.True(t, strings.HasPrefix(string(body), "%PDF-"), link)
	}

	// Pay Now on one invoice opens its hosted pay page.
	b.reloads(t, chromedp.Click(chromedp.ID("pay-"+num(overdue))))
	b.do(t, chromedp.WaitVisible(chromedp.ID("pay-button")))
	assert.Contains(t, b.location(t), s.API.URL+"/portal/pay/pl1.")
	assert.Equal(t, "$120.00", b.text(t, "amount-due"))
	assert.Equal(t, num(overdue), strings.Fields(b.text(t, "invoice-title"))[1])

	// Pay Now next to the balance: the whole $330.00 with a test card, saved for later.
	b.do(t, chromedp.Navigate(s.API.URL+"/portal"), chromedp.WaitVisible(chromedp.ID("pay-balance")))
	b.reloads(t, chromedp.Click(chromedp.ID("pay-balance")))
	b.do(t, chromedp.WaitVisible(chromedp.ID("pay-button")))
	assert.Equal(t, "Pay $330.00", b.text(t, "pay-button"))
	assert.Equal(t, "$330.00", b.text(t, "amount-due"))
	assert.True(t, b.fitsWidth(t))
	b.fillCard(t, "pm_card_visa")
	b.do(t, chromedp.Click(chromedp.ID("save_card")))
	b.shot(t, "portal-pay-balance-375.png", 375)
	b.do(t, chromedp.EmulateViewport(375, 800))
	b.reloads(t, chromedp.Click(chromedp.ID("pay-button")))
	b.do(t, chromedp.WaitVisible(chromedp.ID("notice")))
	assert.Contains(t, b.text(t, "notice"), "Your payment of $330.00 was received.")
	assert.Equal(t, "$0.00", b.text(t, "balance-amount"))
	for _, r := range []*resp{intake, partly, overdue, paid} {
		assert.Equal(t, "Paid", b.text(t, "status-"+num(r)))
	}
	assert.Equal(t, 0, b.count(t, "#pay-balance"))
	b.shot(t, "portal-paid-375.png", 375)
	bill := s.do(t, "GET", "/v1/clients/"+cl+"/billing", s.Key, nil)
	assert.Equal(t, float64(0), bill.Body["balance"].(map[string]any)["amount_due"])

	// The saved card is listed, and this practice lets the client remove it.
	require.Equal(t, 1, b.count(t, "#cards li"))
	assert.Contains(t, b.text(t, "cards"), "Visa •••• 4242")
	assert.Regexp(t, `Expires \d\d/20\d\d`, b.text(t, "cards"))
	removeID, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('#cards button[id^=remove-]').id`))
	require.NoError(t, err)
	b.reloads(t, chromedp.Click(chromedp.ID(removeID)))
	b.do(t, chromedp.WaitVisible(chromedp.ID("notice")))
	assert.Equal(t, "The card was removed.", b.text(t, "notice"))
	assert.Equal(t, 0, b.count(t, "#cards li"))
	pms := s.do(t, "GET", "/v1/clients/"+cl+"/payment-methods", s.Key, nil)
	assert.Empty(t, pms.Body["data"])

	// A practice that keeps card removal to itself: no Remove button, a note instead.
	p2, key2, err := s.Store.CreatePractice(ctx, store.NewPractice{Name: "Strict Cards Nutrition", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	no := false
	_, err = s.Store.UpdatePracticeSettings(ctx, p2.ID, store.PracticeSettings{AllowClientCardRemoval: &no})
	require.NoError(t, err)
	cl2 := s.newClient(t, key2)
	tok2 := s.portalToken(t, key2, cl2)
	add := s.do(t, "POST", "/v1/clients/"+cl2+"/payment-methods", tok2, map[string]any{"payment_method": "pm_card_mastercard",
		"cardholder_name": "Ada L", "billing_zip": "02139"})
	require.Equal(t, 201, add.Status, string(add.Raw))
	b.do(t, chromedp.Navigate(s.API.URL+"/portal?token="+tok2), chromedp.WaitVisible(chromedp.ID("cards")))
	assert.Equal(t, "Strict Cards Nutrition", strings.TrimSpace(b.textOf(t, "header.practice h1")))
	assert.Equal(t, 1, b.count(t, "#cards li"))
	assert.Contains(t, b.text(t, "cards"), "Mastercard •••• 4444")
	assert.Equal(t, 0, b.count(t, "#cards button"), "no Remove button")
	assert.Contains(t, b.text(t, "cards-note"), "contact Strict Cards Nutrition")
	assert.Equal(t, "Nothing is due. Thank you!", b.text(t, "balance-note"))
	b.shot(t, "portal-no-removal-375.png", 375)

	// An expired link: a 401 page that says to ask for a new one.
	old := s.portalToken(t, s.Key, cl)
	_, err = s.Store.Pool.Exec(ctx, `UPDATE portal_tokens SET expires_at = now() - interval '1 minute' WHERE client_id=$1`, cl)
	require.NoError(t, err)
	res, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(s.API.URL+"/portal?token="+old))
	require.NoError(t, err)
	assert.EqualValues(t, 401, res.Status)
	assert.Equal(t, "This link has expired or is not valid", b.text(t, "msg-title"))
	assert.Contains(t, b.text(t, "msg-title")+" "+b.textOf(t, "main"), "ask your practice for a new link")
	b.shot(t, "portal-expired-375.png", 375)

	b.checkClean(t)
}

// TestPortalBrowserLinkFromAnotherSite follows the portal link from another
// site, as from a webmail page: the SameSite=Strict cookie must still arrive.
func TestPortalBrowserLinkFromAnotherSite(t *testing.T) {
	s := getStack(t)
	b := newBrowser(t)
	cl := s.newClient(t, s.Key)
	s.newInvoice(t, s.Key, cl, 9000, nil)
	tok := s.portalToken(t, s.Key, cl)
	mail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Inbox</title><a id="open" href="%s/portal?token=%s">View and Pay</a>`, s.API.URL, tok)
	}))
	t.Cleanup(mail.Close)
	// localhost and 127.0.0.1 are different sites.
	inbox := strings.Replace(mail.URL, "127.0.0.1", "localhost", 1)
	b.do(t, chromedp.Navigate(inbox), chromedp.WaitVisible(chromedp.ID("open")))
	b.do(t, chromedp.Click(chromedp.ID("open")), chromedp.WaitVisible(chromedp.ID("balance-amount")))
	assert.Equal(t, s.API.URL+"/portal", b.location(t))
	assert.Equal(t, "$90.00", b.text(t, "balance-amount"))
}

func (b *browser) value(t *testing.T, id string) string {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.JavascriptAttribute[string](chromedp.ID(id), "value"))
	require.NoError(t, err)
	return v
}

func (b *browser) textOf(t *testing.T, css string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css)))
	require.NoError(t, err)
	return s
}
