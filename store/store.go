// Package store is billflow's system of record on Postgres (pgx v5 pool):
// practices, keys, clients, invoices, payments, refunds, documents, emails,
// links and the append-only ledger. It knows nothing of Temporal or HTTP.
package store

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sentinel errors every caller maps to its own world (HTTP status, workflow error).
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("duplicate")
	ErrConflict  = errors.New("conflict")
	// ErrInvalidText is text Postgres refuses to store (a NUL byte, say).
	ErrInvalidText = errors.New("text that cannot be stored")
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Store wraps the pool; every method is one short transaction or query.
type Store struct {
	Pool *pgxpool.Pool
}

// Open connects and pings.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	// Open the whole pool up front (in the background), unless the URL
	// says otherwise: a connection made during a burst costs the request
	// that waits for it a backend start and authentication.
	if !strings.Contains(url, "pool_min_conns") {
		cfg.MinConns = cfg.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	if err := pingUntilUp(ctx, pool, openWait); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping postgres: %w", err)
	}
	return &Store{Pool: pool}, nil
}

// openWait is how long Open waits for a Postgres that is starting, shutting
// down or restarting: a worker started during a database restart waits for
// it instead of exiting, as the Temporal dial does for its server.
const openWait = 30 * time.Second

// pingUntilUp pings until Postgres answers, retrying only while the error
// says it is (re)starting or not yet listening; anything else (a wrong
// password, a missing database) fails at once.
func pingUntilUp(ctx context.Context, pool *pgxpool.Pool, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := pool.Ping(ctx)
		if err == nil || !restarting(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// restarting reports whether err is Postgres not being up yet: connection
// refused, or SQLSTATE class 57 (admin shutdown, crash shutdown, cannot
// connect now).
func restarting(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57")
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// Close releases the pool.
func (s *Store) Close() { s.Pool.Close() }

// Ping is readiness.
func (s *Store) Ping(ctx context.Context) error { return s.Pool.Ping(ctx) }

// MigrateURL opens the database at url, applies the migrations and closes
// it (test templates and one-off tools).
func MigrateURL(ctx context.Context, url string) error {
	st, err := Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.Migrate(ctx)
	return err
}

// Migrate applies every versioned SQL file not yet applied, in order, each in
// its own transaction, under an advisory lock so concurrent starters are safe.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(774411)`); err != nil {
		return nil, fmt.Errorf("migrate lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(774411)`) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrationsFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version=$1)`, version).Scan(&exists); err != nil {
			return applied, fmt.Errorf("migrate %s: %w", version, err)
		}
		if exists {
			continue
		}
		sql, err := migrationsFS.ReadFile(name)
		if err != nil {
			return applied, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version) VALUES ($1)`, version)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate %s: %w", version, err)
		}
		applied = append(applied, version)
	}
	return applied, nil
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns prefix_ + 16 random base32 characters (80 bits).
func NewID(prefix string) string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + "_" + idEncoding.EncodeToString(b)
}

// mapErr turns pgx errors into the package's sentinels, keeping the cause.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%s: %w (%s)", op, ErrDuplicate, pgErr.ConstraintName)
		case "23503", "23514":
			return fmt.Errorf("%s: %w: %s", op, ErrConflict, pgErr.ConstraintName)
		}
		if strings.HasPrefix(pgErr.Code, "22") {
			return fmt.Errorf("%s: %w: %s", op, ErrInvalidText, pgErr.Message)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}
