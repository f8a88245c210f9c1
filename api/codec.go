package api

import (
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/tenancy"
)

// codecRoutes serves the payload codec for the Temporal UI (POST
// /codec/decode and /codec/encode), so a practitioner reads decrypted
// payloads there: only their own practice's. A practice API key decodes
// payloads under that practice's data keys (the master key, for a practice
// made before namespaces); a payload under any other key is refused with 403
// and nothing is decrypted. In development only, the local UI (which has no
// key to send) may call it from loopback: it decodes for the practice whose
// namespace the UI names in X-Namespace (none: the shared namespace, master
// key). CORS admits the Temporal UI's origin.
func (h *handlers) codecRoutes(r *gin.Engine) {
	if h.Codec == nil && (h.Tenants == nil || h.Tenants.Keyring == nil) {
		return
	}
	g := r.Group("/codec", h.codecCORS)
	preflight := func(c *gin.Context) { c.Status(http.StatusNoContent) }
	for _, op := range []string{"decode", "encode"} {
		g.OPTIONS("/"+op, preflight)
		g.POST("/"+op, func(c *gin.Context) { h.serveCodec(c, op == "decode") })
	}
}

func (h *handlers) serveCodec(c *gin.Context, decode bool) {
	pc, ok := h.callerCodec(c)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 4<<20))
	var in commonpb.Payloads
	if err == nil {
		err = protojson.Unmarshal(body, &in)
	}
	if err != nil {
		badRequest(c, "invalid_payloads", "the body must be {\"payloads\": [...]}", "payloads")
		return
	}
	var out []*commonpb.Payload
	if decode {
		out, err = pc.Decode(in.Payloads)
	} else {
		out, err = pc.Encode(in.Payloads)
	}
	switch {
	case errors.Is(err, codec.ErrForbidden):
		h.Logger.Warn("codec refused another key's payloads", "request_id", c.GetString(ctxRequestID))
		apiError(c, http.StatusForbidden, "invalid_request_error", "forbidden",
			"these payloads are not your practice's: they are encrypted under another key", "payloads")
		return
	case err != nil:
		// Not the error text: it may quote the body.
		h.Logger.Warn("codec refused payloads", "request_id", c.GetString(ctxRequestID))
		badRequest(c, "invalid_payloads", "the body must be {\"payloads\": [...]} with payloads this codec can read", "payloads")
		return
	}
	raw, err := protojson.Marshal(&commonpb.Payloads{Payloads: out})
	if err != nil {
		h.internal(c, "encode payloads", err)
		return
	}
	c.Data(http.StatusOK, "application/json", raw)
}

// callerCodec is the codec of the caller's practice; it answers the request
// itself and returns false when there is none.
func (h *handlers) callerCodec(c *gin.Context) (converter.PayloadCodec, bool) {
	forbidden := func() (converter.PayloadCodec, bool) {
		apiError(c, http.StatusForbidden, "invalid_request_error", "forbidden",
			"name the namespace you view in X-Namespace, or send your practice API key", "")
		return nil, false
	}
	ctx := c.Request.Context()
	if c.GetHeader("Authorization") == "" && !h.Config.Production() && loopback(c) {
		// The dev stack's own UI: the namespace it shows says whose payloads.
		ns := c.GetHeader("X-Namespace")
		if h.Tenants == nil || h.Tenants.Keyring == nil {
			return h.Codec, true
		}
		if ns == "" || ns == h.Config.TemporalNamespace {
			// The shared namespace: the master key, as before namespaces.
			return h.Tenants.Keyring.ForPractice(""), true
		}
		practiceID, ok := tenancy.PracticeOfNamespace(ns)
		if !ok {
			return forbidden()
		}
		if have, err := h.Tenants.PracticeNamespace(ctx, practiceID); err != nil || have != ns {
			return forbidden()
		}
		return h.Tenants.Keyring.ForPractice(practiceID), true
	}
	h.practiceAuth(c)
	if c.IsAborted() {
		return nil, false
	}
	if h.Tenants == nil || h.Tenants.Keyring == nil {
		return h.Codec, true
	}
	pc, err := h.Tenants.CodecFor(ctx, principalOf(c).PracticeID)
	if err != nil {
		h.unavailable(c, "practice codec", err)
		return nil, false
	}
	return pc, true
}

func loopback(c *gin.Context) bool {
	host, _, _ := net.SplitHostPort(c.Request.RemoteAddr)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
