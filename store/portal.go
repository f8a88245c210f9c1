package store

import (
	"context"
	"crypto/rand"

	"strings"
	"time"
)

// portalPrefix marks client portal tokens.
const portalPrefix = "bf_pt_"

// CreatePortalToken issues a token scoped to one client, stored hashed.
func (s *Store) CreatePortalToken(ctx context.Context, practiceID, clientID string, ttl time.Duration) (string, time.Time, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, err
	}
	tok := portalPrefix + idEncoding.EncodeToString(b)
	exp := time.Now().Add(ttl).UTC().Truncate(time.Second)
	_, err := s.Pool.Exec(ctx, `INSERT INTO portal_tokens (id, practice_id, client_id, token_hash, expires_at) VALUES ($1,$2,$3,$4,$5)`,
		NewID("pt"), practiceID, clientID, hashToken(tok), exp)
	if err != nil {
		return "", time.Time{}, mapErr("create portal token", err)
	}
	return tok, exp, nil
}

// IsPortalToken tells portal tokens from API keys by their prefix.
func IsPortalToken(tok string) bool { return strings.HasPrefix(tok, portalPrefix) }

// ClientForPortalToken authenticates a portal token: unknown, revoked and
// expired tokens are ErrNotFound.
func (s *Store) ClientForPortalToken(ctx context.Context, tok string, now time.Time) (practiceID, clientID string, err error) {
	err = s.Pool.QueryRow(ctx, `SELECT practice_id, client_id FROM portal_tokens WHERE token_hash=$1 AND revoked_at IS NULL AND expires_at > $2`,
		hashToken(tok), now).Scan(&practiceID, &clientID)
	return practiceID, clientID, mapErr("portal token", err)
}

// RevokePortalTokens ends every portal session of a client.
func (s *Store) RevokePortalTokens(ctx context.Context, clientID string) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE portal_tokens SET revoked_at=now() WHERE client_id=$1 AND revoked_at IS NULL`, clientID)
	if err != nil {
		return 0, mapErr("revoke portal tokens", err)
	}
	return tag.RowsAffected(), nil
}
