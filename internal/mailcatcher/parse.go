package mailcatcher

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"time"
)

// Stored is one caught message, parsed for the viewer and for tests.
type Stored struct {
	ID           string              `json:"id"`
	From         string              `json:"from"`          // the From header, decoded: `Calm Mind <billing@x>`
	EnvelopeFrom string              `json:"envelope_from"` // MAIL FROM
	To           []string            `json:"to"`            // RCPT TO, the addresses it was delivered to
	ReplyTo      string              `json:"reply_to,omitempty"`
	Subject      string              `json:"subject"`
	Date         time.Time           `json:"date"`
	MessageID    string              `json:"message_id"`
	Text         string              `json:"text"`
	HTML         string              `json:"html"`
	Attachments  []Attachment        `json:"attachments"`
	Headers      map[string][]string `json:"headers"` // every header, decoded
	Received     time.Time           `json:"received"`
	Raw          []byte              `json:"-"`
	ParseError   string              `json:"parse_error,omitempty"`
}

// Attachment is a file part of a caught message.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
	Data        []byte `json:"-"`
}

var decoder = &mime.WordDecoder{}

func decodeHeader(v string) string {
	if d, err := decoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// parseMessage never fails: a message it cannot parse is kept raw, with
// ParseError set, because a catcher that drops mail hides bugs.
func parseMessage(raw []byte) *Stored {
	m := &Stored{Raw: raw, Attachments: []Attachment{}, Headers: map[string][]string{}}
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		m.ParseError = err.Error()
		return m
	}
	for k, vs := range msg.Header {
		for _, v := range vs {
			m.Headers[k] = append(m.Headers[k], decodeHeader(v))
		}
	}
	m.From = decodeHeader(msg.Header.Get("From"))
	m.ReplyTo = decodeHeader(msg.Header.Get("Reply-To"))
	m.Subject = decodeHeader(msg.Header.Get("Subject"))
	m.MessageID = strings.TrimSpace(msg.Header.Get("Message-Id"))
	if d, err := msg.Header.Date(); err == nil {
		m.Date = d
	}
	if err := m.walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"),
		msg.Header.Get("Content-Disposition"), msg.Body); err != nil {
		m.ParseError = err.Error()
	}
	return m
}

// walk visits one MIME entity: multiparts recurse (mixed → alternative →
// related); the first inline text/plain and text/html become the bodies;
// everything else, and anything marked as an attachment, is an attachment.
func (m *Stored) walk(contentType, cte, disposition string, body io.Reader) error {
	if contentType == "" {
		contentType = "text/plain; charset=utf-8"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mediaType, params = "application/octet-stream", map[string]string{}
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			// NextPart has already decoded quoted-printable and dropped
			// its Content-Transfer-Encoding header; base64 is ours to do.
			if err := m.walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"),
				p.Header.Get("Content-Disposition"), p); err != nil {
				return err
			}
		}
	}
	data, err := io.ReadAll(decodeBody(body, cte))
	if err != nil {
		return err
	}
	disp, dparams, _ := mime.ParseMediaType(disposition)
	filename := decodeHeader(dparams["filename"])
	if filename == "" {
		filename = decodeHeader(params["name"])
	}
	isAttachment := disp == "attachment" || filename != ""
	switch {
	case !isAttachment && mediaType == "text/plain" && m.Text == "":
		m.Text = string(data)
	case !isAttachment && mediaType == "text/html" && m.HTML == "":
		m.HTML = string(data)
	default:
		m.Attachments = append(m.Attachments, Attachment{
			Filename: filename, ContentType: mediaType, Size: len(data), Data: data,
		})
	}
	return nil
}

func decodeBody(r io.Reader, cte string) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &stripSpace{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// stripSpace drops the line breaks base64 bodies are folded with.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, b := range p[:n] {
			if b != '\r' && b != '\n' && b != ' ' && b != '\t' {
				p[j] = b
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
