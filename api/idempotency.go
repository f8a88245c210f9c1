package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/billflow/billflow/store"
)

// Idempotency-Key on every POST of the /v1 API, as Stripe does it: the first
// request with a key runs and its answer is stored for 24 hours; the same
// request again (same method, path and body) gets that answer back with
// Idempotent-Replayed: true and runs nothing; a different request with the
// key is a 409. Keys belong to the caller: a practice, or one client of it
// through a portal token. The Update IDs and workflow IDs that handlers
// derive from the key stay underneath, so a charge is made once even when
// this layer is bypassed (a replay after the 24 hours, a request without a
// stored answer).
const (
	idempotencyHeader = "Idempotency-Key"
	maxIdempotencyKey = 255
	// idempotencyLock is how long a claim holds its key while the request
	// runs: longer than any handler waits (a document render waits 90 s, the
	// http.Server's write timeout is 60 s). After it, a retry may take over
	// the key of an attempt that crashed.
	idempotencyLock = 2 * time.Minute
	// idempotencyTTL is how long an answer is kept. Claims treat older rows as
	// gone whether or not they are deleted yet, so expiry never depends on
	// the sweep.
	idempotencyTTL = 24 * time.Hour
	// The sweep: each API process, at most once a minute, deletes up to
	// idempotencySweepBatch expired rows through the created_at index, right
	// after it stores an answer. That bounds the table at about a day of
	// keyed POSTs with no scheduler to run and no cost on other requests; a
	// backlog (after downtime) drains a batch a minute per process, and
	// claims ignore expired rows meanwhile.
	idempotencySweepEvery = time.Minute
	idempotencySweepBatch = 1000
	// idempotencyStoreWait bounds the writes after the handler, which run
	// even when the caller has gone away.
	idempotencyStoreWait = 5 * time.Second
	// idempotencySettleRetry is how long a failed completion or release
	// of a key is retried in the background.
	idempotencySettleRetry = time.Minute
)

// idempotency is the middleware. It runs after authentication, since the
// key's scope is the caller.
func (h *handlers) idempotency(c *gin.Context) {
	if c.Request.Method != http.MethodPost {
		c.Next()
		return
	}
	key := strings.TrimSpace(c.GetHeader(idempotencyHeader))
	scope := idempotencyScope(principalOf(c))
	if key == "" || scope == "" {
		c.Next()
		return
	}
	if len(key) > maxIdempotencyKey {
		badRequest(c, "parameter_invalid", "Idempotency-Key must be at most 255 characters", idempotencyHeader)
		return
	}
	// Hash the body, then hand it on: the handler reads it again (bindJSON).
	body, ok := readBody(c)
	if !ok {
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	req := store.IdempotencyRequest{Scope: scope, Key: key, Method: c.Request.Method, Path: c.Request.URL.Path,
		Hash: requestHash(c.Request.Method, c.Request.URL.Path, body)}
	claim, err := h.Store.ClaimIdempotencyKey(c.Request.Context(), req, h.Now(), idempotencyLock, idempotencyTTL)
	if err != nil {
		h.unavailable(c, "claim idempotency key", err)
		return
	}
	switch claim.State {
	case store.IdempotencyReplay:
		c.Header("Idempotent-Replayed", "true")
		if claim.ContentType != "" {
			c.Header("Content-Type", claim.ContentType)
		}
		c.Status(claim.Status)
		_, _ = c.Writer.Write(claim.Response)
		c.Abort()
		return
	case store.IdempotencyMismatch:
		apiError(c, http.StatusConflict, "idempotency_error", "idempotency_key_reused",
			"this Idempotency-Key was already used for a different request (method, path or body); use a new key for a new request",
			idempotencyHeader)
		return
	case store.IdempotencyInFlight:
		c.Header("Retry-After", "1")
		apiError(c, http.StatusConflict, "idempotency_error", "idempotency_key_in_use",
			"a request with this Idempotency-Key is still being processed; retry in a moment", idempotencyHeader)
		return
	}

	rec := &recordingWriter{ResponseWriter: c.Writer}
	c.Writer = rec
	finished := false
	defer func() {
		if !finished {
			// The handler panicked: forget the key, so a retry runs again.
			h.releaseIdempotencyKey(c, req, claim.Token)
		}
	}()
	c.Next()
	finished = true

	status := c.Writer.Status()
	if status >= http.StatusInternalServerError || status == http.StatusTooManyRequests || status == http.StatusAccepted {
		// Not an answer to keep: the retry the client is told to make must
		// run (a 202's retry then finds the work done, or still going).
		h.releaseIdempotencyKey(c, req, claim.Token)
		return
	}
	contentType, body := c.Writer.Header().Get("Content-Type"), rec.body.Bytes()
	h.settleIdempotencyKey(c, "store idempotent response", func(ctx context.Context) error {
		return h.Store.CompleteIdempotencyKey(ctx, req.Scope, req.Key, claim.Token, status, contentType, body)
	})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), idempotencyStoreWait)
	defer cancel()
	h.sweepIdempotencyKeys(ctx)
}

func (h *handlers) releaseIdempotencyKey(c *gin.Context, req store.IdempotencyRequest, token string) {
	h.settleIdempotencyKey(c, "release idempotency key", func(ctx context.Context) error {
		return h.Store.ReleaseIdempotencyKey(ctx, req.Scope, req.Key, token)
	})
}

// settleIdempotencyKey runs the write that completes or releases a claimed
// key. When it fails (Postgres restarting) it is retried in the background
// for up to idempotencySettleRetry: left undone, the key would stay claimed
// until its lock runs out, and every retry of the request would get
// 409 idempotency_key_in_use for minutes after a few seconds' outage. A
// write that never lands is still safe: the retry after the lock runs the
// request again, and the layers underneath keep that from doing anything twice.
func (h *handlers) settleIdempotencyKey(c *gin.Context, op string, write func(context.Context) error) {
	try := func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), idempotencyStoreWait)
		defer cancel()
		return write(ctx)
	}
	err := try()
	if err == nil {
		return
	}
	reqID := c.GetString(ctxRequestID)
	h.Logger.Warn(op+"; retrying", "request_id", reqID, "error", err.Error())
	go func() {
		deadline := time.Now().Add(idempotencySettleRetry)
		for wait := 250 * time.Millisecond; time.Now().Before(deadline); wait = min(2*wait, 4*time.Second) {
			time.Sleep(wait)
			if err = try(); err == nil {
				return
			}
		}
		h.Logger.Warn(op+" failed; the key frees when its lock runs out", "request_id", reqID, "error", err.Error())
	}()
}

// sweepIdempotencyKeys deletes a batch of expired keys, at most once per
// idempotencySweepEvery in this process.
func (h *handlers) sweepIdempotencyKeys(ctx context.Context) {
	now := h.Now()
	last := h.idempotencySwept.Load()
	if now.UnixNano()-last < int64(idempotencySweepEvery) || !h.idempotencySwept.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if _, err := h.Store.DeleteExpiredIdempotencyKeys(ctx, now.Add(-idempotencyTTL), idempotencySweepBatch); err != nil &&
		!errors.Is(err, context.Canceled) {
		h.Logger.Warn("sweep idempotency keys", "error", err.Error())
	}
}

// idempotencyScope is whose key it is: the practice, or one client of it.
func idempotencyScope(p principal) string {
	if p.ClientID != "" {
		return p.PracticeID + "/" + p.ClientID
	}
	return p.PracticeID
}

// requestHash is what "the same request" means: method, concrete path and
// body. A JSON body counts by its meaning, not its bytes: key order and
// whitespace don't matter (numbers keep their literal text); anything else
// is compared byte for byte.
func requestHash(method, path string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(method + " " + path + "\n"))
	h.Write(canonicalJSON(body))
	return h.Sum(nil)
}

// canonicalJSON re-encodes one JSON value with sorted object keys and no
// insignificant whitespace; a body that is not exactly one JSON value is
// returned unchanged.
func canonicalJSON(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return body
	}
	if _, err := dec.Token(); err != io.EOF {
		return body
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

// recordingWriter keeps a copy of the response body for replays.
type recordingWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) WriteString(s string) (int, error) {
	w.body.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}
