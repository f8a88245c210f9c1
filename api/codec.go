package api

import (
	"bytes"
	"net"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/converter"
)

// codecRoutes serves the payload codec for the Temporal UI (POST
// /codec/decode and /codec/encode), so a practitioner reads decrypted
// payloads there. It answers only to a practice API key, except in
// development where the local UI (which has no key to send) may call it from
// loopback. CORS admits the Temporal UI's origin.
func (h *handlers) codecRoutes(r *gin.Engine) {
	if h.Codec == nil {
		return
	}
	codecHandler := converter.NewPayloadCodecHTTPHandler(h.Codec)
	g := r.Group("/codec", h.codecCORS)
	preflight := func(c *gin.Context) { c.Status(http.StatusNoContent) }
	serve := func(c *gin.Context) {
		if !h.codecAllowed(c) {
			return
		}
		req := c.Request.Clone(c.Request.Context())
		req.URL.Path = strings.TrimPrefix(req.URL.Path, "/codec")
		// The SDK's handler answers failures in plain text with the internal
		// error; buffer its answer and give the API's error shape instead.
		out := &bufferedResponse{header: http.Header{}}
		http.MaxBytesHandler(codecHandler, 4<<20).ServeHTTP(out, req)
		if out.status != 0 && out.status != http.StatusOK {
			// Not the error text: it may quote the body.
			h.Logger.Warn("codec refused payloads", "request_id", c.GetString(ctxRequestID), "status", out.status)
			badRequest(c, "invalid_payloads", "the body must be {\"payloads\": [...]} with payloads this codec can read", "payloads")
			return
		}
		c.Data(http.StatusOK, "application/json", out.body.Bytes())
	}
	for _, p := range []string{"/decode", "/encode"} {
		g.OPTIONS(p, preflight)
		g.POST(p, serve)
	}
}

// bufferedResponse holds a handler's answer until it is checked.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

func (h *handlers) codecCORS(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin != "" && origin == h.Config.TemporalUIOrigin {
		c.Header("Access-Control-Allow-Origin", origin)
		c.Header("Access-Control-Allow-Credentials", "true")
		c.Header("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Namespace")
		c.Header("Access-Control-Allow-Methods", "POST, OPTIONS")
		c.Header("Vary", "Origin")
	}
	c.Next()
}

func (h *handlers) codecAllowed(c *gin.Context) bool {
	if c.GetHeader("Authorization") == "" && !h.Config.Production() {
		host, _, _ := net.SplitHostPort(c.Request.RemoteAddr)
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return true
		}
	}
	h.practiceAuth(c)
	return !c.IsAborted()
}
