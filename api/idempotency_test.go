package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/pgtest"
	"github.com/billflow/billflow/store"
)

// idemRig is the middleware on a real Postgres in front of a handler that
// counts its runs and answers as the body asks.
type idemRig struct {
	st      *store.Store
	r       *gin.Engine
	runs    atomic.Int64
	started chan struct{} // a blocking request has started
	unblock chan struct{}

	mu  sync.Mutex
	now time.Time
}

type thingReq struct {
	Name   string `json:"name"`
	Status int    `json:"status,omitempty"`
	Panic  bool   `json:"panic,omitempty"`
	Block  bool   `json:"block,omitempty"`
}

func newIdemRig(t *testing.T) *idemRig {
	gin.SetMode(gin.TestMode)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, pgtest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(st.Close)
	rig := &idemRig{st: st, now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC),
		started: make(chan struct{}, 16), unblock: make(chan struct{})}
	h := &handlers{Deps: Deps{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: rig.clock}}
	// Stands in for practiceAuth: the caller is named by test headers.
	auth := func(c *gin.Context) {
		c.Set(ctxPrincipal, principal{PracticeID: c.GetHeader("X-Practice"), ClientID: c.GetHeader("X-Client")})
		c.Next()
	}
	thing := func(c *gin.Context) {
		var req thingReq
		if !bindJSON(c, &req) {
			return
		}
		n := rig.runs.Add(1)
		if req.Panic {
			panic("handler crashed")
		}
		if req.Block {
			rig.started <- struct{}{}
			<-rig.unblock
		}
		if req.Status >= 400 {
			apiError(c, req.Status, "invalid_request_error", "asked_for", "asked for "+http.StatusText(req.Status), "status")
			return
		}
		c.JSON(http.StatusCreated, gin.H{"id": fmt.Sprintf("thing_%d", n), "name": req.Name, "path": c.Request.URL.Path})
	}
	rig.r = gin.New()
	rig.r.Use(h.recover)
	g := rig.r.Group("/v1", auth, h.idempotency)
	g.POST("/things/:id", thing)
	g.GET("/things/:id", func(c *gin.Context) { rig.runs.Add(1); c.JSON(http.StatusOK, gin.H{}) })
	return rig
}

func (rig *idemRig) clock() time.Time {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return rig.now
}

func (rig *idemRig) advance(d time.Duration) {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	rig.now = rig.now.Add(d)
}

// post sends body to path as practice prac_a unless hdr says otherwise.
func (rig *idemRig) post(path, key, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Practice", "prac_a")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	rig.r.ServeHTTP(w, req)
	return w
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) errorBody {
	t.Helper()
	var out struct {
		Error errorBody `json:"error"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
	return out.Error
}

func TestIdempotencyReplaysTheFirstAnswer(t *testing.T) {
	rig := newIdemRig(t)
	first := rig.post("/v1/things/x", "k1", `{"name":"Ada"}`)
	require.Equal(t, http.StatusCreated, first.Code, first.Body.String())
	assert.Empty(t, first.Header().Get("Idempotent-Replayed"))
	assert.JSONEq(t, `{"id":"thing_1","name":"Ada","path":"/v1/things/x"}`, first.Body.String(), "the handler read the body after it was hashed")

	again := rig.post("/v1/things/x", "k1", `{"name":"Ada"}`)
	require.Equal(t, http.StatusCreated, again.Code)
	assert.Equal(t, "true", again.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, first.Body.String(), again.Body.String())
	assert.Equal(t, first.Header().Get("Content-Type"), again.Header().Get("Content-Type"))
	assert.Equal(t, int64(1), rig.runs.Load(), "a replay runs nothing")

	// The same JSON written differently (whitespace, key order) is the same request.
	for _, body := range []string{"{\"name\": \"Ada\"}\n", "{ \"name\" :\"Ada\" }"} {
		w := rig.post("/v1/things/x", "k1", body)
		require.Equal(t, http.StatusCreated, w.Code, body)
		assert.Equal(t, "true", w.Header().Get("Idempotent-Replayed"), body)
	}
	assert.Equal(t, canonicalJSON([]byte(`{"b":[1, 2.50],"a":{"y":null,"x":"é<"}}`)),
		canonicalJSON([]byte(` {"a":{"x":"é<","y":null}, "b":[1,2.50]}`)), "key order and spacing do not matter")
	assert.NotEqual(t, canonicalJSON([]byte(`{"amount":9000}`)), canonicalJSON([]byte(`{"amount":9000.0}`)), "numbers keep their text")
	assert.Equal(t, []byte(`{"a":1} {"a":1}`), canonicalJSON([]byte(`{"a":1} {"a":1}`)), "not one JSON value: compared as bytes")

	// The same key for anything else is refused, and runs nothing.
	for _, c := range []struct{ path, body string }{
		{"/v1/things/x", `{"name":"Bob"}`},
		{"/v1/things/x", `{"name":"Ada","extra":true}`},
		{"/v1/things/y", `{"name":"Ada"}`},
	} {
		w := rig.post(c.path, "k1", c.body)
		require.Equal(t, http.StatusConflict, w.Code, c)
		e := errorOf(t, w)
		assert.Equal(t, errorBody{Type: "idempotency_error", Code: "idempotency_key_reused", Param: "Idempotency-Key", Message: e.Message}, e)
		assert.Contains(t, e.Message, "different request")
	}
	assert.Equal(t, int64(1), rig.runs.Load())

	// Without a key every request runs; GETs ignore the header.
	assert.Equal(t, `{"id":"thing_2","name":"Ada","path":"/v1/things/x"}`, rig.post("/v1/things/x", "", `{"name":"Ada"}`).Body.String())
	assert.Equal(t, `{"id":"thing_3","name":"Ada","path":"/v1/things/x"}`, rig.post("/v1/things/x", "  ", `{"name":"Ada"}`).Body.String())
	get := httptest.NewRequest(http.MethodGet, "/v1/things/x", nil)
	get.Header.Set("Idempotency-Key", "k1")
	w := httptest.NewRecorder()
	rig.r.ServeHTTP(w, get)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, int64(4), rig.runs.Load())
}

func TestIdempotencyKeyAndBodyLimits(t *testing.T) {
	rig := newIdemRig(t)
	long := rig.post("/v1/things/x", strings.Repeat("k", 256), `{"name":"Ada"}`)
	require.Equal(t, http.StatusBadRequest, long.Code)
	assert.Equal(t, "Idempotency-Key", errorOf(t, long).Param)
	assert.Equal(t, http.StatusCreated, rig.post("/v1/things/x", strings.Repeat("k", 255), `{"name":"Ada"}`).Code)

	big := rig.post("/v1/things/x", "big", `{"name":"`+strings.Repeat("a", maxBody)+`"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, big.Code)
	assert.Equal(t, "body_too_large", errorOf(t, big).Code)
	// Unknown fields are still the handler's 400, which is then kept.
	unknown := rig.post("/v1/things/x", "unknown", `{"name":"Ada","nmae":"x"}`)
	require.Equal(t, http.StatusBadRequest, unknown.Code)
	assert.Equal(t, "nmae", errorOf(t, unknown).Param)
	assert.Equal(t, "true", rig.post("/v1/things/x", "unknown", `{"name":"Ada","nmae":"x"}`).Header().Get("Idempotent-Replayed"))

	var n int
	require.NoError(t, rig.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys WHERE key = 'big'`).Scan(&n))
	assert.Zero(t, n, "an oversized request claims nothing")
}

func TestIdempotency4xxKept5xxAnd429Released(t *testing.T) {
	rig := newIdemRig(t)
	bad := rig.post("/v1/things/x", "bad", `{"name":"Ada","status":400}`)
	require.Equal(t, http.StatusBadRequest, bad.Code)
	again := rig.post("/v1/things/x", "bad", `{"name":"Ada","status":400}`)
	assert.Equal(t, http.StatusBadRequest, again.Code)
	assert.Equal(t, "true", again.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, bad.Body.String(), again.Body.String())
	assert.Equal(t, int64(1), rig.runs.Load(), "a validation error is an answer, as at Stripe")

	for _, status := range []int{500, 503, 429} {
		before := rig.runs.Load()
		body := fmt.Sprintf(`{"name":"Ada","status":%d}`, status)
		for range 2 {
			w := rig.post("/v1/things/x", fmt.Sprint("retry-", status), body)
			assert.Equal(t, status, w.Code)
			assert.Empty(t, w.Header().Get("Idempotent-Replayed"))
		}
		assert.Equal(t, before+2, rig.runs.Load(), "a %s is not kept: the retry runs", status)
	}

	crash := rig.post("/v1/things/x", "panic", `{"name":"Ada","panic":true}`)
	require.Equal(t, http.StatusInternalServerError, crash.Code)
	before := rig.runs.Load()
	require.Equal(t, http.StatusInternalServerError, rig.post("/v1/things/x", "panic", `{"name":"Ada","panic":true}`).Code)
	assert.Equal(t, before+1, rig.runs.Load(), "a panic releases the key")
}

func TestIdempotencyInFlightThenReplay(t *testing.T) {
	rig := newIdemRig(t)
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- rig.post("/v1/things/x", "slow", `{"name":"Ada","block":true}`) }()
	<-rig.started

	busy := rig.post("/v1/things/x", "slow", `{"name":"Ada","block":true}`)
	require.Equal(t, http.StatusConflict, busy.Code)
	assert.Equal(t, "idempotency_key_in_use", errorOf(t, busy).Code)
	assert.Equal(t, "Idempotency-Key", errorOf(t, busy).Param)
	assert.Equal(t, "1", busy.Header().Get("Retry-After"))
	assert.Equal(t, "idempotency_key_reused", errorOf(t, rig.post("/v1/things/x", "slow", `{"name":"Bob"}`)).Code,
		"a different request is refused as reused even while the first runs")

	close(rig.unblock)
	first := <-done
	require.Equal(t, http.StatusCreated, first.Code)
	replay := rig.post("/v1/things/x", "slow", `{"name":"Ada","block":true}`)
	assert.Equal(t, http.StatusCreated, replay.Code)
	assert.Equal(t, first.Body.String(), replay.Body.String())
	assert.Equal(t, int64(1), rig.runs.Load())
}

func TestIdempotencyConcurrentRequestsRunOnce(t *testing.T) {
	rig := newIdemRig(t)
	const n = 8
	var wg sync.WaitGroup
	out := make([]*httptest.ResponseRecorder, n)
	for i := range n {
		wg.Go(func() { out[i] = rig.post("/v1/things/x", "race", `{"name":"Ada"}`) })
	}
	wg.Wait()
	assert.Equal(t, int64(1), rig.runs.Load(), "one request ran")
	var created []string
	for _, w := range out {
		switch w.Code {
		case http.StatusCreated:
			created = append(created, w.Body.String())
		case http.StatusConflict:
			assert.Equal(t, "idempotency_key_in_use", errorOf(t, w).Code)
		default:
			t.Errorf("unexpected %d %s", w.Code, w.Body)
		}
	}
	require.NotEmpty(t, created)
	for _, b := range created {
		assert.Equal(t, created[0], b)
	}
}

func TestIdempotencyKeysBelongToTheCaller(t *testing.T) {
	rig := newIdemRig(t)
	body := `{"name":"Ada"}`
	a := rig.post("/v1/things/x", "shared", body)
	b := rig.post("/v1/things/x", "shared", body, "X-Practice", "prac_b")
	c := rig.post("/v1/things/x", "shared", body, "X-Client", "cli_1")
	for _, w := range []*httptest.ResponseRecorder{a, b, c} {
		require.Equal(t, http.StatusCreated, w.Code)
		assert.Empty(t, w.Header().Get("Idempotent-Replayed"))
	}
	assert.Equal(t, int64(3), rig.runs.Load())
	assert.Equal(t, b.Body.String(), rig.post("/v1/things/x", "shared", body, "X-Practice", "prac_b").Body.String())
	assert.Equal(t, c.Body.String(), rig.post("/v1/things/x", "shared", body, "X-Client", "cli_1").Body.String())
	assert.Equal(t, int64(3), rig.runs.Load())
}

func TestIdempotencyAbandonedClaimAndExpiry(t *testing.T) {
	rig := newIdemRig(t)
	ctx := context.Background()
	body := `{"name":"Ada"}`
	// A claim whose process died before it answered.
	_, err := rig.st.ClaimIdempotencyKey(ctx, store.IdempotencyRequest{Scope: "prac_a", Key: "crashed", Method: "POST",
		Path: "/v1/things/x", Hash: requestHash("POST", "/v1/things/x", []byte(body))}, rig.clock(), idempotencyLock, idempotencyTTL)
	require.NoError(t, err)
	rig.advance(time.Minute)
	assert.Equal(t, http.StatusConflict, rig.post("/v1/things/x", "crashed", body).Code, "still locked")
	rig.advance(idempotencyLock)
	taken := rig.post("/v1/things/x", "crashed", body)
	require.Equal(t, http.StatusCreated, taken.Code, "taken over once the lock ran out")
	assert.Equal(t, int64(1), rig.runs.Load())

	// A day later the key is free for anything, and the sweep drops old rows.
	rig.advance(idempotencyTTL + time.Minute)
	fresh := rig.post("/v1/things/x", "crashed", `{"name":"Bob"}`)
	require.Equal(t, http.StatusCreated, fresh.Code, fresh.Body.String())
	assert.Empty(t, fresh.Header().Get("Idempotent-Replayed"))
	for _, k := range []string{"old1", "old2"} {
		require.Equal(t, http.StatusCreated, rig.post("/v1/things/x", k, body).Code)
	}
	rig.advance(idempotencyTTL + time.Minute)
	require.Equal(t, http.StatusCreated, rig.post("/v1/things/x", "new", body).Code)
	var keys []string
	rows, err := rig.st.Pool.Query(ctx, `SELECT key FROM idempotency_keys ORDER BY key`)
	require.NoError(t, err)
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys = append(keys, k)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"new"}, keys)
}

func TestBindOptionalJSON(t *testing.T) {
	gin.SetMode(gin.TestMode)
	bind := func(body string) (*httptest.ResponseRecorder, bool) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/v1/invoices/inv_1/void", io.NopCloser(strings.NewReader(body)))
		c.Request.ContentLength = -1 // chunked: no length to go by
		var dst struct {
			Days *int64 `json:"expires_in_days"`
		}
		return w, bindOptionalJSON(c, &dst)
	}
	for _, body := range []string{"", " \n"} {
		_, ok := bind(body)
		assert.True(t, ok, "%q", body)
	}
	_, ok := bind(`{"expires_in_days":3}`)
	assert.True(t, ok)
	w, ok := bind(`{"reason":"x"}`)
	assert.False(t, ok)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), `"param":"reason"`)
}

// A key whose release fails (Postgres restarting as the 503 goes out) is
// released by a retry moments later, not left claimed until its lock runs
// out: the client's retry runs instead of getting 409 in_use for minutes.
func TestIdempotencyReleaseIsRetriedAfterADatabaseFault(t *testing.T) {
	rig := newIdemRig(t)
	ctx := context.Background()
	// The next release fails once, as during a restart (a sequence, as
	// the failed statement rolls back everything else it wrote).
	_, err := rig.st.Pool.Exec(ctx, `CREATE SEQUENCE fail_release;
CREATE FUNCTION fail_release_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('fail_release') = 1 THEN
    RAISE EXCEPTION 'injected: database restarting' USING ERRCODE = '57P01';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER fail_release BEFORE DELETE ON idempotency_keys FOR EACH ROW EXECUTE FUNCTION fail_release_once();`)
	require.NoError(t, err)
	body := `{"name":"Ada","status":503}`
	require.Equal(t, http.StatusServiceUnavailable, rig.post("/v1/things/x", "restart", body).Code)
	var tried bool
	require.NoError(t, rig.st.Pool.QueryRow(ctx, `SELECT is_called FROM fail_release`).Scan(&tried))
	require.True(t, tried, "the release was tried (and failed)")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		w := rig.post("/v1/things/x", "restart", body)
		assert.Equal(c, http.StatusServiceUnavailable, w.Code, "the retry ran: %s", w.Body.String())
	}, 10*time.Second, 100*time.Millisecond)
}
