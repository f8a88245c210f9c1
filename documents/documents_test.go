package documents_test

import (
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/billflow/billflow/documents"
	"github.com/billflow/billflow/pdf"
)

// logo is a small SVG lighthouse, as a practice would upload.
const logo = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHdpZHRoPSI2NCIgaGVpZ2h0PSI2NCIgdmlld0JveD0iMCAwIDY0IDY0Ij48Y2lyY2xlIGN4PSIzMiIgY3k9IjMyIiByPSIzMCIgZmlsbD0iIzFmNGU3OSIvPjxwYXRoIGQ9Ik0xNCA0MCBMMzIgMTYgTDUwIDQwIFoiIGZpbGw9IiNmNWM1NDIiLz48cmVjdCB4PSIyOSIgeT0iNDAiIHdpZHRoPSI2IiBoZWlnaHQ9IjEyIiBmaWxsPSIjZjVjNTQyIi8+PC9zdmc+"

func day(d int) time.Time { return time.Date(2026, time.March, d, 0, 0, 0, 0, time.UTC) }

func practice() documents.Practice {
	return documents.Practice{
		Name:          "Harbor Light Counseling",
		LogoDataURI:   logo,
		AddressLines:  []string{"12 Elm Street, Suite 4", "Portland, OR 97201"},
		Phone:         "(503) 555-0142",
		Email:         "billing@harborlight.example",
		ProviderName:  "Dana Whitfield",
		Credentials:   "LCSW",
		NPI:           "1234567893",
		TaxID:         "93-1234567",
		LicenseNumber: "L-88231",
		LicenseState:  "OR",
		Paper:         "letter",
	}
}

func client() documents.Client {
	return documents.Client{
		Name:              "Jordan <b>Rivera</b> & Co",
		Email:             "jordan@example.com",
		DateOfBirth:       "1988-04-12",
		AddressLines:      []string{"400 Oak Ave", "Salem, OR 97301"},
		InsurancePayer:    "Blue Cross",
		InsuranceMemberID: "XQB123456789",
	}
}

func invoice(items int) *documents.Invoice {
	inv := &documents.Invoice{
		Practice:     practice(),
		Client:       client(),
		Number:       "INV-0042",
		Currency:     "usd",
		Status:       "open",
		IssueDate:    day(1),
		DueDate:      day(15),
		PayURL:       "https://pay.billflow.example/pay/tok_abc123",
		PartialTerms: "Pay in up to 2 installments; minimum $50.00",
		Memo:         "Thanks for the session.\n<script>alert(1)</script> Reminder: 24h cancellation policy.",
	}
	for i := range items {
		inv.Items = append(inv.Items, documents.Item{
			ServiceDate:    day(1 + i%28),
			Description:    fmt.Sprintf("Individual psychotherapy, 53 min #%d", i+1),
			CPTCode:        "90837",
			Modifiers:      []string{"95"},
			Units:          1,
			UnitAmount:     18000,
			DiagnosisCodes: []string{"F41.1"},
			PlaceOfService: "10",
		})
		inv.Subtotal += 18000
	}
	inv.Total = inv.Subtotal
	inv.AmountPaid = 5000
	inv.AmountDue = inv.Total - inv.AmountPaid
	return inv
}

func receipt() *documents.Invoice {
	inv := invoice(2)
	inv.Status = "partially_refunded"
	inv.AmountPaid = 36000
	inv.AmountRefunded = 2500
	inv.AmountDue = 0
	inv.Payments = []documents.Payment{
		{Date: day(3), MethodLabel: "Visa •••• 4242", PayerName: "Sam <i>Rivera</i>", Amount: 20000, Status: "succeeded", Reference: "pay_1"},
		{Date: day(9), MethodLabel: "Bank •••• 6789", PayerName: "Jordan Rivera", Amount: 16000, Status: "succeeded"},
	}
	inv.Refunds = []documents.Refund{{Date: day(10), Amount: 2500, Reason: "Late-cancel fee waived <ok>"}}
	return inv
}

func statement() *documents.Statement {
	return &documents.Statement{
		Practice:       practice(),
		Client:         client(),
		Currency:       "usd",
		From:           day(1),
		To:             day(31),
		OpeningBalance: 4000,
		ClosingBalance: 4000 + 18000 - 20000 + 2500 + 9000,
		// Deliberately out of order: the statement sorts by date.
		Lines: []documents.StatementLine{
			{Date: day(20), Kind: "invoice", Reference: "INV-0043", Description: "Couples session", Amount: 9000},
			{Date: day(3), Kind: "invoice", Reference: "INV-0042", Description: "Individual psychotherapy <x>", Amount: 18000},
			{Date: day(9), Kind: "payment", Reference: "pay_1", Description: "Visa •••• 4242", Amount: -20000},
			{Date: day(12), Kind: "refund", Reference: "re_1", Description: "Refund of overpayment", Amount: 2500},
		},
	}
}

func superbill() *documents.Superbill {
	return &documents.Superbill{
		Practice: practice(),
		Client:   client(),
		Currency: "usd",
		From:     day(1),
		To:       day(31),
		Lines: []documents.SuperbillLine{
			{ServiceDate: day(3), PlaceOfService: "11", CPTCode: "90791", Description: "Intake evaluation", Units: 1, DiagnosisCodes: []string{"F41.1"}, Fee: 22000, Paid: 22000},
			{ServiceDate: day(10), PlaceOfService: "10", CPTCode: "90837", Modifiers: []string{"95", "GT"}, Description: "Psychotherapy <telehealth>", Units: 1, DiagnosisCodes: []string{"F41.1", "F32.0"}, Fee: 18000, Paid: 18000},
			{ServiceDate: day(17), PlaceOfService: "10", CPTCode: "90834", Modifiers: []string{"95"}, Description: "Psychotherapy", Units: 1, DiagnosisCodes: []string{"Z63.0"}, Fee: 15000, Paid: 15000},
		},
		PaidInFull: true,
	}
}

func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

func TestInvoiceHTML(t *testing.T) {
	out, err := documents.InvoiceHTML(invoice(3))
	if err != nil {
		t.Fatal(err)
	}
	h := string(out)
	mustContain(t, "invoice", h,
		"Harbor Light Counseling", `<img src="data:image/svg&#43;xml;base64,`, "12 Elm Street, Suite 4", "(503) 555-0142", "billing@harborlight.example",
		"Jordan &lt;b&gt;Rivera&lt;/b&gt; &amp; Co", "INV-0042", "Mar 1, 2026", "Mar 15, 2026",
		"Individual psychotherapy, 53 min #3", "90837-95", "$180.00", "$540.00", "$50.00", "$490.00",
		`href="https://pay.billflow.example/pay/tok_abc123"`, "Pay in up to 2 installments; minimum $50.00",
		"&lt;script&gt;alert(1)&lt;/script&gt;", "Subtotal", "Amount paid", "Amount due", "thead")
	if strings.Contains(h, "<script>") || strings.Contains(h, "<b>Rivera") {
		t.Error("user text not escaped")
	}
}

func TestInvoiceHTMLRefusesUnsafeLinksAndLogos(t *testing.T) {
	inv := invoice(1)
	inv.PayURL = "javascript:alert(1)"
	out, err := documents.InvoiceHTML(inv)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), `href="javascript:`) {
		t.Error("javascript: URL became a link")
	}
	inv = invoice(1)
	inv.Practice.LogoDataURI = "http://127.0.0.1:1/logo.png"
	if _, err := documents.InvoiceHTML(inv); !errors.Is(err, documents.ErrInvalid) {
		t.Errorf("remote logo accepted: %v", err)
	}
	inv.Practice.LogoDataURI = `data:image/png;base64,AAA" onerror="x`
	if _, err := documents.InvoiceHTML(inv); !errors.Is(err, documents.ErrInvalid) {
		t.Errorf("malformed logo accepted: %v", err)
	}
}

func TestZeroDecimalCurrency(t *testing.T) {
	inv := invoice(1)
	inv.Currency = "jpy"
	inv.Items[0].UnitAmount = 12000
	inv.Subtotal, inv.Total, inv.AmountPaid, inv.AmountDue = 12000, 12000, 0, 12000
	out, err := documents.InvoiceHTML(inv)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "JPY invoice", string(out), "¥12,000")
}

func TestReceiptHTML(t *testing.T) {
	out, err := documents.ReceiptHTML(receipt())
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "receipt", string(out),
		"RECEIPT", "PAID", "PARTIALLY REFUNDED", "INV-0042", "Visa •••• 4242", "Bank •••• 6789",
		"Sam &lt;i&gt;Rivera&lt;/i&gt;", "$200.00", "$160.00", "Mar 9, 2026", "Late-cancel fee waived &lt;ok&gt;", "$25.00")
	unpaid := invoice(1)
	if _, err := documents.ReceiptHTML(unpaid); !errors.Is(err, documents.ErrInvalid) {
		t.Errorf("receipt of an unpaid invoice: %v", err)
	}
}

func TestStatementHTML(t *testing.T) {
	out, err := documents.StatementHTML(statement())
	if err != nil {
		t.Fatal(err)
	}
	h := string(out)
	mustContain(t, "statement", h, "STATEMENT", "Mar 1, 2026 – Mar 31, 2026", "Opening balance", "$40.00",
		"Closing balance", "$135.00", "Individual psychotherapy &lt;x&gt;", "-$200.00", "Refund of overpayment")
	// Date order, and running balances: 40 +180 = 220, -200 = 20, +25 = 45, +90 = 135.
	i42, ipay, iref, i43 := strings.Index(h, "INV-0042"), strings.Index(h, "pay_1"), strings.Index(h, "re_1"), strings.Index(h, "INV-0043")
	if !(i42 < ipay && ipay < iref && iref < i43) {
		t.Errorf("lines not in date order: %d %d %d %d", i42, ipay, iref, i43)
	}
	mustContain(t, "statement balances", h, "$220.00", "$20.00", "$45.00")

	bad := statement()
	bad.ClosingBalance++
	if _, err := documents.StatementHTML(bad); !errors.Is(err, documents.ErrInvalid) {
		t.Errorf("inconsistent closing balance accepted: %v", err)
	}
	bad = statement()
	bad.Lines[0].Kind = "fee"
	if _, err := documents.StatementHTML(bad); !errors.Is(err, documents.ErrInvalid) {
		t.Errorf("unknown kind accepted: %v", err)
	}
}

func TestSuperbillHTML(t *testing.T) {
	out, err := documents.SuperbillHTML(superbill())
	if err != nil {
		t.Fatal(err)
	}
	h := string(out)
	mustContain(t, "superbill", h, "SUPERBILL", "Dana Whitfield, LCSW", "1234567893", "93-1234567", "L-88231 (OR)",
		"12 Elm Street, Suite 4", "(503) 555-0142", "Jordan &lt;b&gt;Rivera&lt;/b&gt; &amp; Co", "1988-04-12", "400 Oak Ave",
		"XQB123456789", "F41.1", "F32.0", "Z63.0", "90791", "90837-95-GT", "A, B", "Psychotherapy &lt;telehealth&gt;",
		"$550.00", "Paid in full", "Provider signature")
	// Pointers: F41.1 = A, F32.0 = B, Z63.0 = C.
	mustContain(t, "superbill pointers", h, "<b>A</b></td><td class=\"mono\">F41.1", "<b>C</b></td><td class=\"mono\">Z63.0")

	s := superbill()
	s.PaidInFull = false
	s.Lines[2].Paid = 0
	out, err = documents.SuperbillHTML(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "Paid in full") {
		t.Error("paid-in-full note on a superbill with a balance")
	}
	s.DiagnosisCodes = []string{"F41.1"}
	if _, err := documents.SuperbillHTML(s); !errors.Is(err, documents.ErrInvalid) {
		t.Errorf("line pointing at an unlisted diagnosis accepted: %v", err)
	}
	s = superbill()
	s.TotalFee = 1
	if _, err := documents.SuperbillHTML(s); !errors.Is(err, documents.ErrInvalid) {
		t.Errorf("wrong total accepted: %v", err)
	}
}

// --- PDFs in real Chromium ---

func newRenderer(t *testing.T) *pdf.Renderer {
	t.Helper()
	r, err := pdf.New(context.Background(), pdf.Options{Tabs: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func toPDF(t *testing.T, r *pdf.Renderer, html []byte, title string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := r.Render(ctx, html, pdf.PageOptions{Paper: "letter", Title: title})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeTemp(t *testing.T, b []byte) string {
	f := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func pdfText(t *testing.T, b []byte, page int) string {
	t.Helper()
	args := []string{"-layout"}
	if page > 0 {
		args = append(args, "-f", strconv.Itoa(page), "-l", strconv.Itoa(page))
	}
	out, err := exec.Command("pdftotext", append(args, writeTemp(t, b), "-")...).CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	return string(out)
}

func pdfPages(t *testing.T, b []byte) int {
	t.Helper()
	out, err := exec.Command("pdfinfo", writeTemp(t, b)).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v: %s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "Pages:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatalf("no page count: %s", out)
	return 0
}

// savePNG keeps a picture of the first page under /tmp/billflow-docs for a
// person to look at; failures only log.
func savePNG(t *testing.T, b []byte, name string) {
	dir := filepath.Join(os.TempDir(), "billflow-docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Log(err)
		return
	}
	if out, err := exec.Command("pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile",
		writeTemp(t, b), filepath.Join(dir, name)).CombinedOutput(); err != nil {
		t.Logf("pdftoppm: %v: %s", err, out)
	}
}

// squash collapses runs of spaces so layout text can be matched.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestDocumentPDFs(t *testing.T) {
	r := newRenderer(t)
	t.Run("invoice", func(t *testing.T) {
		html, err := documents.InvoiceHTML(invoice(3))
		if err != nil {
			t.Fatal(err)
		}
		out := toPDF(t, r, html, "Invoice INV-0042")
		savePNG(t, out, "invoice")
		text := squash(pdfText(t, out, 0))
		mustContain(t, "invoice PDF", text, "Harbor Light Counseling", "INVOICE", "INV-0042", "Jordan <b>Rivera</b> & Co",
			"Mar 15, 2026", "90837-95", "$180.00", "$540.00", "$490.00", "https://pay.billflow.example/pay/tok_abc123",
			"minimum $50.00", "<script>alert(1)</script>", "Page 1 of 1")
	})
	t.Run("receipt", func(t *testing.T) {
		html, err := documents.ReceiptHTML(receipt())
		if err != nil {
			t.Fatal(err)
		}
		out := toPDF(t, r, html, "Receipt INV-0042")
		savePNG(t, out, "receipt")
		text := squash(pdfText(t, out, 0))
		mustContain(t, "receipt PDF", text, "RECEIPT", "PAID", "Visa •••• 4242", "Bank •••• 6789", "Sam <i>Rivera</i>",
			"$200.00", "$160.00", "Late-cancel fee waived <ok>", "$25.00")
	})
	t.Run("statement", func(t *testing.T) {
		html, err := documents.StatementHTML(statement())
		if err != nil {
			t.Fatal(err)
		}
		out := toPDF(t, r, html, "Statement March 2026")
		savePNG(t, out, "statement")
		text := squash(pdfText(t, out, 0))
		mustContain(t, "statement PDF", text, "STATEMENT", "Opening balance", "$40.00", "INV-0042", "-$200.00",
			"Closing balance", "$135.00", "Jordan <b>Rivera</b> & Co")
	})
	t.Run("superbill", func(t *testing.T) {
		html, err := documents.SuperbillHTML(superbill())
		if err != nil {
			t.Fatal(err)
		}
		out := toPDF(t, r, html, "Superbill March 2026")
		savePNG(t, out, "superbill")
		text := squash(pdfText(t, out, 0))
		mustContain(t, "superbill PDF", text, "SUPERBILL", "Dana Whitfield, LCSW", "1234567893", "93-1234567", "L-88231 (OR)",
			"XQB123456789", "1988-04-12", "F41.1", "F32.0", "Z63.0", "90791", "90837-95-GT", "A, B", "$550.00",
			"Paid in full", "Provider signature")
	})
	t.Run("long invoice", func(t *testing.T) {
		html, err := documents.InvoiceHTML(invoice(60))
		if err != nil {
			t.Fatal(err)
		}
		out := toPDF(t, r, html, "Invoice INV-0042")
		pages := pdfPages(t, out)
		if pages < 2 {
			t.Fatalf("60-item invoice printed on %d page(s)", pages)
		}
		for p := 1; p <= pages; p++ {
			text := squash(pdfText(t, out, p))
			mustContain(t, fmt.Sprintf("page %d", p), text, "SERVICE DATE", "DESCRIPTION", "AMOUNT",
				fmt.Sprintf("Page %d of %d", p, pages))
		}
		mustContain(t, "long invoice", squash(pdfText(t, out, 0)), "#1 ", "#60 ", "$10,800.00")
	})
}

// TestUserTextCannotReachNetwork is the issue's test: an item description with
// markup that would load URLs is printed as text and makes no request.
func TestUserTextCannotReachNetwork(t *testing.T) {
	var hits, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	u := srv.URL

	inv := invoice(1)
	inv.Items[0].Description = `<img src="` + u + `/x"><script>fetch('` + u + `/y')</script>`
	inv.Memo = `<link rel="stylesheet" href="` + u + `/m.css">`
	inv.Client.Name = `<iframe src="` + u + `/f"></iframe>`
	html, err := documents.InvoiceHTML(inv)
	if err != nil {
		t.Fatal(err)
	}
	out := toPDF(t, newRenderer(t), html, "Invoice")
	// The description column wraps the markup; compare without spaces.
	nospace := func(s string) string { return strings.Join(strings.Fields(s), "") }
	text := nospace(pdfText(t, out, 0))
	mustContain(t, "PDF", text, nospace(`<img src="`+u+`/x">`), nospace(`<script>fetch('`+u+`/y')</script>`),
		nospace(inv.Client.Name), nospace(inv.Memo))
	time.Sleep(300 * time.Millisecond)
	if hits.Load() != 0 || conns.Load() != 0 {
		t.Fatalf("listener got %d requests over %d connections", hits.Load(), conns.Load())
	}
}
