package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// IdempotencyRequest is one API request sent with an Idempotency-Key.
type IdempotencyRequest struct {
	Scope  string // whose key: a practice ID, or practice ID/client ID for a portal token
	Key    string
	Method string
	Path   string // the concrete path, e.g. /v1/invoices/inv_x/payments
	Hash   []byte // sha256 of method, path and body: what "the same request" means
}

// IdempotencyState is what claiming a key found.
type IdempotencyState string

const (
	// IdempotencyClaimed: the caller holds the key; it runs the request, then
	// completes (stores the answer) or releases (forgets the key).
	IdempotencyClaimed IdempotencyState = "claimed"
	// IdempotencyReplay: the same request was answered before; here is that answer.
	IdempotencyReplay IdempotencyState = "replay"
	// IdempotencyInFlight: the same request is still running elsewhere.
	IdempotencyInFlight IdempotencyState = "in_flight"
	// IdempotencyMismatch: the key was used for a different request.
	IdempotencyMismatch IdempotencyState = "mismatch"
)

// IdempotencyClaim is the outcome of ClaimIdempotencyKey.
type IdempotencyClaim struct {
	State IdempotencyState
	// Token proves the claim to CompleteIdempotencyKey and ReleaseIdempotencyKey,
	// so an attempt whose claim was taken over cannot overwrite the new one.
	Token string
	// The stored answer, for IdempotencyReplay.
	Status      int
	ContentType string
	Response    []byte
}

// ClaimIdempotencyKey claims (scope, key) for a request at now, holding it for
// lock. The row is taken in one statement when it is new, older than ttl (an
// expired key is free again), or an abandoned claim of the same request whose
// lock has run out (its handler crashed). Otherwise the row says what to do:
// replay the stored answer, wait for the request in flight, or refuse a
// different request.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, r IdempotencyRequest, now time.Time, lock, ttl time.Duration) (*IdempotencyClaim, error) {
	const claim = `INSERT INTO idempotency_keys AS k (scope, key, method, path, request_hash, claim_token, created_at, locked_until)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (scope, key) DO UPDATE SET method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
 claim_token = EXCLUDED.claim_token, status = NULL, response = NULL, content_type = '',
 created_at = EXCLUDED.created_at, locked_until = EXCLUDED.locked_until
WHERE k.created_at < $9
 OR (k.status IS NULL AND k.locked_until <= $7 AND k.request_hash = EXCLUDED.request_hash)
RETURNING claim_token`
	const existing = `SELECT request_hash, status, COALESCE(response, ''::bytea), content_type, locked_until, created_at
FROM idempotency_keys WHERE scope = $1 AND key = $2`
	op := fmt.Sprintf("claim idempotency key %q", r.Key)
	// A row may vanish between the two statements (released after a 5xx, or
	// swept); then the claim is simply tried again.
	for range 3 {
		token := NewID("claim")
		var got string
		err := s.Pool.QueryRow(ctx, claim, r.Scope, r.Key, r.Method, r.Path, r.Hash, token, now, now.Add(lock), now.Add(-ttl)).Scan(&got)
		if err == nil {
			return &IdempotencyClaim{State: IdempotencyClaimed, Token: got}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, mapErr(op, err)
		}
		var (
			hash        []byte
			status      *int32
			out         IdempotencyClaim
			lockedUntil time.Time
			createdAt   time.Time
		)
		err = s.Pool.QueryRow(ctx, existing, r.Scope, r.Key).Scan(&hash, &status, &out.Response, &out.ContentType, &lockedUntil, &createdAt)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, mapErr(op, err)
		}
		switch {
		case createdAt.Before(now.Add(-ttl)):
			continue // expired in the meantime: claim it
		case !bytes.Equal(hash, r.Hash):
			return &IdempotencyClaim{State: IdempotencyMismatch}, nil
		case status != nil:
			out.State, out.Status = IdempotencyReplay, int(*status)
			return &out, nil
		case lockedUntil.After(now):
			return &IdempotencyClaim{State: IdempotencyInFlight}, nil
		}
		// The lock ran out between the two statements: take it over.
	}
	return &IdempotencyClaim{State: IdempotencyInFlight}, nil
}

// CompleteIdempotencyKey stores the answer to a claimed request, so retries
// replay it. ErrConflict: the claim is no longer this attempt's (it ran past
// its lock and another attempt took the key over).
func (s *Store) CompleteIdempotencyKey(ctx context.Context, scope, key, token string, status int, contentType string, response []byte) error {
	const q = `UPDATE idempotency_keys SET status = $4, content_type = $5, response = $6
WHERE scope = $1 AND key = $2 AND claim_token = $3 AND status IS NULL`
	tag, err := s.Pool.Exec(ctx, q, scope, key, token, status, contentType, response)
	if err != nil {
		return mapErr(fmt.Sprintf("complete idempotency key %q", key), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("complete idempotency key %q: %w: the claim was taken over", key, ErrConflict)
	}
	return nil
}

// ReleaseIdempotencyKey forgets a claimed key whose answer must not be
// replayed (a 5xx, a 429, a panic), so a retry runs the request again.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, scope, key, token string) error {
	const q = `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND claim_token = $3 AND status IS NULL`
	_, err := s.Pool.Exec(ctx, q, scope, key, token)
	return mapErr(fmt.Sprintf("release idempotency key %q", key), err)
}

// DeleteExpiredIdempotencyKeys deletes at most limit keys created before
// before, oldest first, through the created_at index, and says how many went.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, before time.Time, limit int) (int64, error) {
	const q = `DELETE FROM idempotency_keys WHERE (scope, key) IN (
 SELECT scope, key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2)`
	tag, err := s.Pool.Exec(ctx, q, before, limit)
	if err != nil {
		return 0, mapErr("delete expired idempotency keys", err)
	}
	return tag.RowsAffected(), nil
}
