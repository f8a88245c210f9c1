package mailcatcher_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/mailcatcher"
)

// rawMessage is hand-written MIME as another mailer would send it:
// multipart/mixed around multipart/alternative, a quoted-printable text
// part, an encoded-word subject and a base64 attachment folded over lines.
const rawMessage = "From: =?utf-8?q?Caf=C3=A9_Practice?= <billing@billflow.local>\r\n" +
	"To: Jordan <jordan@example.com>\r\n" +
	"Reply-To: office@cafe.example\r\n" +
	"Subject: =?utf-8?q?Invoice_INV-0001_=E2=80=93_due?=\r\n" +
	"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n" +
	"Message-ID: <inv-1.issued@billflow>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Pay here: https://pay.example/t?a=3D1 =E2=80=94 thanks\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+UGF5IDxhIGhyZWY9Imh0dHBzOi8vcGF5LmV4YW1wbGUvdCI+aGVyZTwvYT48\r\n" +
	"c2NyaXB0PmFsZXJ0KDEpPC9zY3JpcHQ+PC9wPg==\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"INV-0001.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"INV-0001.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjcKAAEC\r\n" +
	"/wo=\r\n" +
	"--outer--\r\n"

func start(t *testing.T) *mailcatcher.Catcher {
	t.Helper()
	c, err := mailcatcher.Start("127.0.0.1:0", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

func send(t *testing.T, c *mailcatcher.Catcher, to []string, body string) error {
	t.Helper()
	cl, err := smtp.Dial(c.SMTPAddr())
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.SendMail("billing@billflow.local", to, strings.NewReader(body)); err != nil {
		return err
	}
	return cl.Quit()
}

func simple(subject string) string {
	return "From: a@b.example\r\nTo: c@d.example\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@x>\r\n\r\nbody " + subject + "\r\n"
}

func TestParsesNestedMultipart(t *testing.T) {
	c := start(t)
	require.NoError(t, send(t, c, []string{"jordan@example.com", "bcc@example.com"}, rawMessage))
	msgs := c.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Empty(t, m.ParseError)
	assert.Equal(t, "Café Practice <billing@billflow.local>", m.From)
	assert.Equal(t, "billing@billflow.local", m.EnvelopeFrom)
	assert.Equal(t, []string{"jordan@example.com", "bcc@example.com"}, m.To)
	assert.Equal(t, "office@cafe.example", m.ReplyTo)
	assert.Equal(t, "Invoice INV-0001 – due", m.Subject)
	assert.Equal(t, "<inv-1.issued@billflow>", m.MessageID)
	assert.True(t, m.Date.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)))
	assert.Equal(t, "Pay here: https://pay.example/t?a=1 — thanks", strings.TrimSpace(m.Text))
	assert.Equal(t, `<p>Pay <a href="https://pay.example/t">here</a><script>alert(1)</script></p>`, m.HTML)
	require.Len(t, m.Attachments, 1)
	a := m.Attachments[0]
	assert.Equal(t, "INV-0001.pdf", a.Filename)
	assert.Equal(t, "application/pdf", a.ContentType)
	assert.Equal(t, []byte("%PDF-1.7\n\x00\x01\x02\xff\n"), a.Data)
	assert.Equal(t, len(a.Data), a.Size)
	assert.Equal(t, rawMessage, string(m.Raw))
}

func TestHTTPAPI(t *testing.T) {
	c := start(t)
	require.NoError(t, send(t, c, []string{"jordan@example.com"}, rawMessage))
	require.NoError(t, send(t, c, []string{"c@d.example"}, simple("second")))
	base := c.HTTPURL()
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"))

	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b
	}

	resp, body := get("/api/messages")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var list []struct {
		ID          string    `json:"id"`
		From        string    `json:"from"`
		To          []string  `json:"to"`
		Subject     string    `json:"subject"`
		Date        time.Time `json:"date"`
		MessageID   string    `json:"message_id"`
		Text        string    `json:"text"`
		HTML        string    `json:"html"`
		Attachments []struct {
			Filename    string `json:"filename"`
			ContentType string `json:"content_type"`
			Size        int    `json:"size"`
		} `json:"attachments"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list, 2)
	assert.Equal(t, "second", list[0].Subject, "newest first")
	assert.Equal(t, []string{"c@d.example"}, list[0].To)
	assert.NotNil(t, list[0].Attachments, "attachments is [] rather than null")
	first := list[1]
	assert.Equal(t, "Invoice INV-0001 – due", first.Subject)
	assert.Equal(t, "Café Practice <billing@billflow.local>", first.From)
	assert.Equal(t, "<inv-1.issued@billflow>", first.MessageID)
	assert.Contains(t, first.Text, "https://pay.example/t?a=1")
	assert.Contains(t, first.HTML, "https://pay.example/t")
	require.Len(t, first.Attachments, 1)
	assert.Equal(t, "INV-0001.pdf", first.Attachments[0].Filename)
	assert.Equal(t, "application/pdf", first.Attachments[0].ContentType)
	assert.Equal(t, 14, first.Attachments[0].Size)
	assert.NotContains(t, string(body), "JVBER", "attachment bytes stay out of the list")

	resp, body = get("/api/messages/" + first.ID + "/raw")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "message/rfc822", resp.Header.Get("Content-Type"))
	assert.Equal(t, rawMessage, string(body))

	resp, body = get("/api/messages/" + first.ID + "/html")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "sandbox")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.Equal(t, first.HTML, string(body))

	resp, body = get("/api/messages/" + first.ID + "/attachments/0")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/pdf", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Disposition"), `filename=INV-0001.pdf`)
	assert.Equal(t, []byte("%PDF-1.7\n\x00\x01\x02\xff\n"), body)

	resp, _ = get("/api/messages/999/raw")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = get("/api/messages/" + first.ID + "/attachments/5")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	resp, body = get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "Mail catcher")
	assert.Contains(t, string(body), `setAttribute("sandbox"`)

	req, err := http.NewRequest(http.MethodDelete, base+"/api/messages", nil)
	require.NoError(t, err)
	dresp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	dresp.Body.Close()
	assert.Equal(t, http.StatusNoContent, dresp.StatusCode)
	assert.Empty(t, c.Messages())
	_, body = get("/api/messages")
	assert.JSONEq(t, "[]", string(body))
}

func TestHandlerWithoutHTTPListener(t *testing.T) {
	c, err := mailcatcher.Start("127.0.0.1:0", "")
	require.NoError(t, err)
	defer c.Close()
	assert.Empty(t, c.HTTPURL())
	require.NoError(t, send(t, c, []string{"c@d.example"}, simple("one")))
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/messages/1")
	require.NoError(t, err)
	defer resp.Body.Close()
	var m mailcatcher.Stored
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	assert.Equal(t, "one", m.Subject)
	assert.Equal(t, "body one", strings.TrimSpace(m.Text))
}

func TestFailModesAndRestart(t *testing.T) {
	c := start(t)

	c.SetFailMode(mailcatcher.FailReject5xx)
	err := send(t, c, []string{"c@d.example"}, simple("a"))
	var se *smtp.SMTPError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 554, se.Code)

	c.SetFailMode(mailcatcher.FailTempfail4xx)
	err = send(t, c, []string{"c@d.example"}, simple("b"))
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 451, se.Code)
	assert.Empty(t, c.Messages())

	c.SetFailMode(mailcatcher.FailNone)
	addr := c.SMTPAddr()
	require.NoError(t, c.StopSMTP())
	require.NoError(t, c.StopSMTP(), "stopping twice is harmless")
	err = send(t, c, []string{"c@d.example"}, simple("c"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refused")
	require.NoError(t, c.StartSMTP())
	assert.Equal(t, addr, c.SMTPAddr())
	require.NoError(t, send(t, c, []string{"c@d.example"}, simple("d")))
	msgs := c.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "d", msgs[0].Subject)

	assert.Panics(t, func() { c.SetFailMode("bogus") })
}
