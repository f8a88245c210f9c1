package pdf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// shared is one renderer for the tests that don't need their own.
var shared *Renderer

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	r, err := New(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start renderer:", err)
		os.Exit(1)
	}
	shared = r
	code := m.Run()
	_ = r.Close()
	os.Exit(code)
}

// pdfText runs pdftotext -layout on the given pages (0 = all).
func pdfText(t testing.TB, pdf []byte, page int) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(f, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-layout"}
	if page > 0 {
		args = append(args, "-f", strconv.Itoa(page), "-l", strconv.Itoa(page))
	}
	out, err := exec.Command("pdftotext", append(args, f, "-")...).CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	return string(out)
}

// pdfPages reads the page count with pdfinfo.
func pdfPages(t testing.TB, pdf []byte) int {
	t.Helper()
	f := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(f, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdfinfo", f).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v: %s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "Pages:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("pdfinfo printed no page count: %s", out)
	return 0
}

func render(t testing.TB, r *Renderer, html string, p PageOptions) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := r.Render(ctx, []byte(html), p)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if !bytes.HasPrefix(out, []byte("%PDF-")) {
		t.Fatalf("output is not a PDF: %q", out[:min(len(out), 20)])
	}
	return out
}

func TestRenderSimple(t *testing.T) {
	out := render(t, shared, `<!doctype html><html><body><h1>Hello Ünïcode € ¥ •</h1><p>Session with Dana</p></body></html>`,
		PageOptions{Title: "Greeting <b>"})
	text := pdfText(t, out, 0)
	for _, want := range []string{"Hello Ünïcode € ¥ •", "Session with Dana", "Page 1 of 1", "Greeting <b>"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
}

func TestPaperSizes(t *testing.T) {
	// pdfinfo prints "Page size: 612 x 792 pts (letter)" and "595.44 x 841.68 pts (A4)".
	for paper, want := range map[string]string{"letter": "612 x 792", "a4": "595"} {
		out := render(t, shared, `<p>paper</p>`, PageOptions{Paper: paper})
		f := filepath.Join(t.TempDir(), "p.pdf")
		if err := os.WriteFile(f, out, 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := exec.Command("pdfinfo", f).Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(info), want) {
			t.Errorf("%s: page size not %s:\n%s", paper, want, info)
		}
	}
	if _, err := shared.Render(context.Background(), []byte("x"), PageOptions{Paper: "legal"}); err == nil {
		t.Error("unknown paper accepted")
	}
}

func TestLongTableRepeatsHeaderAndNumbersPages(t *testing.T) {
	var b strings.Builder
	b.WriteString(`<!doctype html><html><head><style>thead{display:table-header-group} tr{break-inside:avoid} td,th{padding:6px;border-bottom:1px solid #ccc}</style></head><body><h1>Long invoice</h1><table><thead><tr><th>Service date</th><th>Description</th><th>Amount</th></tr></thead><tbody>`)
	for i := range 75 {
		fmt.Fprintf(&b, "<tr><td>2026-01-%02d</td><td>Item number %d</td><td>$%d.00</td></tr>", i%28+1, i, 100+i)
	}
	b.WriteString(`</tbody></table></body></html>`)
	out := render(t, shared, b.String(), PageOptions{Title: "INV-0042"})
	pages := pdfPages(t, out)
	if pages < 3 {
		t.Fatalf("want at least 3 pages, got %d", pages)
	}
	for p := 1; p <= pages; p++ {
		text := pdfText(t, out, p)
		if want := fmt.Sprintf("Page %d of %d", p, pages); !strings.Contains(text, want) {
			t.Errorf("page %d lacks footer %q:\n%s", p, want, text)
		}
		if !strings.Contains(text, "Service date") || !strings.Contains(text, "Description") {
			t.Errorf("page %d lacks the repeated table header:\n%s", p, text)
		}
		if !strings.Contains(text, "INV-0042") {
			t.Errorf("page %d lacks the footer title", p)
		}
	}
	if text := pdfText(t, out, 0); !strings.Contains(text, "Item number 74") || !strings.Contains(text, "Item number 0") {
		t.Error("rows missing")
	}
}

// netProbe is a listener that counts the requests and connections it gets.
type netProbe struct {
	srv         *httptest.Server
	hits, conns atomic.Int64
}

func newNetProbe(t *testing.T) *netProbe {
	p := &netProbe{}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		t.Logf("listener got %s %s", r.Method, r.URL)
	}))
	p.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.conns.Add(1)
		}
	}
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *netProbe) check(t *testing.T) {
	t.Helper()
	// Give anything asynchronous a moment to (not) arrive.
	time.Sleep(300 * time.Millisecond)
	if n, c := p.hits.Load(), p.conns.Load(); n != 0 || c != 0 {
		t.Fatalf("listener got %d requests over %d connections", n, c)
	}
}

// hostileHTML tries every common way for a page to reach the network.
func hostileHTML(u string) string {
	return `<!doctype html><html><head>
<link rel="stylesheet" href="` + u + `/style.css">
<link rel="preload" href="` + u + `/preload" as="image">
<link rel="preconnect" href="` + u + `">
<link rel="icon" href="` + u + `/favicon.ico">
<style>@font-face{font-family:x;src:url(` + u + `/font.woff)} body{font-family:x;background:url(` + u + `/bg.png)}</style>
<script src="` + u + `/script.js"></script>
</head><body>
<img src=` + u + `/z>
<img src="` + u + `/x"><script>fetch('` + u + `/y'); new Image().src='` + u + `/i';</script>
<iframe src="` + u + `/frame"></iframe>
<object data="` + u + `/obj"></object>
<video poster="` + u + `/poster"></video>
<p>raw html document</p>
</body></html>`
}

// TestLoadsNothingFromNetwork renders raw, unescaped HTML straight through the
// renderer (no template); the listener must see no request and no connection.
func TestLoadsNothingFromNetwork(t *testing.T) {
	p := newNetProbe(t)
	before := shared.Stats().Blocked
	out := render(t, shared, hostileHTML(p.srv.URL), PageOptions{})
	if !strings.Contains(pdfText(t, out, 0), "raw html document") {
		t.Error("document text missing")
	}
	p.check(t)
	// The shell's CSP stays with the replaced content and stops the loads
	// before they become requests at all.
	t.Logf("requests that reached the interception layer: %d", shared.Stats().Blocked-before)
}

// TestNavigationAwayIsBlocked: a page that redirects itself gets nowhere, and
// its tab is not reused.
func TestNavigationAwayIsBlocked(t *testing.T) {
	p := newNetProbe(t)
	for range 3 {
		out := render(t, shared, `<!doctype html><html><head><meta http-equiv="refresh" content="0;url=`+p.srv.URL+`/r"></head><body><p>redirecting page</p></body></html>`, PageOptions{})
		if !strings.Contains(pdfText(t, out, 0), "redirecting page") {
			t.Error("document text missing")
		}
	}
	time.Sleep(500 * time.Millisecond)
	out := render(t, shared, `<p>next document</p>`, PageOptions{})
	if text := pdfText(t, out, 0); !strings.Contains(text, "next document") || strings.Contains(text, "redirecting") {
		t.Errorf("tab state leaked between documents:\n%s", text)
	}
	p.check(t)
	if shared.Stats().Blocked == 0 {
		t.Error("the redirect never reached the interception layer")
	}
}

// TestInterceptionAloneBlocks turns the document's CSP off, so the page's
// requests reach the Fetch interception layer, which alone must stop them.
func TestInterceptionAloneBlocks(t *testing.T) {
	r, err := newRenderer(context.Background(), Options{Tabs: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := newNetProbe(t)
	out := render(t, r, hostileHTML(p.srv.URL), PageOptions{})
	if !strings.Contains(pdfText(t, out, 0), "raw html document") {
		t.Error("document text missing")
	}
	p.check(t)
	if r.Stats().Blocked == 0 {
		t.Error("interception blocked nothing: the page made no request to block?")
	}
}

func TestRenderToStreams(t *testing.T) {
	var buf bytes.Buffer
	n, err := shared.RenderTo(context.Background(), &buf, []byte(`<p>streamed</p>`), PageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 || !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) {
		t.Fatalf("RenderTo wrote %d bytes, buffer has %d", n, buf.Len())
	}
	if !strings.Contains(pdfText(t, buf.Bytes(), 0), "streamed") {
		t.Error("text missing")
	}
	// A failing writer fails the render rather than losing bytes silently.
	if _, err := shared.RenderTo(context.Background(), failWriter{}, []byte(`<p>x</p>`), PageOptions{}); err == nil {
		t.Error("write error swallowed")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// killBrowser SIGKILLs the renderer's current Chromium process.
func killBrowser(t *testing.T, r *Renderer) {
	t.Helper()
	inst, err := r.current()
	if err != nil {
		t.Fatal(err)
	}
	proc := inst.browser.Process()
	if proc == nil {
		t.Fatal("no browser process")
	}
	if err := proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func TestBrowserCrashRestartsAndRetries(t *testing.T) {
	r, err := New(context.Background(), Options{Tabs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	render(t, r, `<p>before</p>`, PageOptions{})

	// Killed while idle: the next render restarts Chromium and succeeds.
	killBrowser(t, r)
	out := render(t, r, `<p>after idle kill</p>`, PageOptions{})
	if !strings.Contains(pdfText(t, out, 0), "after idle kill") {
		t.Error("text missing after restart")
	}
	if got := r.Stats().Restarts; got != 1 {
		t.Errorf("restarts = %d, want 1", got)
	}

	// Killed mid-render: that render is retried on a new browser.
	big := `<table>` + strings.Repeat(`<tr><td>row of a big document</td><td>$1.00</td></tr>`, 3000) + `</table><p>end of big</p>`
	var wg sync.WaitGroup
	var midErr error
	var midOut []byte
	wg.Go(func() { midOut, midErr = r.Render(context.Background(), []byte(big), PageOptions{}) })
	time.Sleep(150 * time.Millisecond)
	killBrowser(t, r)
	wg.Wait()
	if midErr != nil {
		t.Fatalf("render during the crash failed: %v", midErr)
	}
	if !strings.Contains(pdfText(t, midOut, 0), "end of big") {
		t.Error("big document incomplete")
	}
	out = render(t, r, `<p>after busy kill</p>`, PageOptions{})
	if !strings.Contains(pdfText(t, out, 0), "after busy kill") {
		t.Error("text missing after second restart")
	}
}

func TestBusyWhenPoolAndQueueExhausted(t *testing.T) {
	r, err := New(context.Background(), Options{Tabs: 1, QueueTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Hold the only tab, as a long document would.
	if err := r.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = r.Render(context.Background(), []byte(`<p>x</p>`), PageOptions{})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %v for a tab, want about the queue timeout", waited)
	}
	// A caller whose context ends while queued gets its context error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Render(ctx, []byte(`<p>x</p>`), PageOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	r.release()
	render(t, r, `<p>free again</p>`, PageOptions{})

	// Real contention: two renders at once on one tab with a queue long enough
	// for the second to wait its turn.
	r.opts.QueueTimeout = 30 * time.Second
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = r.Render(context.Background(), []byte(`<p>queued</p>`), PageOptions{}) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("queued renders: %v", errs)
	}
}

func TestDocTimeout(t *testing.T) {
	r, err := New(context.Background(), Options{Tabs: 1, DocTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Render(context.Background(), []byte(`<p>slow</p>`), PageOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	// The tab that timed out is replaced; with a sane timeout the pool works.
	r.opts.DocTimeout = 20 * time.Second
	render(t, r, `<p>fine</p>`, PageOptions{})
}

func TestRecycleAfterN(t *testing.T) {
	r, err := New(context.Background(), Options{Tabs: 1, RecycleAfter: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first, _ := r.current()
	for i := range 3 {
		render(t, r, fmt.Sprintf(`<p>doc %d</p>`, i), PageOptions{})
	}
	r.bg.Wait()
	if got := r.Stats().Recycles; got != 1 {
		t.Fatalf("recycles = %d, want 1", got)
	}
	now, _ := r.current()
	if now == first {
		t.Fatal("browser instance not replaced")
	}
	if first.ctx.Err() == nil {
		t.Error("old browser still running")
	}
	render(t, r, `<p>after recycle</p>`, PageOptions{})
}

func TestClose(t *testing.T) {
	r, err := New(context.Background(), Options{Tabs: 1})
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := r.current()
	proc := inst.browser.Process()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Render(context.Background(), []byte("x"), PageOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
	if err := proc.Signal(syscall.Signal(0)); err == nil {
		t.Error("chromium still running after Close")
	}
}

// descendants lists the command lines of every process below pid.
func descendants(pid int) []string {
	children := map[int][]int{}
	for id, f := range procStats() {
		children[f.ppid()] = append(children[f.ppid()], id)
	}
	var out []string
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(queue[0]) + "/cmdline")
		out = append(out, string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// TestDefaultBrowserPrintsWithoutProcessStarts: by default the renderer runs
// the headless shell, which prints in the renderer; chromium --headless
// starts a PrintCompositor process per print, which cost 60% of the time.
func TestDefaultBrowserPrintsWithoutProcessStarts(t *testing.T) {
	if os.Getenv("CHROMIUM_PATH") != "" {
		t.Skip("CHROMIUM_PATH chooses the browser")
	}
	if shared.opts.ChromiumPath != headlessShell {
		t.Fatalf("default browser is %s, want %s: install the Debian package chromium-headless-shell", shared.opts.ChromiumPath, headlessShell)
	}
	inst, err := shared.current()
	if err != nil {
		t.Fatal(err)
	}
	pid := inst.browser.Process().Pid
	done := make(chan struct{})
	var seen atomic.Value
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, cmd := range descendants(pid) {
				if strings.Contains(cmd, "PrintCompositor") {
					seen.Store(cmd)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for i := range 10 {
		render(t, shared, fmt.Sprintf(`<p>document %d</p>`, i), PageOptions{})
	}
	close(done)
	if cmd := seen.Load(); cmd != nil {
		t.Fatalf("printing started a PrintCompositor process: %.200s", cmd)
	}
}

// TestLongRunAcrossRecycles is the long dev-stack run in small: more callers
// than tabs, some cancelled mid-document and some pages that try to navigate
// (both replace their tab), across many forced recycles. Every other document
// must print: no timeouts, no ErrBusy, no stuck browser. (Single-process
// Chromium stopped answering prints after about 120 tab replacements.)
func TestLongRunAcrossRecycles(t *testing.T) {
	r, err := New(context.Background(), Options{RecycleAfter: 25, DocTimeout: 10 * time.Second, QueueTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const docs = 400
	doc := []byte(`<!doctype html><html><body><h1>Invoice</h1><table>` + strings.Repeat(`<tr><td>Session</td><td>$180.00</td></tr>`, 20) + `</table></body></html>`)
	redirect := []byte(`<!doctype html><html><head><meta http-equiv="refresh" content="0;url=http://127.0.0.1:9/r"></head><body><p>redirecting</p></body></html>`)
	var next, ok, cancelled atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range r.Tabs() + 2 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= docs || t.Failed() {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				html := doc
				switch i % 25 {
				case 3: // the caller gives up mid-document
					cancel()
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(5+i%40)*time.Millisecond)
				case 11:
					html = redirect
				}
				out, err := r.Render(ctx, html, PageOptions{Title: "INV"})
				cancel()
				switch {
				case i%25 == 3 && err != nil:
					cancelled.Add(1)
				case err != nil:
					t.Errorf("document %d: %v (stats %+v)", i, err, r.Stats())
				case !bytes.HasPrefix(out, []byte("%PDF-")):
					t.Errorf("document %d: not a PDF", i)
				default:
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r.bg.Wait()
	st := r.Stats()
	t.Logf("%d documents (%d cancelled by their callers) in %v, stats %+v", ok.Load(), cancelled.Load(), time.Since(start).Round(time.Millisecond), st)
	if want := int64(docs) - cancelled.Load(); ok.Load() != want {
		t.Errorf("printed %d documents, want %d", ok.Load(), want)
	}
	// An instance keeps printing while its successor starts, so it serves
	// somewhat more than RecycleAfter documents.
	if st.Recycles < 4 {
		t.Errorf("recycles = %d, want at least 4", st.Recycles)
	}
	if st.Restarts != 0 {
		t.Errorf("restarts = %d, want 0", st.Restarts)
	}
	render(t, r, `<p>still fine</p>`, PageOptions{})
}

// TestStuckBrowserIsRestarted: a browser that answers but stops finishing
// documents (here: every document runs out of a tiny DocTimeout) is restarted
// once more documents in a row time out than there are tabs.
func TestStuckBrowserIsRestarted(t *testing.T) {
	r, err := New(context.Background(), Options{Tabs: 1, DocTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for range 3 {
		if _, err := r.Render(context.Background(), []byte(`<p>x</p>`), PageOptions{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline error", err)
		}
	}
	if got := r.Stats().Restarts; got != 1 {
		t.Errorf("restarts = %d, want 1 (after 2 timeouts in a row)", got)
	}
	r.opts.DocTimeout = 20 * time.Second
	render(t, r, `<p>fine</p>`, PageOptions{})
}
