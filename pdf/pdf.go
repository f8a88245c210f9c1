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
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
