// Package pgtest gives each test package a real, throwaway PostgreSQL
// database, so store and integration tests run against the same server
// as production without sharing state.
//
// Where the server comes from:
//   - DATABASE_URL set (CI with a service container, a developer's own
//     server): databases named pgtest_<package>_<random>_<n> are created on
//     that server with CREATE DATABASE (the role needs CREATEDB) and dropped
//     at teardown; nothing else on the server is touched.
//   - otherwise: a private cluster (package devpg) in a temp dir, with fsync
//     off, shared by the package's tests and removed at teardown. Starting
//     it takes well under a second (about 2 s the first time on a machine,
//     when devpg runs initdb and caches the result).
//
// Typical use, with an optional Setup that runs once (migrations, say) into a
// template database every test database is cloned from:
//
//	func TestMain(m *testing.M) {
//		pgtest.Main(m, nil, pgtest.Setup(func(ctx context.Context, url string) error {
//			return store.Migrate(ctx, url)
//		}))
//	}
//
//	func TestInvoices(t *testing.T) {
//		pool := pgtest.NewPool(t) // a fresh, migrated database of its own
//		...
//	}
//
// URL(t) is the package's shared database (also cloned from the template);
// NewDB(t) and NewPool(t) give one test its own. The server starts on first
// use, so tests that never ask for a database pay nothing. Code that wants
// the URL in a variable before any test runs passes a setter:
//
//	var dbURL string
//	func TestMain(m *testing.M) { pgtest.Main(m, func(u string) { dbURL = u }) }
//
// Start is the building block without TestMain.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/billflow/billflow/internal/devpg"
)

// timeout bounds starting the server, running Setup, and each database
// creation or drop.
const timeout = 2 * time.Minute

// Start returns the URL of a fresh, empty database and a cleanup that drops
// it (DATABASE_URL) or stops and removes the private cluster (otherwise).
func Start(ctx context.Context) (dbURL string, cleanup func(), err error) {
	s, err := openServer(ctx)
	if err != nil {
		return "", nil, err
	}
	_, dbURL, err = s.create(ctx, "template0")
	if err != nil {
		_ = s.close()
		return "", nil, err
	}
	return dbURL, func() { _ = s.close() }, nil
}

// Option configures Main.
type Option func(*config)

type config struct {
	setup func(ctx context.Context, url string) error
}

// Setup runs fn once, before the first database is handed out, on a template
// database that URL, NewDB and NewPool clone: migrate or seed there once
// instead of in every test. fn must close its connections before returning
// (a template cannot be cloned while in use).
func Setup(fn func(ctx context.Context, url string) error) Option {
	return func(c *config) { c.setup = fn }
}

// pkg is the package-wide state that Main sets up and tears down.
var (
	pkgMu sync.Mutex
	pkg   *suite
)

// Main runs the package's tests with a database available and exits with
// their code. setURL, when not nil, receives the package database's URL
// before any test runs (which starts the server eagerly); otherwise the
// server starts on the first URL, NewDB or NewPool.
func Main(m *testing.M, setURL func(url string), opts ...Option) {
	os.Exit(run(m, setURL, opts...))
}

func run(m *testing.M, setURL func(string), opts ...Option) int {
	s := &suite{}
	for _, o := range opts {
		o(&s.cfg)
	}
	pkgMu.Lock()
	pkg = s
	pkgMu.Unlock()

	if setURL != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := s.ensure(ctx)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			_ = s.teardown()
			return 1
		}
		setURL(s.url)
	}
	code := m.Run()
	if err := s.teardown(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func current(t testing.TB) *suite {
	t.Helper()
	pkgMu.Lock()
	s := pkg
	pkgMu.Unlock()
	if s == nil {
		t.Fatal("pgtest: add `func TestMain(m *testing.M) { pgtest.Main(m, nil) }` to this package, so its database is torn down after the tests")
	}
	return s
}

// URL returns the package's shared database, started on first use.
func URL(t testing.TB) string {
	t.Helper()
	s := current(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	return s.url
}

// NewDB returns the URL of a database of the test's own, cloned from the
// template (empty, or as Setup left it), and drops it when the test ends.
func NewDB(t testing.TB) string {
	t.Helper()
	u, err := current(t).newDB(t)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// NewPool is NewDB with a pgx pool on it, closed when the test ends (before
// the database is dropped).
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// suite is one test binary's server, template and shared database.
type suite struct {
	cfg config

	once     sync.Once
	err      error
	srv      *server
	template string // database NewDB clones
	url      string // the shared package database
}

func (s *suite) ensure(ctx context.Context) error {
	s.once.Do(func() {
		s.err = s.start(ctx)
		if s.err != nil {
			s.err = fmt.Errorf("pgtest: %w", s.err)
		}
	})
	return s.err
}

func (s *suite) start(ctx context.Context) error {
	srv, err := openServer(ctx)
	if err != nil {
		return err
	}
	s.srv = srv
	s.template = "template0"
	if s.cfg.setup != nil {
		name, tmplURL, err := srv.create(ctx, "template0")
		if err != nil {
			return err
		}
		if err := s.cfg.setup(ctx, tmplURL); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		// Nobody may connect from now on: a connection would block cloning.
		if _, err := srv.admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" ALLOW_CONNECTIONS false"); err != nil {
			return fmt.Errorf("seal template: %w", err)
		}
		s.template = name
	}
	_, s.url, err = srv.create(ctx, s.template)
	return err
}

func (s *suite) newDB(t testing.TB) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.ensure(ctx); err != nil {
		return "", err
	}
	name, u, err := s.srv.create(ctx, s.template)
	if err != nil {
		return "", err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := s.srv.drop(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return u, nil
}

func (s *suite) teardown() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.close()
}

// server is where databases are created: DATABASE_URL's server or a private
// devpg cluster.
type server struct {
	adminURL string
	admin    *pgxpool.Pool
	cluster  *devpg.Cluster // nil with DATABASE_URL
	tmpDir   string
	prefix   string
	seq      atomic.Int64

	mu      sync.Mutex
	created map[string]bool // still existing databases this server made
}

func openServer(ctx context.Context) (*server, error) {
	s := &server{prefix: dbPrefix(), created: map[string]bool{}}
	if u := os.Getenv("DATABASE_URL"); u != "" {
		s.adminURL = u
	} else {
		dir, err := os.MkdirTemp("", "pgtest-")
		if err != nil {
			return nil, err
		}
		s.tmpDir = dir
		// MkdirTemp makes 0700; the cluster's account must get through.
		if err := os.Chmod(dir, 0o755); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		// Database "postgres": the admin connection needs no database of
		// its own, and creating one would cost a CREATE DATABASE per package.
		s.cluster, err = devpg.Start(ctx, devpg.Options{DataDir: filepath.Join(dir, "data"), Fast: true, Database: "postgres"})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		s.adminURL = s.cluster.URL()
	}
	pool, err := pgxpool.New(ctx, s.adminURL)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		_ = s.close()
		return nil, fmt.Errorf("connect to %s: %w", redact(s.adminURL), err)
	}
	s.admin = pool
	return s, nil
}

// create clones template into a new uniquely named database.
func (s *server) create(ctx context.Context, template string) (name, dbURL string, err error) {
	name = fmt.Sprintf("%s_%d", s.prefix, s.seq.Add(1))
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	for attempt := 0; ; attempt++ {
		_, err = s.admin.Exec(ctx, stmt)
		// "source database is being accessed by other users": a session
		// (Setup's, just closed) may still be ending. The server itself
		// waits 5 s; give it a little longer.
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || attempt == 2 {
			break
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("create database %s from %s: %w", name, template, err)
	}
	s.mu.Lock()
	s.created[name] = true
	s.mu.Unlock()
	dbURL, err = withDatabase(s.adminURL, name)
	return name, dbURL, err
}

// drop removes a database this server created, ending its sessions first.
func (s *server) drop(ctx context.Context, name string) error {
	id := pgx.Identifier{name}.Sanitize()
	if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		// Servers before 13 have no FORCE.
		if _, err2 := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+id); err2 != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
	}
	s.mu.Lock()
	delete(s.created, name)
	s.mu.Unlock()
	return nil
}

// close drops what it created on a DATABASE_URL server, or stops and removes
// the private cluster.
func (s *server) close() error {
	var errs []error
	if s.cluster == nil && s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		s.mu.Lock()
		names := make([]string, 0, len(s.created))
		for n := range s.created {
			names = append(names, n)
		}
		s.mu.Unlock()
		for _, n := range names {
			if err := s.drop(ctx, n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cluster != nil {
		errs = append(errs, s.cluster.Stop())
	}
	if s.tmpDir != "" {
		errs = append(errs, os.RemoveAll(s.tmpDir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pgtest: teardown: %w", err)
	}
	return nil
}

// dbPrefix names this test binary's databases: pgtest_<package>_<random>,
// so runs sharing one server never collide and leftovers are recognisable.
func dbPrefix() string {
	pkgName := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	var b strings.Builder
	for _, r := range strings.ToLower(pkgName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		}
		if b.Len() == 24 {
			break
		}
	}
	random := make([]byte, 4)
	_, _ = rand.Read(random)
	return "pgtest_" + b.String() + "_" + hex.EncodeToString(random)
}

// withDatabase returns base pointed at database name; base is a URL or a
// keyword/value connection string.
func withDatabase(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse DATABASE_URL: %w", err)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	// A later keyword wins in a keyword/value string.
	return base + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name) + "'", nil
}

// redact hides a URL's password in error messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	if strings.Contains(s, "password") {
		return "DATABASE_URL"
	}
	return s
}
