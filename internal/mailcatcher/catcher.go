// Package mailcatcher is the dev stack's SMTP capture server: it accepts every
// message on a local SMTP port (go-smtp), keeps the most recent ones in
// memory and shows them in a small web viewer and a JSON API, so a developer
// or a test sees exactly what billflow would have emailed a client. It can
// also fail on purpose (SetFailMode, StopSMTP/StartSMTP) so tests can prove
// that permanent rejections, temporary failures and a server that is down
// are handled.
package mailcatcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// MaxMessages is how many messages the catcher keeps; older ones are dropped.
const MaxMessages = 1000

// MaxMessageBytes caps one message, generous for PDFs attached to emails.
const MaxMessageBytes = 32 << 20

// Fail modes for SetFailMode.
const (
	FailNone        = ""             // accept everything
	FailReject5xx   = "reject-5xx"   // 554 at DATA: a permanent rejection
	FailTempfail4xx = "tempfail-4xx" // 451 at DATA: try again later
)

// Catcher is a running SMTP capture server and its HTTP viewer.
type Catcher struct {
	mu       sync.Mutex
	msgs     []*Stored // oldest first
	nextID   int
	failMode string

	smtpAddr string // the bound address, reused by StartSMTP
	smtpSrv  *smtp.Server
	smtpLn   net.Listener
	smtpDone chan struct{}

	httpLn   net.Listener
	httpSrv  *http.Server
	httpDone chan struct{}
	handler  http.Handler
}

// Start listens for SMTP on smtpAddr and serves the viewer on httpAddr.
// Port 0 picks a free port (tests); an empty httpAddr serves no HTTP, though
// Handler still works.
func Start(smtpAddr, httpAddr string) (*Catcher, error) {
	c := &Catcher{}
	c.handler = c.routes()
	ln, err := net.Listen("tcp", smtpAddr)
	if err != nil {
		return nil, fmt.Errorf("mailcatcher: listen smtp %s: %w", smtpAddr, err)
	}
	c.smtpAddr = ln.Addr().String()
	c.serveSMTP(ln)
	if httpAddr != "" {
		hl, err := net.Listen("tcp", httpAddr)
		if err != nil {
			_ = c.StopSMTP()
			return nil, fmt.Errorf("mailcatcher: listen http %s: %w", httpAddr, err)
		}
		c.httpLn = hl
		c.httpSrv = &http.Server{
			Handler:           c.handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       time.Minute,
		}
		c.httpDone = make(chan struct{})
		go func() {
			defer close(c.httpDone)
			if err := c.httpSrv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Printf("mailcatcher: http: %v", err)
			}
		}()
	}
	return c, nil
}

func (c *Catcher) serveSMTP(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{c: c}, nil
	}))
	srv.Domain = "mailcatcher.local"
	srv.MaxMessageBytes = MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	c.mu.Lock()
	c.smtpSrv, c.smtpLn, c.smtpDone = srv, ln, done
	c.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
}

// SMTPAddr is the host:port the SMTP server listens on (the same across
// StopSMTP and StartSMTP).
func (c *Catcher) SMTPAddr() string { return c.smtpAddr }

// HTTPURL is the viewer's base URL, e.g. http://127.0.0.1:8025, or "" without HTTP.
func (c *Catcher) HTTPURL() string {
	if c.httpLn == nil {
		return ""
	}
	return "http://" + c.httpLn.Addr().String()
}

// Handler serves the viewer and the JSON API; tests can mount it on httptest.
func (c *Catcher) Handler() http.Handler { return c.handler }

// SetFailMode makes the SMTP server fail on purpose: FailNone, FailReject5xx
// or FailTempfail4xx. Any other value panics, since it is a test's typo.
func (c *Catcher) SetFailMode(mode string) {
	switch mode {
	case FailNone, FailReject5xx, FailTempfail4xx:
	default:
		panic(fmt.Sprintf("mailcatcher: unknown fail mode %q", mode))
	}
	c.mu.Lock()
	c.failMode = mode
	c.mu.Unlock()
}

// StopSMTP closes the SMTP listener and its connections, so clients see
// "connection refused" (SMTP down); messages and the viewer stay.
func (c *Catcher) StopSMTP() error {
	c.mu.Lock()
	srv, ln, done := c.smtpSrv, c.smtpLn, c.smtpDone
	c.smtpSrv, c.smtpLn = nil, nil
	c.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	// Serve may not have registered the listener with srv yet, in which
	// case srv.Close cannot reach it: close it here too.
	if lerr := ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) && err == nil {
		err = lerr
	}
	<-done
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// StartSMTP listens again on the same address after StopSMTP (SMTP back up).
func (c *Catcher) StartSMTP() error {
	c.mu.Lock()
	running := c.smtpSrv != nil
	c.mu.Unlock()
	if running {
		return nil
	}
	ln, err := net.Listen("tcp", c.smtpAddr)
	if err != nil {
		return fmt.Errorf("mailcatcher: listen smtp %s: %w", c.smtpAddr, err)
	}
	c.serveSMTP(ln)
	return nil
}

// Close stops both servers.
func (c *Catcher) Close() error {
	err := c.StopSMTP()
	if c.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if herr := c.httpSrv.Shutdown(ctx); herr != nil {
			err = errors.Join(err, herr)
		}
		<-c.httpDone
	}
	return err
}

// Messages returns the caught messages, newest first.
func (c *Catcher) Messages() []Stored {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Stored, 0, len(c.msgs))
	for i := len(c.msgs) - 1; i >= 0; i-- {
		out = append(out, *c.msgs[i])
	}
	return out
}

// Message returns one caught message by ID.
func (c *Catcher) Message(id string) (Stored, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m.ID == id {
			return *m, true
		}
	}
	return Stored{}, false
}

// Reset forgets every caught message.
func (c *Catcher) Reset() {
	c.mu.Lock()
	c.msgs = nil
	c.mu.Unlock()
}

func (c *Catcher) store(m *Stored) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	m.ID = strconv.Itoa(c.nextID)
	c.msgs = append(c.msgs, m)
	if over := len(c.msgs) - MaxMessages; over > 0 {
		clear(c.msgs[:over])
		c.msgs = c.msgs[over:]
	}
}

func (c *Catcher) mode() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failMode
}

// session collects one SMTP transaction.
type session struct {
	c    *Catcher
	from string
	to   []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.to = from, nil
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	switch s.c.mode() {
	case FailReject5xx:
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message rejected (mailcatcher reject-5xx mode)"}
	case FailTempfail4xx:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later (mailcatcher tempfail-4xx mode)"}
	}
	m := parseMessage(raw)
	m.EnvelopeFrom = s.from
	m.To = append([]string(nil), s.to...)
	m.Received = time.Now()
	if m.Date.IsZero() {
		m.Date = m.Received
	}
	s.c.store(m)
	return nil
}
