package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// ---- middleware ----

const ctxRequestID = "request_id"

func (h *handlers) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if id == "" || len(id) > 64 {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

// logRequests writes one JSON line per request: method, route, status,
// latency and request ID. Never bodies, names, emails or card details.
func (h *handlers) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	h.requests.WithLabelValues(c.Request.Method, route, fmt.Sprint(status)).Observe(time.Since(start).Seconds())
	h.Logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "http request",
		slog.String("request_id", c.GetString(ctxRequestID)), slog.String("method", c.Request.Method),
		slog.String("route", route), slog.Int("status", status), slog.Duration("latency", time.Since(start)))
}

func (h *handlers) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			h.Logger.Error("panic in handler", "request_id", c.GetString(ctxRequestID), "panic", fmt.Sprint(r))
			apiError(c, http.StatusInternalServerError, "api_error", "internal_error", "internal error", "")
		}
	}()
	c.Next()
}
