package mailcatcher

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
)

//go:embed viewer.html
var viewerHTML []byte

// htmlCSP keeps a caught email's HTML inert: no scripts, no network
// fetches (a tracking pixel would leak), only inline styles and data: images.
const htmlCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"

func (c *Catcher) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-src 'self'")
		_, _ = w.Write(viewerHTML)
	})
	mux.HandleFunc("GET /api/messages", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Messages())
	})
	mux.HandleFunc("DELETE /api/messages", func(w http.ResponseWriter, _ *http.Request) {
		c.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := c.lookup(w, r); ok {
			writeJSON(w, http.StatusOK, m)
		}
	})
	mux.HandleFunc("GET /api/messages/{id}/raw", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := c.lookup(w, r); ok {
			w.Header().Set("Content-Type", "message/rfc822")
			w.Header().Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": "message-" + m.ID + ".eml"}))
			_, _ = w.Write(m.Raw)
		}
	})
	mux.HandleFunc("GET /api/messages/{id}/html", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := c.lookup(w, r); ok {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Security-Policy", htmlCSP)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			_, _ = w.Write([]byte(m.HTML))
		}
	})
	mux.HandleFunc("GET /api/messages/{id}/attachments/{n}", func(w http.ResponseWriter, r *http.Request) {
		m, ok := c.lookup(w, r)
		if !ok {
			return
		}
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n >= len(m.Attachments) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such attachment"})
			return
		}
		a := m.Attachments[n]
		w.Header().Set("Content-Type", a.ContentType)
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}))
		w.Header().Set("Content-Security-Policy", htmlCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(len(a.Data)))
		_, _ = w.Write(a.Data)
	})
	return mux
}

func (c *Catcher) lookup(w http.ResponseWriter, r *http.Request) (Stored, bool) {
	id := r.PathValue("id")
	m, ok := c.Message(id)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no message %q", id)})
	}
	return m, ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
