package e2e

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/paylink"
)

// browser is one headless Chromium tab that records every request it makes
// and every console error, so a test can prove the page loads nothing from
// outside and that its script runs under the CSP.
type browser struct {
	ctx       context.Context
	artifacts string
	mu        sync.Mutex
	requests  []string
	problems  []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := os.Getenv("CHROMIUM_PATH")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no Chromium at %s: %v", path, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		// Anything that is not loopback (which Chromium never proxies) would
		// have to go through a closed port: an external asset cannot load,
		// and the request log below shows that none was even asked for.
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.WindowSize(1280, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { tcancel(); cancel(); acancel() })

	b := &browser{ctx: ctx, artifacts: filepath.Join(os.TempDir(), "billflow-artifacts")}
	require.NoError(t, os.MkdirAll(b.artifacts, 0o755))
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError && !strings.Contains(ev.Entry.URL, "favicon") &&
				!strings.Contains(ev.Entry.Text, "status of 4") { // 402/404/410 pages are expected answers
				b.problems = append(b.problems, string(ev.Entry.Source)+": "+ev.Entry.Text)
			}
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, "exception: "+ev.ExceptionDetails.Text)
		}
	}))
	return b
}

// do runs steps with a per-step deadline; on failure it logs what the page shows.
func (b *browser) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
		t.Fatalf("browser step failed: %v\nat %s:\n%s", err, loc, body)
	}
}

// submit clicks Pay and waits for the next page to show the element want.
func (b *browser) submit(t *testing.T, want string) {
	t.Helper()
	b.do(t, chromedp.Click(chromedp.ID("pay-button")), chromedp.WaitVisible(chromedp.ID(want)))
}

func (b *browser) text(t *testing.T, id string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.ID(id)))
	require.NoError(t, err)
	return strings.TrimSpace(s)
}

// shot saves a full-page screenshot at the given width as a test artifact.
func (b *browser) shot(t *testing.T, name string, width int64) {
	t.Helper()
	b.do(t, chromedp.EmulateViewport(width, 800))
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	p := filepath.Join(b.artifacts, name)
	require.NoError(t, os.WriteFile(p, buf, 0o644))
	t.Logf("screenshot: %s", p)
}

// fitsWidth says the page has no horizontal scroll at the current viewport.
func (b *browser) fitsWidth(t *testing.T) bool {
	t.Helper()
	ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
	require.NoError(t, err)
	return ok
}

// checkClean asserts every request stayed on loopback and no CSP violation,
// console error or script exception happened.
func (b *browser) checkClean(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.NotEmpty(t, b.requests)
	for _, r := range b.requests {
		u, err := url.Parse(r)
		if !assert.NoError(t, err) {
			continue
		}
		if u.Scheme == "data" {
			continue
		}
		assert.Equal(t, "127.0.0.1", u.Hostname(), "request to another host: %s", r)
	}
	assert.Empty(t, b.problems, "console errors or CSP violations")
}

func (b *browser) fillCard(t *testing.T, card string) {
	t.Helper()
	b.do(t,
		chromedp.SetValue(chromedp.ID("test_card"), card),
		chromedp.Clear(chromedp.ID("cardholder_name")),
		chromedp.SendKeys(chromedp.ID("cardholder_name"), "Ada Lovelace"),
		chromedp.Clear(chromedp.ID("billing_zip")),
		chromedp.SendKeys(chromedp.ID("billing_zip"), "10001"),
	)
}

func TestBrowserPayPartThenRestThenDecline(t *testing.T) {
	s := getStack(t)
	b := newBrowser(t)
	cl := s.newClient(t, s.Key)
	inv := s.newInvoice(t, s.Key, cl, 18000, map[string]any{"partial_payments": map[string]any{"enabled": true, "minimum_amount": 5000}})
	id := inv.str("id")
	link := s.payLinkFromMail(t, id) // from the caught invoice email, as a client would

	// A phone-sized screen.
	b.do(t, chromedp.EmulateViewport(375, 800), chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pay-button")))
	assert.True(t, b.fitsWidth(t), "the pay page fits 375 px without horizontal scrolling")
	assert.Equal(t, "Pay $180.00", b.text(t, "pay-button"))
	assert.Equal(t, "$180.00", b.text(t, "amount-due"))
	allLabelled, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](
		`[...document.querySelectorAll('input:not([type=hidden]), select')].every(e => e.labels && e.labels.length > 0)`))
	require.NoError(t, err)
	assert.True(t, allLabelled, "every input has a label")
	b.shot(t, "paypage-375.png", 375)

	// Keyboard: from "Pay in full", the arrow key moves to "Pay part"; then type the amount.
	b.do(t, chromedp.EmulateViewport(375, 800), chromedp.Focus(chromedp.ID("amount_full")), chromedp.KeyEvent(kb.ArrowDown))
	part, err := chromedp.Run(b.ctx, chromedp.JavascriptAttribute[bool](chromedp.ID("amount_part_choice"), "checked"))
	require.NoError(t, err)
	assert.True(t, part, "arrow keys choose the amount option")
	b.do(t, chromedp.SendKeys(chromedp.ID("amount_part"), "60"))
	assert.Equal(t, "Pay $60.00", b.text(t, "pay-button"), "the button shows the amount being paid")
	b.fillCard(t, "pm_card_visa")
	b.submit(t, "result-title")
	assert.Equal(t, "Partially paid — $120.00 remaining", b.text(t, "status"))
	assert.Equal(t, "$120.00", b.text(t, "amount-due"))
	b.shot(t, "paypage-partial-375.png", 375)

	// Back to the invoice from the confirmation: the rest, with another card, on a desktop screen.
	b.do(t, chromedp.EmulateViewport(1280, 900), chromedp.Click(chromedp.ID("back")), chromedp.WaitVisible(chromedp.ID("pay-button")))
	assert.Equal(t, "$60.00", b.text(t, "paid"))
	assert.Equal(t, "Pay $120.00", b.text(t, "pay-button"))
	b.shot(t, "paypage-rest-1280.png", 1280)
	b.fillCard(t, "pm_card_mastercard")
	b.submit(t, "result-title")
	assert.Equal(t, "Paid", b.text(t, "status"))
	got := s.do(t, "GET", "/v1/invoices/"+id, s.Key, nil)
	assert.Equal(t, "paid", got.str("status"))
	pays, _ := got.Body["payments"].([]any)
	require.Len(t, pays, 2)
	assert.Equal(t, "visa", pays[0].(map[string]any)["brand"])
	assert.Equal(t, "mastercard", pays[1].(map[string]any)["brand"])
	b.do(t, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("paid-title")))
	assert.Equal(t, "Paid — thank you", b.text(t, "paid-title"))

	// A declined card: the reason, and the balance unchanged.
	id2 := s.newInvoice(t, s.Key, cl, 9000, nil).str("id")
	link2 := s.payLinkFromMail(t, id2)
	b.do(t, chromedp.EmulateViewport(375, 800), chromedp.Navigate(link2), chromedp.WaitVisible(chromedp.ID("pay-button")))
	b.fillCard(t, "pm_card_chargeDeclined")
	b.submit(t, "error")
	assert.Contains(t, b.text(t, "error"), "Your card was declined.")
	assert.Equal(t, "$90.00", b.text(t, "amount-due"))
	assert.Equal(t, "Pay $90.00", b.text(t, "pay-button"))
	assert.True(t, b.fitsWidth(t))
	b.shot(t, "paypage-declined-375.png", 375)
	dec := s.do(t, "GET", "/v1/invoices/"+id2, s.Key, nil)
	assert.Equal(t, "open", dec.str("status"))
	assert.Equal(t, int64(9000), dec.num("amount_due"))

	// An expired link.
	past := time.Now().Add(-time.Minute)
	tok, err := paylink.New(s.Config.PayLinkSecret, id2, past)
	require.NoError(t, err)
	require.NoError(t, s.Store.SavePayLink(context.Background(), id2, paylink.Hash(tok), past))
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(s.API.URL+"/pay/"+tok))
	require.NoError(t, err)
	assert.EqualValues(t, 410, resp.Status)
	assert.Equal(t, "This payment link has expired", b.text(t, "msg-title"))
	b.shot(t, "paypage-expired-375.png", 375)

	b.checkClean(t)
}

// A pay link alone (a forwarded or leaked email), opened in a browser,
// offers only a new card: the client's saved card is neither listed nor
// named on the page (issue 18).
func TestBrowserPayLinkOffersNoSavedCard(t *testing.T) {
	s := getStack(t)
	b := newBrowser(t)
	cl := s.newClient(t, s.Key)
	first := s.newInvoice(t, s.Key, cl, 4000, nil).str("id")
	s.pay(t, s.Key, first, 4000, map[string]any{"save_card": true, "payer_name": "Ada Lovelace", "billing_zip": "10001"})
	saved := s.do(t, "GET", "/v1/clients/"+cl+"/payment-methods", s.Key, nil)
	require.Len(t, saved.Body["data"], 1, "the client has a saved card")

	id := s.newInvoice(t, s.Key, cl, 6000, nil).str("id")
	b.do(t, chromedp.EmulateViewport(375, 800), chromedp.Navigate(s.payLinkFromMail(t, id)), chromedp.WaitVisible(chromedp.ID("pay-button")))
	offered, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('input[value^="saved:"]').length`))
	require.NoError(t, err)
	assert.Zero(t, offered, "no saved card to choose")
	text, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	require.NoError(t, err)
	assert.NotContains(t, text, "4242", "the saved card is not named")
	// A new card still pays.
	b.fillCard(t, "pm_card_visa")
	b.submit(t, "result-title")
	assert.Equal(t, "Paid", b.text(t, "status"))
	b.checkClean(t)
}
