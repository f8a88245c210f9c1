package pdf

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

type tab struct {
	ctx    context.Context
	cancel context.CancelFunc
	frame  cdp.FrameID // the main frame, showing the shell page

	shellServed atomic.Bool // the one document request allowed has been answered
	dirty       atomic.Bool // the page tried to navigate; don't reuse the tab
}

// shellURL is the only URL a tab ever loads. Its response carries the CSP,
// which stays with the document when documents replace its content.
const shellURL = docHost + "shell"

const shellHTML = "<!doctype html><html><head><title></title></head><body></body></html>"

// newTab opens a tab, disables scripts and turns on interception of every request.
func (in *instance) newTab() (*tab, error) {
	ctx, cancel := chromedp.NewContext(in.ctx)
	t := &tab{ctx: ctx, cancel: cancel}
	// The first Do binds the tab's life to ctx, so it gets ctx itself and a
	// timer bounds the whole set-up from outside: a browser that never
	// answers must not hold the caller, and its tab slot, forever.
	limit := time.AfterFunc(tabSetupTimeout, cancel)
	defer limit.Stop()
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		cancel()
		return nil, fmt.Errorf("pdf: open tab: %w", err)
	}
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	go t.intercept(in.r, paused)
	setup := chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		if _, err := cdp.Call(ctx, target, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			return fmt.Errorf("disable scripts: %w", err)
		}
		_, err := cdp.Call(ctx, target, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}})
		if err != nil {
			return fmt.Errorf("enable interception: %w", err)
		}
		return nil
	})
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := chromedp.Do(sctx, setup, chromedp.Navigate(shellURL)); err != nil {
		cancel()
		return nil, fmt.Errorf("pdf: set up tab: %w", err)
	}
	tree, err := chromedp.Call(sctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pdf: set up tab: %w", err)
	}
	t.frame = tree.FrameTree.Frame.ID
	if !limit.Stop() {
		cancel()
		return nil, fmt.Errorf("pdf: set up tab: timed out after %s", tabSetupTimeout)
	}
	return t, nil
}

// tabSetupTimeout bounds opening and setting up one tab.
const tabSetupTimeout = 15 * time.Second

// intercept answers every paused request of the tab: the shell page is
// fulfilled once from memory, everything else fails as blocked.
func (t *tab) intercept(r *Renderer, paused iter.Seq2[fetch.EventRequestPaused, error]) {
	for ev, err := range paused {
		if err != nil {
			return
		}
		var cerr error
		isDoc := ev.ResourceType == network.ResourceTypeDocument
		if isDoc && ev.Request != nil && ev.Request.URL == shellURL && t.shellServed.CompareAndSwap(false, true) {
			headers := []*fetch.HeaderEntry{
				{Name: "Content-Type", Value: "text/html; charset=utf-8"},
				{Name: "Cache-Control", Value: "no-store"},
			}
			if r.csp != "" {
				headers = append(headers, &fetch.HeaderEntry{Name: "Content-Security-Policy", Value: r.csp})
			}
			_, cerr = chromedp.Call(t.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID: ev.RequestID, ResponseCode: 200, ResponseHeaders: headers, Body: []byte(shellHTML),
			})
		} else {
			reason := network.ErrorReasonBlockedByClient
			if isDoc {
				// An aborted navigation leaves the page as it is, where a
				// blocked one would replace it with an error page mid-print.
				reason = network.ErrorReasonAborted
				t.dirty.Store(true)
			}
			r.blocked.Add(1)
			_, cerr = chromedp.Call(t.ctx, fetch.FailRequest, fetch.FailRequestParams{
				RequestID: ev.RequestID, ErrorReason: reason,
			})
		}
		if cerr != nil && t.ctx.Err() != nil {
			return
		}
	}
}
