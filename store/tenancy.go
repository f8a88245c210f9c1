package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DataKey is one of a practice's payload keys as stored: wrapped by the
// master key MasterKeyID, never in the clear.
type DataKey struct {
	KeyID       string
	PracticeID  string
	MasterKeyID string
	Wrapped     []byte
	Current     bool
	CreatedAt   time.Time
}

// PracticeNamespace is a practice that has its own Temporal namespace.
type PracticeNamespace struct {
	PracticeID string
	Namespace  string
	Timezone   string
}

// scopeClause restricts a query on a table with a practice_id column (named
// col) to a Schedule's scope, the query parameter $n: one practice's rows, or
// ("") the rows of practices with no namespace of their own, which the shared
// namespace's Schedules serve.
func scopeClause(col string, n int) string {
	return fmt.Sprintf(`(CASE WHEN $%[2]d = '' THEN NOT EXISTS (SELECT 1 FROM practices sp WHERE sp.id = %[1]s AND sp.temporal_namespace IS NOT NULL)
  ELSE %[1]s = $%[2]d END)`, col, n)
}

// SetPracticeNamespace records a practice's Temporal namespace. It is set
// once: setting the same name again is a no-op, another name is ErrConflict.
func (s *Store) SetPracticeNamespace(ctx context.Context, practiceID, namespace string) error {
	const q = `UPDATE practices SET temporal_namespace = $2 WHERE id = $1
 AND (temporal_namespace IS NULL OR temporal_namespace = $2) RETURNING id`
	var id string
	err := s.Pool.QueryRow(ctx, q, practiceID, namespace).Scan(&id)
	if err == pgx.ErrNoRows {
		if _, gerr := s.GetPractice(ctx, practiceID); gerr != nil {
			return gerr
		}
		return fmt.Errorf("set namespace of practice %s: it has another one: %w", practiceID, ErrConflict)
	}
	return mapErr("set namespace of practice "+practiceID, err)
}

// PracticeNamespaces lists every practice with a namespace of its own.
func (s *Store) PracticeNamespaces(ctx context.Context) ([]PracticeNamespace, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, temporal_namespace, timezone FROM practices
 WHERE temporal_namespace IS NOT NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, mapErr("practice namespaces", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PracticeNamespace, error) {
		var p PracticeNamespace
		err := r.Scan(&p.PracticeID, &p.Namespace, &p.Timezone)
		return p, err
	})
	return out, mapErr("practice namespaces", err)
}

// AddDataKey stores a new current data key for its practice; the practice's
// previous current key stays, for decrypting, but no longer encrypts.
func (s *Store) AddDataKey(ctx context.Context, k DataKey) error {
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		return addDataKey(ctx, tx, k)
	})
	return mapErr("add data key of practice "+k.PracticeID, err)
}

func addDataKey(ctx context.Context, tx pgx.Tx, k DataKey) error {
	// Lock the practice row so two rotations take turns.
	var id string
	if err := tx.QueryRow(ctx, `SELECT id FROM practices WHERE id=$1 FOR UPDATE`, k.PracticeID).Scan(&id); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE practice_data_keys SET current = false WHERE practice_id=$1 AND current`, k.PracticeID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO practice_data_keys (key_id, practice_id, master_key_id, wrapped_key, current)
 VALUES ($1,$2,$3,$4,true)`, k.KeyID, k.PracticeID, k.MasterKeyID, k.Wrapped)
	return err
}

const dataKeyCols = `key_id, practice_id, master_key_id, wrapped_key, current, created_at`

func collectDataKeys(rows pgx.Rows) ([]DataKey, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DataKey, error) {
		var k DataKey
		err := r.Scan(&k.KeyID, &k.PracticeID, &k.MasterKeyID, &k.Wrapped, &k.Current, &k.CreatedAt)
		return k, err
	})
}

// DataKeys lists every practice's data keys (wrapped), oldest first.
func (s *Store) DataKeys(ctx context.Context) ([]DataKey, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+dataKeyCols+` FROM practice_data_keys ORDER BY created_at, key_id`)
	if err != nil {
		return nil, mapErr("data keys", err)
	}
	out, err := collectDataKeys(rows)
	return out, mapErr("data keys", err)
}

// RewrapDataKey replaces a key's wrapping, if it is still wrapped by
// fromMaster (a concurrent rewrap is not undone).
func (s *Store) RewrapDataKey(ctx context.Context, keyID, fromMaster, toMaster string, wrapped []byte) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE practice_data_keys SET master_key_id=$3, wrapped_key=$4
 WHERE key_id=$1 AND master_key_id=$2`, keyID, fromMaster, toMaster, wrapped)
	if err != nil {
		return false, mapErr("rewrap data key "+keyID, err)
	}
	return tag.RowsAffected() == 1, nil
}
