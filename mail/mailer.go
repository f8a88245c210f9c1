// Package mail sends billflow's email over SMTP (go-mail) and composes each
// kind of email from the templates in templates/email. It knows nothing of
// Temporal or Postgres: the caller records a row per Message-ID so a retried
// activity never sends a second copy, and this package tells it precisely
// whether the server accepted a message.
package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes of Config.TLS, as in SMTP_TLS.
const (
	TLSNone     = "none"     // plain SMTP (the dev mail catcher)
	TLSStartTLS = "starttls" // STARTTLS required, usually port 587
	TLSImplicit = "tls"      // TLS from the first byte, usually port 465
)

// DefaultTimeout bounds one Send when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// ErrPermanent marks a send the SMTP server rejected with a 5xx reply to
// MAIL FROM, RCPT TO or DATA: retrying the same message will fail the same
// way, so the caller records the failure instead of retrying forever. Every
// other failure (4xx, connection refused, timeouts, a bad TLS handshake or
// login) is transient and returned as a plain error.
var ErrPermanent = errors.New("mail: permanent SMTP rejection")

// Config is the SMTP connection and the envelope sender, from SMTP_* and MAIL_FROM.
type Config struct {
	Host     string
	Port     int
	Username string // empty: no SMTP AUTH
	Password string
	// TLS is "none", "starttls" or "tls" (empty means "none").
	TLS string
	// From is MAIL_FROM, e.g. "billflow <billing@billflow.local>": its address
	// is the envelope sender and From address of every message; its name is
	// the default display name when a Message has no FromName.
	From string
	// Timeout bounds one Send (dial, TLS, AUTH, transfer); zero means DefaultTimeout.
	Timeout time.Duration
	// InsecureSkipVerify accepts any server certificate. Only for tests
	// against a server with a self-signed certificate; never in production.
	InsecureSkipVerify bool
}

// Attachment is a file attached to a message, e.g. an invoice PDF.
type Attachment struct {
	Filename    string
	ContentType string // empty means application/octet-stream
	Data        []byte
}

// Message is one logical email. Its MessageID is stable (see MessageID) so
// the caller can record it and recognise a resend of the same email.
type Message struct {
	// MessageID is the full header value, angle brackets included, e.g.
	// "<inv-42.reminder-2@billflow>". Required: billflow never lets the
	// library invent one, or a retry could not be matched to the first try.
	MessageID string
	// FromName is the practice's name: the From header becomes
	// "FromName <address of Config.From>". Empty uses Config.From's name.
	FromName string
	// ReplyTo is the practice's own address, so a client's reply reaches
	// the practice rather than the no-reply sender. Optional.
	ReplyTo string
	To      string
	ToName  string
	Subject string
	// Text and HTML are the two alternative bodies; at least one is required.
	Text        string
	HTML        string
	Attachments []Attachment
	// Headers are extra headers such as X-Billflow-Kind.
	Headers map[string]string
}

// Mailer sends messages. It holds no connection between sends: each Send
// dials, delivers one message and quits, so a Mailer is safe for concurrent use.
type Mailer struct {
	cfg  Config
	from *netmail.Address
}

// New validates cfg and returns a Mailer. It does not dial: an SMTP server
// that is down at start-up must not keep the worker from starting.
func New(cfg Config) (*Mailer, error) {
	if cfg.Host == "" {
		return nil, errors.New("mail: SMTP host is required")
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("mail: SMTP port %d out of range", cfg.Port)
	}
	switch strings.ToLower(cfg.TLS) {
	case "":
		cfg.TLS = TLSNone
	case TLSNone, TLSStartTLS, TLSImplicit:
		cfg.TLS = strings.ToLower(cfg.TLS)
	default:
		return nil, fmt.Errorf("mail: SMTP TLS mode %q: want none, starttls or tls", cfg.TLS)
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("mail: SMTP password given without a username")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("mail: negative timeout %s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.From == "" {
		return nil, errors.New("mail: MAIL_FROM is required")
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail: MAIL_FROM %q: %w", cfg.From, err)
	}
	return &Mailer{cfg: cfg, from: from}, nil
}

// FromAddress is the bare address of Config.From; its domain suits MessageID.
func (m *Mailer) FromAddress() string { return m.from.Address }

// MessageID builds a stable Message-ID header value from billflow's own IDs,
// e.g. MessageID("billflow", "inv-42", "reminder-2") = "<inv-42.reminder-2@billflow>".
// The same parts always give the same ID, which is what lets a retried
// activity find the row it recorded for the first attempt. Characters not
// allowed in a Message-ID are replaced by '-'; an empty domain means "billflow".
func MessageID(domain string, parts ...string) string {
	domain = sanitizeAtom(strings.Trim(domain, "<>@ "))
	if domain == "" {
		domain = "billflow"
	}
	clean := make([]string, 0, len(parts))
	for _, p := range parts {
		if p = sanitizeAtom(p); p != "" {
			clean = append(clean, p)
		}
	}
	if len(clean) == 0 {
		clean = append(clean, "message")
	}
	return "<" + strings.Join(clean, ".") + "@" + domain + ">"
}

// sanitizeAtom keeps the dot-atom characters of RFC 5322 and maps the rest to '-'.
func sanitizeAtom(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), ".")
}

// Send delivers msg and returns nil only once the server has accepted its
// DATA. A failure after that point (the RSET or QUIT that follow) is not an
// error: the message went out, and reporting otherwise would make the
// caller send it twice. A 5xx rejection wraps ErrPermanent; anything else
// is transient. ctx cancels the whole exchange, not only the dial.
func (m *Mailer) Send(ctx context.Context, msg *Message) error {
	gm, err := m.build(msg)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send %s: %w", msg.MessageID, err)
	}
	timeout := m.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = max(left, time.Millisecond)
		}
	}
	client, err := m.client(ctx, timeout)
	if err != nil {
		return fmt.Errorf("send %s: %w", msg.MessageID, err)
	}
	sendErr := client.DialAndSendWithContext(ctx, gm)
	if gm.IsDelivered() {
		return nil
	}
	if sendErr == nil {
		// Unreachable with go-mail v0.8.1, but never claim success unseen.
		return fmt.Errorf("send %s: server did not confirm delivery", msg.MessageID)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("send %s: %w (%w)", msg.MessageID, ctxErr, sendErr)
	}
	if isPermanent(sendErr) {
		return fmt.Errorf("send %s: %w: %w", msg.MessageID, ErrPermanent, sendErr)
	}
	return fmt.Errorf("send %s: %w", msg.MessageID, sendErr)
}

// isPermanent reports a 5xx reply to a per-message command. go-mail puts the
// server's code on its SendError; errors.Join'd lists are searched too.
func isPermanent(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
		code := se.ErrorCode()
		return code >= 500 && code < 600
	}
	return false
}

// client builds a go-mail client for one send. The dialer closes the
// connection when ctx ends, which go-mail alone only honours while dialing.
func (m *Mailer) client(ctx context.Context, timeout time.Duration) (*gomail.Client, error) {
	tlsCfg := &tls.Config{
		ServerName:         m.cfg.Host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: m.cfg.InsecureSkipVerify, //nolint:gosec // documented test-only switch
	}
	implicit := m.cfg.TLS == TLSImplicit
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		nd := &net.Dialer{}
		var conn net.Conn
		var err error
		if implicit {
			conn, err = (&tls.Dialer{NetDialer: nd, Config: tlsCfg}).DialContext(dctx, network, addr)
		} else {
			conn, err = nd.DialContext(dctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { _ = conn.Close() })
		return conn, nil
	}
	opts := []gomail.Option{
		gomail.WithPort(m.cfg.Port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(tlsCfg),
		gomail.WithDialContextFunc(dial),
		gomail.WithHELO(heloName(m.from.Address)),
	}
	switch m.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		// Implicit TLS is done by the dialer; none means no STARTTLS.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if m.cfg.Username != "" {
		// PLAIN and LOGIN refuse to run over an unencrypted link to a
		// non-local host, so a password never crosses the network in clear.
		opts = append(opts,
			gomail.WithUsername(m.cfg.Username), gomail.WithPassword(m.cfg.Password),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
				gomail.SMTPAuthPlain, gomail.SMTPAuthLogin, gomail.SMTPAuthCramMD5))
	}
	return gomail.NewClient(m.cfg.Host, opts...)
}

// heloName is the sender's domain, a better EHLO name than "localhost".
func heloName(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i < len(addr)-1 {
		return addr[i+1:]
	}
	return "localhost"
}

// build turns a Message into a go-mail message. Its errors are the
// caller's fault (a bad address, no body) and retrying cannot fix them.
func (m *Mailer) build(msg *Message) (*gomail.Msg, error) {
	if msg == nil {
		return nil, errors.New("nil message")
	}
	id := strings.TrimSpace(msg.MessageID)
	if len(id) < 5 || id[0] != '<' || id[len(id)-1] != '>' || !strings.Contains(id, "@") ||
		strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return nil, fmt.Errorf("message ID %q: want <local@domain> (see MessageID)", msg.MessageID)
	}
	if msg.To == "" {
		return nil, errors.New("no recipient")
	}
	if msg.Text == "" && msg.HTML == "" {
		return nil, errors.New("empty body")
	}
	gm := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	fromName := msg.FromName
	if fromName == "" {
		fromName = m.from.Name
	}
	gm.FromMailAddress(&netmail.Address{Name: fromName, Address: m.from.Address})
	if err := gm.EnvelopeFrom(m.from.Address); err != nil {
		return nil, fmt.Errorf("envelope sender: %w", err)
	}
	to, err := netmail.ParseAddress(msg.To)
	if err != nil {
		return nil, fmt.Errorf("recipient %q: %w", msg.To, err)
	}
	if msg.ToName != "" {
		to.Name = msg.ToName
	}
	gm.ToMailAddress(to)
	if msg.ReplyTo != "" {
		rt, err := netmail.ParseAddress(msg.ReplyTo)
		if err != nil {
			return nil, fmt.Errorf("reply-to %q: %w", msg.ReplyTo, err)
		}
		if rt.Name == "" {
			rt.Name = msg.FromName
		}
		gm.ReplyToMailAddress(rt)
	}
	gm.Subject(msg.Subject)
	gm.SetMessageIDWithValue(strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">"))
	gm.SetDate()
	for k, v := range msg.Headers {
		if !validHeaderName(k) || strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("header %q: invalid name or value", k)
		}
		gm.SetGenHeader(gomail.Header(k), v)
	}
	switch {
	case msg.Text != "" && msg.HTML != "":
		gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
		gm.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	case msg.Text != "":
		gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
	default:
		gm.SetBodyString(gomail.TypeTextHTML, msg.HTML)
	}
	for _, a := range msg.Attachments {
		if a.Filename == "" || strings.ContainsAny(a.Filename, "\r\n/\\") {
			return nil, fmt.Errorf("attachment filename %q", a.Filename)
		}
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		gm.AttachReadSeeker(a.Filename, bytes.NewReader(a.Data), gomail.WithFileContentType(gomail.ContentType(ct)))
	}
	return gm, nil
}

// validHeaderName accepts RFC 5322 field names and refuses the headers this
// package owns, so a caller cannot smuggle a second From or Message-ID.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if r <= ' ' || r > '~' || r == ':' {
			return false
		}
	}
	switch strings.ToLower(k) {
	case "from", "to", "cc", "bcc", "reply-to", "subject", "message-id", "date",
		"content-type", "content-transfer-encoding", "mime-version", "sender":
		return false
	}
	return true
}
