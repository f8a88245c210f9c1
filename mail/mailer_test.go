package mail_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/mailcatcher"
	"github.com/billflow/billflow/mail"
)

// pdfBytes is a fake PDF with every byte value, so a transfer-encoding bug
// (a lost \r, a high byte) shows up as a mismatch.
var pdfBytes = func() []byte {
	b := []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	for i := 0; i < 3000; i++ {
		b = append(b, byte(i%256))
	}
	return append(b, "\n%%EOF\n"...)
}()

func startCatcher(t *testing.T) *mailcatcher.Catcher {
	t.Helper()
	c, err := mailcatcher.Start("127.0.0.1:0", "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func mailerFor(t *testing.T, addr string, mutate func(*mail.Config)) *mail.Mailer {
	t.Helper()
	host, port := splitAddr(t, addr)
	cfg := mail.Config{Host: host, Port: port, TLS: "none", From: "billflow <billing@billflow.local>", Timeout: 5 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := mail.New(cfg)
	require.NoError(t, err)
	return m
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	require.NoError(t, err)
	return tcp.IP.String(), tcp.Port
}

// sample returns each kind's data, the link it must carry (if any) and
// whether a PDF goes with it.
func sample(kind mail.Kind) (data any, link string) {
	due := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const practice, client = "Calm Mind Therapy", "Jordan Lee"
	switch kind {
	case mail.KindInvoiceIssued:
		return mail.InvoiceIssued{PracticeName: practice, PracticeEmail: "office@calmmind.example", ClientName: client,
			InvoiceNumber: "INV-0042", Total: 32000, AmountDue: 32000, Currency: "usd", DueDate: due,
			PayURL: "http://127.0.0.1:8080/pay/tok_issued", Memo: "Thank you for coming in."}, "http://127.0.0.1:8080/pay/tok_issued"
	case mail.KindPaymentReceived:
		return mail.PaymentReceived{PracticeName: practice, ClientName: client, InvoiceNumber: "INV-0042",
			Amount: 12000, AmountDue: 20000, Currency: "usd", Partial: true, PayURL: "http://127.0.0.1:8080/pay/tok_rest",
			MethodLabel: "Visa •••• 4242"}, "http://127.0.0.1:8080/pay/tok_rest"
	case mail.KindReminder:
		return mail.Reminder{PracticeName: practice, ClientName: client, InvoiceNumber: "INV-0042", Step: 3, Steps: 4,
			AmountDue: 20000, Currency: "usd", DueDate: due, DaysOverdue: 7, PayURL: "http://127.0.0.1:8080/pay/tok_rem"}, "http://127.0.0.1:8080/pay/tok_rem"
	case mail.KindRefundNotice:
		return mail.RefundNotice{PracticeName: practice, ClientName: client, InvoiceNumber: "INV-0042", Amount: 5000,
			Currency: "usd", Reason: "Duplicate session charge", MethodLabel: "Visa •••• 4242"}, ""
	case mail.KindStatementReady:
		return mail.StatementReady{PracticeName: practice, ClientName: client, Currency: "usd",
			From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
			ClosingBalance: 20000, PortalURL: "http://127.0.0.1:8080/portal?token=abc"}, "http://127.0.0.1:8080/portal?token=abc"
	case mail.KindBalancePaymentReceipt:
		return mail.BalancePaymentReceipt{PracticeName: practice, ClientName: client, Amount: 45000, Currency: "usd",
			MethodLabel: "Mastercard •••• 4444", Invoices: []mail.PaidInvoice{{Number: "INV-0040", Amount: 25000}, {Number: "INV-0042", Amount: 20000}}}, ""
	case mail.KindPaymentFailed:
		return mail.PaymentFailed{PracticeName: practice, ClientName: client, InvoiceNumber: "INV-0042", Amount: 12000,
			AmountDue: 32000, Currency: "usd", MethodLabel: "STRIPE TEST BANK •••• 6789", Reason: "The customer's bank account could not be located.",
			PayURL: "http://127.0.0.1:8080/pay/tok_failed"}, "http://127.0.0.1:8080/pay/tok_failed"
	}
	panic("unknown kind " + string(kind))
}

func TestSendEveryKindToCatcher(t *testing.T) {
	c := startCatcher(t)
	m := mailerFor(t, c.SMTPAddr(), nil)
	for i, kind := range mail.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			c.Reset()
			data, link := sample(kind)
			subject, text, html, err := mail.Compose(kind, data)
			require.NoError(t, err)
			id := mail.MessageID("billflow.local", "inv-42", string(kind), "step", string(rune('0'+i)))
			msg := &mail.Message{
				MessageID: id, FromName: "Calm Mind Therapy", ReplyTo: "office@calmmind.example",
				To: "jordan@example.com", ToName: "Jordan Lee", Subject: subject, Text: text, HTML: html,
				Attachments: []mail.Attachment{{Filename: "INV-0042.pdf", ContentType: "application/pdf", Data: pdfBytes}},
				Headers:     map[string]string{mail.KindHeader: string(kind)},
			}
			require.NoError(t, m.Send(context.Background(), msg))

			got := c.Messages()
			require.Len(t, got, 1)
			s := got[0]
			assert.Empty(t, s.ParseError)
			from, err := netmail.ParseAddress(s.From)
			require.NoError(t, err)
			assert.Equal(t, "Calm Mind Therapy", from.Name)
			assert.Equal(t, "billing@billflow.local", from.Address)
			assert.Equal(t, "billing@billflow.local", s.EnvelopeFrom)
			replyTo, err := netmail.ParseAddress(s.ReplyTo)
			require.NoError(t, err)
			assert.Equal(t, "office@calmmind.example", replyTo.Address)
			assert.Equal(t, []string{"jordan@example.com"}, s.To)
			assert.Equal(t, []string{`"Jordan Lee" <jordan@example.com>`}, s.Headers["To"])
			assert.Equal(t, subject, s.Subject)
			assert.Equal(t, id, s.MessageID)
			assert.Equal(t, []string{string(kind)}, s.Headers[mail.KindHeader])
			assert.Equal(t, strings.TrimSpace(text), strings.TrimSpace(strings.ReplaceAll(s.Text, "\r\n", "\n")))
			assert.Contains(t, s.HTML, "<html")
			assert.Contains(t, s.Text, "Jordan Lee")
			assert.Contains(t, s.HTML, "Jordan Lee")
			assert.NotContains(t, s.Text, "<p", "the text part is real text, not HTML")
			if link != "" {
				assert.Contains(t, s.Text, link)
				assert.Contains(t, s.HTML, `href="`+strings.ReplaceAll(link, "&", "&amp;")+`"`)
			}
			require.Len(t, s.Attachments, 1)
			assert.Equal(t, "INV-0042.pdf", s.Attachments[0].Filename)
			assert.Equal(t, "application/pdf", s.Attachments[0].ContentType)
			assert.True(t, bytes.Equal(pdfBytes, s.Attachments[0].Data), "attachment bytes differ")
		})
	}
}

func TestInvoiceIssuedHasPayButtonAndSubject(t *testing.T) {
	data, link := sample(mail.KindInvoiceIssued)
	d := data.(mail.InvoiceIssued)
	subject, text, html, err := mail.Compose(mail.KindInvoiceIssued, &d)
	require.NoError(t, err)
	assert.Equal(t, "Invoice INV-0042 from Calm Mind Therapy: $320.00 due Dec 1, 2026", subject)
	assert.Regexp(t, `<a href="`+link+`"[^>]*>Pay Invoice</a>`, html)
	assert.Contains(t, text, "Pay Invoice: "+link)
	assert.Contains(t, text, "$320.00")
	assert.Contains(t, html, "Thank you for coming in.")
}

func TestComposeEscapesUserText(t *testing.T) {
	evil := `<script>alert(1)</script><img src="http://127.0.0.1:1/x">`
	d := mail.InvoiceIssued{PracticeName: "Dr. O'Neil & Co " + evil, ClientName: evil, InvoiceNumber: "INV-1",
		Total: 100, AmountDue: 100, Currency: "usd", Memo: evil, PayURL: "javascript:alert(1)"}
	subject, text, html, err := mail.Compose(mail.KindInvoiceIssued, d)
	require.NoError(t, err)
	assert.NotContains(t, html, "<script>")
	assert.NotContains(t, html, "<img")
	assert.Contains(t, html, "&lt;script&gt;alert(1)&lt;/script&gt;")
	assert.NotContains(t, html, `href="javascript:`, "html/template must neutralise a javascript: URL")
	assert.Contains(t, text, evil, "the text part shows the text as written")
	assert.NotContains(t, subject, "\n")
}

func TestComposeSubjectsAndTone(t *testing.T) {
	due := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, days := range []int{-3, 0, 7, 14} {
		r := mail.Reminder{PracticeName: "P", ClientName: "C", InvoiceNumber: "INV-7", AmountDue: 9000, Currency: "eur",
			DueDate: due, DaysOverdue: days, PayURL: "https://pay.example/x", Step: 1, Steps: 4}
		subject, text, html, err := mail.Compose(mail.KindReminder, r)
		require.NoError(t, err)
		assert.Contains(t, subject, "€90.00")
		for _, body := range []string{strings.ToLower(text), strings.ToLower(html), strings.ToLower(subject)} {
			for _, word := range []string{"interest", "late fee", "penalt", "collections", "overdue"} {
				assert.NotContains(t, body, word, "reminder (days %d) must stay polite", days)
			}
		}
		switch {
		case days < 0:
			assert.Contains(t, text, "in 3 days")
		case days == 0:
			assert.Contains(t, subject, "due today")
		default:
			assert.Contains(t, text, "was due on Dec 1, 2026")
		}
	}

	full := mail.PaymentReceived{PracticeName: "P", ClientName: "C", InvoiceNumber: "INV-7", Amount: 5000, Currency: "usd"}
	subject, text, html, err := mail.Compose(mail.KindPaymentReceived, full)
	require.NoError(t, err)
	assert.Equal(t, "Receipt from P: invoice INV-7 paid in full", subject)
	assert.Contains(t, text, "paid in full")
	assert.Contains(t, html, "paid in full")
	assert.Contains(t, text, "receipt is attached")
	assert.NotContains(t, text, "Remaining balance")

	partial := mail.PaymentReceived{PracticeName: "P", ClientName: "C", InvoiceNumber: "INV-7", Amount: 5000, AmountDue: 1250,
		Currency: "usd", Partial: true, PayURL: "https://pay.example/rest"}
	subject, text, html, err = mail.Compose(mail.KindPaymentReceived, partial)
	require.NoError(t, err)
	assert.Equal(t, "Payment of $50.00 received for invoice INV-7: $12.50 remaining", subject)
	assert.Contains(t, text, "Remaining balance: $12.50")
	assert.Contains(t, text, "https://pay.example/rest")
	assert.Contains(t, html, `href="https://pay.example/rest"`)
	assert.NotContains(t, text, "paid in full")

	yen := mail.RefundNotice{PracticeName: "P", ClientName: "C", InvoiceNumber: "INV-8", Amount: 12000, Currency: "jpy"}
	subject, _, _, err = mail.Compose(mail.KindRefundNotice, yen)
	require.NoError(t, err)
	assert.Equal(t, "Refund of ¥12,000 from P for invoice INV-8", subject)

	st := mail.StatementReady{PracticeName: "P", ClientName: "C", Currency: "usd", From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), ClosingBalance: -2500}
	subject, text, _, err = mail.Compose(mail.KindStatementReady, st)
	require.NoError(t, err)
	assert.Equal(t, "Your statement from P for Nov 1, 2026 – Nov 30, 2026", subject)
	assert.Contains(t, text, "credit of $25.00")

	bp, _ := sample(mail.KindBalancePaymentReceipt)
	_, text, html, err = mail.Compose(mail.KindBalancePaymentReceipt, bp)
	require.NoError(t, err)
	for _, s := range []string{"INV-0040", "$250.00", "INV-0042", "$200.00", "$450.00"} {
		assert.Contains(t, text, s)
		assert.Contains(t, html, s)
	}

	_, _, _, err = mail.Compose(mail.KindRefundNotice, full)
	assert.ErrorContains(t, err, "data is mail.PaymentReceived")
	_, _, _, err = mail.Compose("nope", full)
	assert.ErrorContains(t, err, "unknown email kind")
}

func TestMessageIDIsStable(t *testing.T) {
	assert.Equal(t, "<inv-42.reminder-2@billflow>", mail.MessageID("billflow", "inv-42", "reminder-2"))
	assert.Equal(t, mail.MessageID("billflow.local", "inv 42", "x"), mail.MessageID("billflow.local", "inv 42", "x"))
	assert.Equal(t, "<inv-42.x@billflow.local>", mail.MessageID("billflow.local", "inv 42", "x"))
	assert.Equal(t, "<a--b@billflow>", mail.MessageID("", "a<>b"))
}

func TestNewValidatesConfig(t *testing.T) {
	good := mail.Config{Host: "localhost", Port: 25, From: "billflow <billing@billflow.local>"}
	_, err := mail.New(good)
	require.NoError(t, err)
	for name, mutate := range map[string]func(*mail.Config){
		"no host":       func(c *mail.Config) { c.Host = "" },
		"bad port":      func(c *mail.Config) { c.Port = 70000 },
		"bad tls":       func(c *mail.Config) { c.TLS = "ssl3" },
		"no from":       func(c *mail.Config) { c.From = "" },
		"bad from":      func(c *mail.Config) { c.From = "not an address" },
		"password only": func(c *mail.Config) { c.Password = "x" },
	} {
		cfg := good
		mutate(&cfg)
		_, err := mail.New(cfg)
		assert.Error(t, err, name)
	}
}

func TestRejectsBadMessageWithoutSending(t *testing.T) {
	c := startCatcher(t)
	m := mailerFor(t, c.SMTPAddr(), nil)
	base := mail.Message{MessageID: "<a.b@billflow>", To: "x@example.com", Subject: "s", Text: "t"}
	for name, mutate := range map[string]func(*mail.Message){
		"no message id":  func(m *mail.Message) { m.MessageID = "" },
		"bare id":        func(m *mail.Message) { m.MessageID = "a.b@billflow" },
		"bad recipient":  func(m *mail.Message) { m.To = "nobody" },
		"no body":        func(m *mail.Message) { m.Text = "" },
		"header smuggle": func(m *mail.Message) { m.Headers = map[string]string{"Bcc": "spy@example.com"} },
		"header newline": func(m *mail.Message) { m.Headers = map[string]string{"X-A": "a\r\nBcc: spy@example.com"} },
	} {
		msg := base
		mutate(&msg)
		err := m.Send(context.Background(), &msg)
		assert.ErrorIs(t, err, mail.ErrPermanent, name)
	}
	assert.Empty(t, c.Messages())
}

func TestPermanentAndTransientFailures(t *testing.T) {
	c := startCatcher(t)
	m := mailerFor(t, c.SMTPAddr(), nil)
	msg := &mail.Message{MessageID: mail.MessageID("billflow", "inv-1", "issued"), To: "c@example.com", Subject: "s", Text: "t", HTML: "<p>t</p>"}

	c.SetFailMode(mailcatcher.FailReject5xx)
	err := m.Send(context.Background(), msg)
	require.Error(t, err)
	assert.ErrorIs(t, err, mail.ErrPermanent)
	assert.Contains(t, err.Error(), "554")

	c.SetFailMode(mailcatcher.FailTempfail4xx)
	err = m.Send(context.Background(), msg)
	require.Error(t, err)
	assert.NotErrorIs(t, err, mail.ErrPermanent)
	assert.Contains(t, err.Error(), "451")
	assert.Empty(t, c.Messages())

	// SMTP down, then up: the failed attempt is transient and the retry
	// delivers exactly one message.
	c.SetFailMode(mailcatcher.FailNone)
	require.NoError(t, c.StopSMTP())
	err = m.Send(context.Background(), msg)
	require.Error(t, err)
	assert.NotErrorIs(t, err, mail.ErrPermanent)
	assert.ErrorContains(t, err, "refused")
	require.NoError(t, c.StartSMTP())
	require.NoError(t, m.Send(context.Background(), msg))
	got := c.Messages()
	require.Len(t, got, 1)
	assert.Equal(t, "<inv-1.issued@billflow>", got[0].MessageID)
}

func TestSendHonoursContext(t *testing.T) {
	// A server that accepts connections and never greets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	m := mailerFor(t, ln.Addr().String(), func(c *mail.Config) { c.Timeout = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = m.Send(ctx, &mail.Message{MessageID: "<a@b>", To: "c@example.com", Text: "t"})
	require.Error(t, err)
	assert.NotErrorIs(t, err, mail.ErrPermanent)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// tlsServer is a go-smtp server with a self-signed certificate and PLAIN
// auth, for the starttls and tls modes.
type tlsServer struct {
	mu   sync.Mutex
	got  [][]byte
	tls  []bool
	addr string
}

func (s *tlsServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &tlsSession{s: s, isTLS: isTLS}, nil
}

type tlsSession struct {
	s      *tlsServer
	isTLS  bool
	authed bool
}

func (s *tlsSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *tlsSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "practice" || pass != "s3cret" {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}
func (s *tlsSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *tlsSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *tlsSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	s.s.got = append(s.s.got, b)
	s.s.tls = append(s.s.tls, s.isTLS)
	s.s.mu.Unlock()
	return nil
}
func (s *tlsSession) Reset()        {}
func (s *tlsSession) Logout() error { return nil }

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func startTLSServer(t *testing.T, implicit bool) *tlsServer {
	t.Helper()
	be := &tlsServer{}
	srv := smtp.NewServer(be)
	srv.Domain = "127.0.0.1"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, MinVersion: tls.VersionTLS12}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var ln net.Listener
	var err error
	if implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	require.NoError(t, err)
	be.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return be
}

func TestTLSModes(t *testing.T) {
	for _, mode := range []string{mail.TLSStartTLS, mail.TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			srv := startTLSServer(t, mode == mail.TLSImplicit)
			secure := func(c *mail.Config) {
				c.TLS, c.Username, c.Password, c.InsecureSkipVerify = mode, "practice", "s3cret", true
			}
			m := mailerFor(t, srv.addr, secure)
			data, link := sample(mail.KindInvoiceIssued)
			subject, text, html, err := mail.Compose(mail.KindInvoiceIssued, data)
			require.NoError(t, err)
			msg := &mail.Message{MessageID: "<inv-42.issued@billflow>", FromName: "Calm Mind Therapy", To: "c@example.com",
				Subject: subject, Text: text, HTML: html,
				Attachments: []mail.Attachment{{Filename: "INV-0042.pdf", ContentType: "application/pdf", Data: pdfBytes}}}
			require.NoError(t, m.Send(context.Background(), msg))
			srv.mu.Lock()
			require.Len(t, srv.got, 1)
			assert.True(t, srv.tls[0], "message must travel over TLS")
			raw := srv.got[0]
			srv.mu.Unlock()
			parsed, err := netmail.ReadMessage(bytes.NewReader(raw))
			require.NoError(t, err)
			assert.Equal(t, "<inv-42.issued@billflow>", parsed.Header.Get("Message-Id"))
			assert.Contains(t, string(raw), link)

			// The certificate is self-signed: verifying it must fail, and
			// that is a transient (configuration) error, not a rejection.
			strict := mailerFor(t, srv.addr, func(c *mail.Config) { secure(c); c.InsecureSkipVerify = false })
			err = strict.Send(context.Background(), msg)
			require.Error(t, err)
			assert.NotErrorIs(t, err, mail.ErrPermanent)
			assert.ErrorContains(t, err, "certificate")

			// A wrong password is refused before any message is sent.
			wrong := mailerFor(t, srv.addr, func(c *mail.Config) { secure(c); c.Password = "nope" })
			err = wrong.Send(context.Background(), msg)
			require.Error(t, err)
			assert.NotErrorIs(t, err, mail.ErrPermanent, "a login failure is configuration, fixed by retrying later")
			srv.mu.Lock()
			assert.Len(t, srv.got, 1)
			srv.mu.Unlock()
		})
	}

	t.Run("starttls required but not offered", func(t *testing.T) {
		c := startCatcher(t)
		m := mailerFor(t, c.SMTPAddr(), func(c *mail.Config) { c.TLS = mail.TLSStartTLS })
		err := m.Send(context.Background(), &mail.Message{MessageID: "<a@b>", To: "c@example.com", Text: "t"})
		require.Error(t, err)
		assert.ErrorContains(t, err, "STARTTLS")
		assert.Empty(t, c.Messages())
	})
}

// rawSMTP is a scripted server: it accepts DATA and then, depending on
// dropBeforeReply, either hangs up before answering the final dot or
// answers 250 and hangs up before RSET and QUIT.
func rawSMTP(t *testing.T, dropBeforeReply bool) (addr string, accepted chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	accepted = make(chan struct{}, 10)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(conn)
				say := func(s string) { _, _ = io.WriteString(conn, s+"\r\n") }
				say("220 raw.test ESMTP")
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if inData {
						if line == ".\r\n" {
							if dropBeforeReply {
								return
							}
							say("250 2.0.0 queued")
							accepted <- struct{}{}
							return // the connection dies before RSET/QUIT
						}
						continue
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"):
						say("250-raw.test")
						say("250 8BITMIME")
					case strings.HasPrefix(cmd, "DATA"):
						inData = true
						say("354 go ahead")
					case strings.HasPrefix(cmd, "QUIT"):
						say("221 bye")
						return
					default:
						say("250 ok")
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), accepted
}

func TestSendReportsAcceptanceExactly(t *testing.T) {
	msg := &mail.Message{MessageID: "<inv-9.issued@billflow>", To: "c@example.com", Text: "t", HTML: "<p>t</p>"}

	// Accepted, then the connection died: the message went out, so Send
	// must say so, or the caller would send it a second time.
	addr, accepted := rawSMTP(t, false)
	m := mailerFor(t, addr, nil)
	require.NoError(t, m.Send(context.Background(), msg))
	assert.Len(t, accepted, 1)

	// Hung up before answering the final dot: not accepted, transient.
	addr, accepted = rawSMTP(t, true)
	m = mailerFor(t, addr, nil)
	err := m.Send(context.Background(), msg)
	require.Error(t, err)
	assert.NotErrorIs(t, err, mail.ErrPermanent)
	assert.Empty(t, accepted)
}
