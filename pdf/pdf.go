// Package pdf prints HTML documents to PDF in one long-lived headless Chromium.
//
// A Renderer keeps a bounded pool of pre-opened tabs so that a document costs a
// navigation and a print (a few hundred milliseconds) rather than a browser
// start (seconds). Callers beyond the pool wait in a queue for at most
// Options.QueueTimeout and then get ErrBusy, so a burst never piles up tabs.
//
// The renderer loads nothing from the network: every tab intercepts every
// request with the DevTools Fetch domain and fails all but the document itself,
// each tab shows a shell page served with a Content-Security-Policy that allows
// only inline styles and data: images and fonts (documents replace the shell's
// content in place and keep its policy), scripts are disabled, and the
// browser's proxy points at a closed local port as a last fence. User text rendered into
// a document can therefore never make the renderer fetch a URL.
package pdf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"iter"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	cdpio "github.com/chromedp/cdproto/io"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// ErrBusy is returned when every tab is busy and no tab came free within
// Options.QueueTimeout. Callers (a Temporal activity) retry later.
var ErrBusy = errors.New("pdf: renderer busy")

// ErrClosed is returned by Render after Close.
var ErrClosed = errors.New("pdf: renderer closed")

// Options configure a Renderer. The zero value is usable.
type Options struct {
	// ChromiumPath is the browser binary; default $CHROMIUM_PATH, else Debian's
	// chromium-headless-shell if installed, else /usr/bin/chromium. The
	// headless shell prints about 5x faster than chromium --headless, which
	// starts a PrintCompositor process for every document (see start).
	ChromiumPath string
	// Tabs is the size of the tab pool, i.e. how many documents print at once;
	// default runtime.NumCPU()+1 so one tab prepares while the others print.
	Tabs int
	// QueueTimeout is how long a caller waits for a free tab before ErrBusy; default 5s.
	QueueTimeout time.Duration
	// DocTimeout bounds one document (navigate + print + transfer); default 20s.
	DocTimeout time.Duration
	// RecycleAfter restarts the browser after this many documents, to contain
	// Chromium's memory growth; default 500.
	RecycleAfter int
	// StartTimeout bounds starting the browser and opening its tabs; default 30s.
	StartTimeout time.Duration
	// SingleProcess runs Chromium as one process. Not for production: it
	// leaks every closed tab and, after about 120 tab replacements, stops
	// answering Page.printToPDF for good (see start). The headless shell is
	// faster anyway.
	SingleProcess bool
	// Nice is the CPU niceness Chromium runs at (via nice(1)), so renders
	// yield to request handling; default 19, the lowest priority: documents
	// are made after the response that caused them (a receipt after its
	// payment), so a busy machine delays them instead of the payments.
	// Negative disables.
	Nice int
	// Logger receives restarts and recycles (never document content); default slog.Default().
	Logger *slog.Logger
}

// PageOptions describe one printed document.
type PageOptions struct {
	// Paper is "letter" (default) or "a4".
	Paper string
	// Title is printed at the left of every page's footer, beside "Page N of M".
	Title string
}

// Stats are counters since New, for tests and metrics.
type Stats struct {
	Rendered int64 // documents printed successfully
	Restarts int64 // browser restarts after a crash
	Recycles int64 // planned browser restarts after RecycleAfter documents
	Blocked  int64 // requests the pages tried to make and the renderer failed
}

// Renderer prints HTML to PDF. It is safe for concurrent use.
type Renderer struct {
	opts  Options
	log   *slog.Logger
	slots chan struct{} // one token per tab; holding one entitles a caller to a tab
	csp   string        // Content-Security-Policy of the shell page

	mu     sync.Mutex
	cur    *instance
	closed bool

	rendered atomic.Int64
	restarts atomic.Int64
	recycles atomic.Int64
	blocked  atomic.Int64
	bg       sync.WaitGroup // recycles in progress
}

// docHost is the made-up origin the document is served from. ".invalid" can
// never resolve, so even a leak past the interception would go nowhere.
const docHost = "http://document.billflow.invalid/"

// csp allows the document inline styles and data: images and fonts, nothing else.
const csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; " +
	"script-src 'none'; connect-src 'none'; frame-src 'none'; form-action 'none'; base-uri 'none'"

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

// New starts the browser and opens the tab pool. ctx bounds only the start-up;
// the browser lives until Close.
func New(ctx context.Context, opts Options) (*Renderer, error) {
	return newRenderer(ctx, opts, csp)
}

// Tabs is how many documents the renderer prints at once.
func (r *Renderer) Tabs() int { return r.opts.Tabs }

// newRenderer is New with the shell page's Content-Security-Policy; tests
// clear it to exercise the interception layer alone.
func newRenderer(ctx context.Context, opts Options, policy string) (*Renderer, error) {
	if opts.ChromiumPath == "" {
		opts.ChromiumPath = os.Getenv("CHROMIUM_PATH")
	}
	if opts.ChromiumPath == "" || opts.ChromiumPath == headlessShellWrapper {
		opts.ChromiumPath = "/usr/bin/chromium"
		if st, err := os.Stat(headlessShell); err == nil && st.Mode()&0o111 != 0 {
			opts.ChromiumPath = headlessShell
		}
	}
	if opts.Tabs <= 0 {
		opts.Tabs = runtime.NumCPU() + 1
	}
	if opts.QueueTimeout <= 0 {
		opts.QueueTimeout = 5 * time.Second
	}
	if opts.DocTimeout <= 0 {
		opts.DocTimeout = 20 * time.Second
	}
	if opts.RecycleAfter <= 0 {
		opts.RecycleAfter = 500
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.Nice == 0 {
		opts.Nice = 19
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Renderer{opts: opts, log: opts.Logger.With("component", "pdf"), slots: make(chan struct{}, opts.Tabs), csp: policy}
	if !opts.SingleProcess && !strings.Contains(filepath.Base(opts.ChromiumPath), "headless") {
		r.log.Warn("chromium --headless starts a process for every print (about 6 documents/s on 2 cores); "+
			"install chromium-headless-shell for about 5x that", "chromium", opts.ChromiumPath)
	}
	for range opts.Tabs {
		r.slots <- struct{}{}
	}
	inst, err := r.start(ctx)
	if err != nil {
		return nil, err
	}
	r.cur = inst
	return r, nil
}

// Render prints html and returns the whole PDF.
func (r *Renderer) Render(ctx context.Context, html []byte, p PageOptions) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := r.RenderTo(ctx, &buf, html, p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RenderTo prints html and streams the PDF to w in chunks as Chromium hands
// them over (PrintToPDF with TransferMode ReturnAsStream), so a large PDF never
// sits whole in one protocol message. It returns the bytes written.
//
// If the browser died, it is restarted and the document retried once, unless
// part of the PDF had already reached w.
func (r *Renderer) RenderTo(ctx context.Context, w io.Writer, html []byte, p PageOptions) (int64, error) {
	params, err := printParams(p)
	if err != nil {
		return 0, err
	}
	if err := r.acquire(ctx); err != nil {
		return 0, err
	}
	defer r.release()

	cw := &countingWriter{w: w}
	crashed := false
	for range 4 {
		inst, err := r.current()
		if err != nil {
			return cw.n, err
		}
		err = r.renderOn(ctx, inst, cw, html, params)
		switch {
		case err == nil:
			r.rendered.Add(1)
			if inst.docs.Add(1) == int64(r.opts.RecycleAfter) {
				r.recycle(inst)
			}
			return cw.n, nil
		case errors.Is(err, errRetired):
			// Recycled under us (restart is then a no-op), or closed after a
			// crash whose restart failed (restart tries again).
			if err := r.restart(ctx, inst); err != nil {
				return cw.n, err
			}
			continue
		case ctx.Err() != nil:
			return cw.n, fmt.Errorf("pdf: render: %w", ctx.Err())
		case inst.timeouts.Load() > int64(r.opts.Tabs):
			// More documents in a row than there are tabs ran out of
			// DocTimeout: a browser that still answers but no longer
			// finishes prints (as single-process Chromium does after many
			// tab replacements) would otherwise fail every document forever.
			r.log.Warn("chromium stopped completing documents; restarting it", "timeouts_in_a_row", inst.timeouts.Load())
			if rerr := r.restart(ctx, inst); rerr != nil {
				r.log.Error("restart a stuck chromium", "error", rerr)
			}
			return cw.n, err
		case crashed || cw.n > 0 || inst.alive():
			return cw.n, err
		}
		crashed = true
		r.log.Warn("chromium died; restarting it and retrying the document", "error", err)
		if err := r.restart(ctx, inst); err != nil {
			return cw.n, err
		}
	}
	return cw.n, errors.New("pdf: no usable browser")
}

// errRetired means the instance stopped taking documents.
var errRetired = errors.New("pdf: browser instance retired")

// Close stops the browser. Renders in flight fail.
func (r *Renderer) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	inst := r.cur
	r.cur = nil
	r.mu.Unlock()
	r.bg.Wait()
	if inst != nil {
		inst.close()
	}
	return nil
}

// Stats returns the renderer's counters.
func (r *Renderer) Stats() Stats {
	return Stats{
		Rendered: r.rendered.Load(),
		Restarts: r.restarts.Load(),
		Recycles: r.recycles.Load(),
		Blocked:  r.blocked.Load(),
	}
}

// acquire takes a tab slot, waiting at most QueueTimeout.
func (r *Renderer) acquire(ctx context.Context) error {
	select {
	case <-r.slots:
		return nil
	default:
	}
	t := time.NewTimer(r.opts.QueueTimeout)
	defer t.Stop()
	select {
	case <-r.slots:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return fmt.Errorf("pdf: waiting for a tab: %w", ctx.Err())
	}
}

func (r *Renderer) release() { r.slots <- struct{}{} }

// current returns the live browser instance and registers the caller as a user
// of it, so a recycle waits for the caller before closing it.
func (r *Renderer) current() (*instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	return r.cur, nil
}

// restart replaces a dead instance; concurrent callers that saw the same dead
// instance share one restart.
func (r *Renderer) restart(ctx context.Context, dead *instance) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.cur != dead {
		return nil // someone else already restarted it
	}
	dead.close()
	inst, err := r.start(ctx)
	if err != nil {
		// Keep the dead instance as current so the next caller tries again.
		return fmt.Errorf("pdf: restart chromium: %w", err)
	}
	r.cur = inst
	r.restarts.Add(1)
	return nil
}

// recycle starts a fresh browser in the background, swaps it in, and closes the
// old one once its documents in flight are done.
func (r *Renderer) recycle(old *instance) {
	r.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.StartTimeout)
		defer cancel()
		inst, err := r.start(ctx)
		if err != nil {
			r.log.Error("recycle chromium: start a new browser", "error", err)
			old.docs.Store(0) // try again after another RecycleAfter documents
			return
		}
		r.mu.Lock()
		if r.closed || r.cur != old {
			r.mu.Unlock()
			inst.close()
			return
		}
		r.cur = inst
		r.mu.Unlock()
		r.recycles.Add(1)
		r.log.Info("recycled chromium", "after_documents", r.opts.RecycleAfter)
		old.drainAndClose()
	})
}

// printParams turns PageOptions into Chromium's print parameters: paper size,
// margins that leave room for the footer, backgrounds, and the footer itself.
func printParams(p PageOptions) (page.PrintToPDFParams, error) {
	var size chromedp.PaperSize
	switch strings.ToLower(p.Paper) {
	case "", "letter":
		size = chromedp.PaperLetter
	case "a4":
		size = chromedp.PaperA4
	default:
		return page.PrintToPDFParams{}, fmt.Errorf("pdf: unknown paper %q (want letter or a4)", p.Paper)
	}
	top, side, bottom := 0.55, 0.6, 0.75
	yes := true
	footer := `<div style="width:100%;font-family:'Liberation Sans','DejaVu Sans',Arial,sans-serif;font-size:8px;color:#6b7280;` +
		`padding:0 0.6in;display:flex;justify-content:space-between;">` +
		`<span>` + html.EscapeString(p.Title) + `</span>` +
		`<span>Page <span class="pageNumber"></span> of <span class="totalPages"></span></span></div>`
	return page.PrintToPDFParams{
		PaperWidth:          size.Width,
		PaperHeight:         size.Height,
		MarginTop:           &top,
		MarginBottom:        &bottom,
		MarginLeft:          &side,
		MarginRight:         &side,
		PrintBackground:     &yes,
		DisplayHeaderFooter: &yes,
		HeaderTemplate:      `<span></span>`,
		FooterTemplate:      footer,
		TransferMode:        page.PrintToPDFTransferModeReturnAsStream,
	}, nil
}

// renderOn prints one document on a tab of inst.
func (r *Renderer) renderOn(ctx context.Context, inst *instance, w io.Writer, doc []byte, params page.PrintToPDFParams) (err error) {
	if !inst.enter() {
		return errRetired
	}
	defer inst.leave()
	t, err := inst.getTab(ctx)
	if err != nil {
		return err
	}
	ok := false
	defer func() { inst.putTab(t, ok) }()

	dctx, cancel := context.WithTimeout(t.ctx, r.opts.DocTimeout)
	defer cancel()
	defer func() {
		switch {
		case err == nil:
			inst.timeouts.Store(0)
		case errors.Is(dctx.Err(), context.DeadlineExceeded):
			inst.timeouts.Add(1)
		}
	}()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()

	// Replace the shell page's content in place: a navigation per document
	// would cost a new document load (about half the CPU of a print).
	loaded := chromedp.Events(dctx, page.LoadEventFired)
	if _, err := chromedp.Call(dctx, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: t.frame, HTML: string(doc)}); err != nil {
		return fmt.Errorf("pdf: load document: %w", timeoutErr(dctx, err, r.opts.DocTimeout))
	}
	for _, err := range loaded { // waits for the data: images too
		if err != nil {
			return fmt.Errorf("pdf: wait for the document to load: %w", timeoutErr(dctx, err, r.opts.DocTimeout))
		}
		break
	}
	if _, err := chromedp.Run(dctx, printTo(w, params)); err != nil {
		return fmt.Errorf("pdf: print: %w", timeoutErr(dctx, err, r.opts.DocTimeout))
	}
	ok = !t.dirty.Load()
	return nil
}

// timeoutErr names the per-document timeout when it is what ended the work.
func timeoutErr(dctx context.Context, err error, d time.Duration) error {
	if errors.Is(dctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("document timed out after %s: %w (%w)", d, context.DeadlineExceeded, err)
	}
	return err
}

// printTo prints the page as a stream and copies each chunk to w.
func printTo(w io.Writer, params page.PrintToPDFParams) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
		res, err := cdp.Call(ctx, t, page.PrintToPDF, params)
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, cerr := cdp.Call(cctx, t, cdpio.Close, cdpio.CloseParams{Handle: res.Stream}); cerr != nil && err == nil {
				err = fmt.Errorf("close the PDF stream: %w", cerr)
			}
		}()
		for {
			chunk, err := cdp.Call(ctx, t, cdpio.Read, cdpio.ReadParams{Handle: res.Stream, Size: 1 << 20})
			if err != nil {
				return fmt.Errorf("read the PDF stream: %w", err)
			}
			if len(chunk.Data) > 0 {
				if _, err := w.Write(chunk.Data); err != nil {
					return fmt.Errorf("write the PDF: %w", err)
				}
			}
			if chunk.EOF {
				return nil
			}
		}
	})
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// instance is one running browser with its pool of idle tabs.
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
