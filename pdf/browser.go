package pdf

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// headlessShell is Chromium's headless shell from Debian's
// chromium-headless-shell package, the default browser when installed: unlike
// chromium --headless it prints without starting a PrintCompositor utility
// process per document (see start). headlessShellWrapper is the package's
// /usr/bin script, which runs the binary as a child instead of exec'ing it, so
// killing the browser would orphan it; the binary is used instead.
const (
	headlessShell        = "/usr/lib/chromium/chromium-headless-shell"
	headlessShellWrapper = "/usr/bin/chromium-headless-shell"
)

type instance struct {
	r       *Renderer
	alloc   context.CancelFunc
	ctx     context.Context // the browser's first tab; done when the browser is gone
	cancel  context.CancelFunc
	browser *chromedp.Browser
	idle    chan *tab
	docs    atomic.Int64
	// timeouts counts documents in a row that ran out of DocTimeout.
	timeouts atomic.Int64

	mu       sync.Mutex
	closing  bool
	inflight sync.WaitGroup
}

// start launches a browser and opens Options.Tabs tabs.
func (r *Renderer) start(ctx context.Context) (*instance, error) {
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(r.opts.ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("dns-prefetch-disable", true),
		// Last fence: anything that got past the interception would have to
		// go through this proxy, a closed port, including loopback addresses.
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
		// chromium --headless (the full browser) composites every print in
		// a PrintCompositor utility process that it starts and ends per
		// document; those starts cost more than the printing (6.5
		// documents/s on 2 cores, 45% of the CPU in the kernel). The
		// headless shell (the default when installed) never attaches a
		// composite client to its tabs, so its renderer writes the PDF
		// itself: 36 documents/s, 53 CPU-ms each, with the usual process
		// isolation.
		//
		// --single-process also avoids those process starts (15/s) but
		// breaks over time: every closed tab (a failed, timed-out or
		// cancelled document) costs 2 s of CPU to replace and leaks about
		// 10 MB, and after about 120 replacements Page.printToPDF is never
		// answered again while the browser stays idle and answers
		// everything else, so no restart happens and every document times
		// out. Hence opt-in only.
		chromedp.Flag("single-process", r.opts.SingleProcess),
		// Shared memory in /dev/shm is faster than files in /tmp; chromedp
		// avoids it because containers often give /dev/shm only 64 MB.
		chromedp.Flag("disable-dev-shm-usage", !roomyDevShm()),
	)
	if nicePath, err := exec.LookPath("nice"); err == nil && r.opts.Nice > 0 {
		// Rendering is background work: at a lower CPU priority, Chromium
		// (and every renderer process it forks) never slows a payment.
		// Chromium raises its browser and GPU processes to nice -8 and its
		// renderers back to 0 when it may (CAP_SYS_NICE, e.g. as root), which
		// undoes nice(1); setpriv drops that capability for it and its children.
		nice := strconv.Itoa(r.opts.Nice)
		wrap := []string{nicePath, "-n", nice}
		if setpriv, err := exec.LookPath("setpriv"); err == nil {
			wrap = append(wrap, setpriv, "--bounding-set", "-sys_nice", "--")
		}
		flags = append(flags, chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.Args = append(append(slices.Clone(wrap), cmd.Path), cmd.Args[1:]...)
			cmd.Path = nicePath
		}))
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), flags...)
	bctx, bcancel := chromedp.NewContext(allocCtx)
	inst := &instance{r: r, alloc: allocCancel, ctx: bctx, cancel: bcancel, idle: make(chan *tab, r.opts.Tabs)}

	// The first Run binds the browser's life to the context it gets, so it gets
	// bctx itself; the start-up limit cancels it from outside instead.
	sctx, scancel := context.WithTimeout(ctx, r.opts.StartTimeout)
	defer scancel()
	stop := context.AfterFunc(sctx, bcancel)
	err := chromedp.Do(bctx)
	if err == nil {
		inst.browser = chromedp.FromContext(bctx).Browser
		for range r.opts.Tabs {
			var t *tab
			if t, err = inst.newTab(); err != nil {
				break
			}
			inst.idle <- t
		}
	}
	if !stop() || err != nil {
		inst.close()
		if err == nil {
			err = sctx.Err()
		}
		return nil, fmt.Errorf("pdf: start chromium %s: %w", r.opts.ChromiumPath, err)
	}
	return inst, nil
}

// roomyDevShm reports whether /dev/shm has room for Chromium's shared memory.
func roomyDevShm() bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil {
		return false
	}
	return st.Bavail*uint64(st.Bsize) >= 512<<20
}

// alive reports whether the browser still answers.
func (in *instance) alive() bool {
	if in.ctx.Err() != nil {
		return false
	}
	select {
	case <-in.browser.LostConnection:
		return false
	default:
	}
	ctx, cancel := context.WithTimeout(in.ctx, 3*time.Second)
	defer cancel()
	_, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	return err == nil
}

func (in *instance) enter() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closing {
		return false
	}
	in.inflight.Add(1)
	return true
}

func (in *instance) leave() { in.inflight.Done() }

// drainAndClose closes the instance after the documents in flight finish.
func (in *instance) drainAndClose() {
	in.mu.Lock()
	in.closing = true
	in.mu.Unlock()
	in.inflight.Wait()
	in.close()
}

// close stops the browser at once and removes its temporary profile.
func (in *instance) close() {
	in.mu.Lock()
	in.closing = true
	in.mu.Unlock()
	for {
		select {
		case t := <-in.idle:
			t.cancel()
			continue
		default:
		}
		break
	}
	in.cancel()
	in.alloc() // waits for the process to exit and the profile to be removed
}

// getTab returns an idle tab, or opens a new one when a broken tab was dropped.
func (in *instance) getTab(ctx context.Context) (*tab, error) {
	select {
	case t := <-in.idle:
		return t, nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return in.newTab()
}

// putTab returns a healthy tab to the pool; a tab whose document failed is
// closed, since its page may be mid-navigation or hung.
func (in *instance) putTab(t *tab, healthy bool) {
	if healthy {
		select {
		case in.idle <- t:
			return
		default:
		}
	}
	go t.cancel() // closing a tab waits for Chromium; don't make the caller wait
}

// tab is one page of the browser with network interception on. It shows the
// shell page, whose content each document replaces.
