package store_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/store"
)

func idemReq(scope, key, body string) store.IdempotencyRequest {
	sum := sha256.Sum256([]byte("POST /v1/clients\n" + body))
	return store.IdempotencyRequest{Scope: scope, Key: key, Method: "POST", Path: "/v1/clients", Hash: sum[:]}
}

func TestIdempotencyKeyLifecycle(t *testing.T) {
	st, ctx := storetest.Open(t)
	const lock, ttl = 2 * time.Minute, 24 * time.Hour
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	req := idemReq("prac_a", "k1", `{"name":"Ada"}`)

	first, err := st.ClaimIdempotencyKey(ctx, req, t0, lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyClaimed, first.State)
	require.NotEmpty(t, first.Token)

	// While the first runs: the same request waits, a different one is refused.
	c, err := st.ClaimIdempotencyKey(ctx, req, t0.Add(time.Second), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyInFlight, c.State)
	c, err = st.ClaimIdempotencyKey(ctx, idemReq("prac_a", "k1", `{"name":"Bob"}`), t0.Add(time.Second), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyMismatch, c.State)
	// Another scope with the same key is another key.
	c, err = st.ClaimIdempotencyKey(ctx, idemReq("prac_b", "k1", `{"name":"Ada"}`), t0, lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyClaimed, c.State)

	require.ErrorIs(t, st.CompleteIdempotencyKey(ctx, "prac_a", "k1", "claim_wrong", 201, "application/json", []byte(`{}`)), store.ErrConflict)
	require.NoError(t, st.CompleteIdempotencyKey(ctx, "prac_a", "k1", first.Token, 201, "application/json; charset=utf-8", []byte(`{"id":"cli_1"}`)))
	require.ErrorIs(t, st.CompleteIdempotencyKey(ctx, "prac_a", "k1", first.Token, 201, "", nil), store.ErrConflict, "completed once")

	c, err = st.ClaimIdempotencyKey(ctx, req, t0.Add(time.Hour), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyReplay, c.State)
	require.Equal(t, 201, c.Status)
	require.Equal(t, "application/json; charset=utf-8", c.ContentType)
	require.Equal(t, `{"id":"cli_1"}`, string(c.Response))
	c, err = st.ClaimIdempotencyKey(ctx, idemReq("prac_a", "k1", `{"name":"Bob"}`), t0.Add(time.Hour), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyMismatch, c.State)

	// After 24 hours the key is free again, for any request.
	c, err = st.ClaimIdempotencyKey(ctx, idemReq("prac_a", "k1", `{"name":"Bob"}`), t0.Add(ttl+time.Minute), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyClaimed, c.State)
}

func TestIdempotencyKeyAbandonedAndReleased(t *testing.T) {
	st, ctx := storetest.Open(t)
	const lock, ttl = 2 * time.Minute, 24 * time.Hour
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	req := idemReq("prac_a/cli_1", "crash", `{}`)

	crashed, err := st.ClaimIdempotencyKey(ctx, req, t0, lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyClaimed, crashed.State)
	c, err := st.ClaimIdempotencyKey(ctx, req, t0.Add(lock-time.Second), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyInFlight, c.State, "locked until now+2 min")
	// A different request never takes over someone else's key.
	c, err = st.ClaimIdempotencyKey(ctx, idemReq("prac_a/cli_1", "crash", `{"x":1}`), t0.Add(lock+time.Second), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyMismatch, c.State)

	taken, err := st.ClaimIdempotencyKey(ctx, req, t0.Add(lock+time.Second), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyClaimed, taken.State, "an abandoned claim is taken over")
	require.NotEqual(t, crashed.Token, taken.Token)
	// The late first attempt can neither store its answer nor release the key.
	require.ErrorIs(t, st.CompleteIdempotencyKey(ctx, req.Scope, req.Key, crashed.Token, 200, "", nil), store.ErrConflict)
	require.NoError(t, st.ReleaseIdempotencyKey(ctx, req.Scope, req.Key, crashed.Token))
	c, err = st.ClaimIdempotencyKey(ctx, req, t0.Add(lock+2*time.Second), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyInFlight, c.State)

	// Released (a 5xx): the next attempt runs afresh.
	require.NoError(t, st.ReleaseIdempotencyKey(ctx, req.Scope, req.Key, taken.Token))
	c, err = st.ClaimIdempotencyKey(ctx, req, t0.Add(lock+3*time.Second), lock, ttl)
	require.NoError(t, err)
	require.Equal(t, store.IdempotencyClaimed, c.State)
}

func TestDeleteExpiredIdempotencyKeys(t *testing.T) {
	st, ctx := storetest.Open(t)
	const lock, ttl = 2 * time.Minute, 24 * time.Hour
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for i, key := range []string{"old1", "old2", "old3", "new"} {
		at := t0
		if key == "new" {
			at = t0.Add(ttl)
		}
		c, err := st.ClaimIdempotencyKey(ctx, idemReq("prac_a", key, ""), at.Add(time.Duration(i)*time.Second), lock, ttl)
		require.NoError(t, err)
		require.Equal(t, store.IdempotencyClaimed, c.State)
	}
	n, err := st.DeleteExpiredIdempotencyKeys(ctx, t0.Add(time.Hour), 2)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "bounded by the limit")
	n, err = st.DeleteExpiredIdempotencyKeys(ctx, t0.Add(time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	var left []string
	rows, err := st.Pool.Query(ctx, `SELECT key FROM idempotency_keys`)
	require.NoError(t, err)
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		left = append(left, k)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"new"}, left)
}
