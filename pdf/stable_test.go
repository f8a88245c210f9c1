package pdf

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestStableSameHTMLSameBytes(t *testing.T) {
	html := `<!doctype html><html><body><h1>Invoice INV-0007</h1><table><tr><th>Item</th></tr><tr><td>Session</td></tr></table></body></html>`
	at := time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)
	a := render(t, shared, html, PageOptions{Title: "Stable"})
	time.Sleep(1100 * time.Millisecond) // a new second in the creation date
	b := render(t, shared, html, PageOptions{Title: "Stable"})
	if bytes.Equal(a, b) {
		t.Log("Chromium printed identical bytes twice; Stable must still keep them identical")
	}
	sa, sb := Stable(a, at), Stable(b, at)
	if !bytes.Equal(sa, sb) {
		t.Fatalf("the same HTML printed twice differs after Stable (%d vs %d bytes)", len(sa), len(sb))
	}
	if len(sa) != len(a) {
		t.Fatalf("Stable changed the length: %d -> %d", len(a), len(sa))
	}
	if !bytes.Contains(sa, []byte("D:20261031000000")) {
		t.Fatal("creation date not pinned")
	}
	if !strings.Contains(pdfText(t, sa, 0), "Invoice INV-0007") {
		t.Fatal("stable PDF lost its text")
	}
	// Different HTML still gives different bytes.
	c := Stable(render(t, shared, strings.Replace(html, "0007", "0008", 1), PageOptions{Title: "Stable"}), at)
	if bytes.Equal(sa, c) {
		t.Fatal("different invoices gave identical PDFs")
	}
}
