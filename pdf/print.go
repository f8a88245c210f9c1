package pdf

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdpio "github.com/chromedp/cdproto/io"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

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
