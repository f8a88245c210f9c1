package api

import (
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
	g.OPTIONS("/*path", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	serve := func(c *gin.Context) {
		if !h.codecAllowed(c) {
			return
		}
		c.Request.URL.Path = strings.TrimPrefix(c.Request.URL.Path, "/codec")
		http.MaxBytesHandler(codecHandler, 4<<20).ServeHTTP(c.Writer, c.Request)
	}
	g.POST("/decode", serve)
	g.POST("/encode", serve)
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
