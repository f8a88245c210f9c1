// Package devpg runs a private PostgreSQL cluster from the system's server
// binaries (Debian's /usr/lib/postgresql/15/bin), for the dev stack and for
// tests that need a real database without Docker or a shared server.
//
// The cluster lives entirely in one data directory: its unix socket is there
// too (or in a short per-cluster directory under the temp dir when the data
// directory's path is too long for a socket), and it listens on TCP only on
// 127.0.0.1, on a port of its own, so it never collides with a cluster that
// Debian's package may have started on 5432.
//
// Postgres refuses to run as root. When the current process is root, initdb
// and the postmaster run as the `postgres` system account that Debian's
// package creates (through exec's credential switch, no sudo); the data
// directory is owned by that account and the directories above it are made
// traversable for it. When the process is not root, everything runs as the
// current user.
//
// Authentication: the unix socket uses trust (the socket sits in a 0700
// directory, so only root and the cluster's owner can reach it); TCP accepts
// only 127.0.0.1 with scram-sha-256, so the password in URL is checked.
//
// The postmaster is a child of the calling process, in its own process group
// (a Ctrl-C aimed at the dev stack does not kill the database under it before
// the stack has shut down), and it receives SIGINT (fast shutdown) if the
// calling process dies, so a crashed test binary or dev stack leaves no
// postgres behind. Usage:
//
//	c, err := devpg.Start(ctx, devpg.Options{DataDir: ".data/postgres", Logger: log})
//	if err != nil { ... }
//	defer c.Stop()
//	pool, err := pgxpool.New(ctx, c.URL())
package devpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults for the role and database that Start creates.
const (
	DefaultUser     = "billflow"
	DefaultPassword = "billflow"
	DefaultDatabase = "billflow"
)

// superuser is the bootstrap superuser initdb creates; Start uses it over the
// unix socket to create the application role and databases.
const superuser = "postgres"

// portFile remembers the port of the last run so that a dev stack restarted
// with Port 0 keeps the same URL when that port is still free.
const portFile = "devpg.port"

// logFileName is the postmaster's log, appended to across runs.
const logFileName = "devpg.log"

// Options configures Start. The zero value is usable except for DataDir.
type Options struct {
	// DataDir holds the cluster. A relative path is made absolute. It is
	// initialised with initdb when missing or empty; an existing cluster is
	// reused.
	DataDir string
	// Port is the TCP port on 127.0.0.1. 0 picks a free one (preferring the
	// port of the previous run in the same DataDir).
	Port int
	// User, Password and Database name the login role and database that
	// Start creates if missing (defaults "billflow" for all three). The role
	// may create databases, which pgtest relies on.
	User, Password, Database string
	// BinDir holds initdb and postgres. Default: $PG_BIN_DIR, else
	// /usr/lib/postgresql/15/bin, else the newest /usr/lib/postgresql/*/bin,
	// else the directory of `postgres` on $PATH.
	BinDir string
	// Logger receives start/stop events; nil discards them. The server's own
	// output goes to devpg.log in DataDir.
	Logger *slog.Logger
	// Fast trades durability for speed (fsync, synchronous_commit and
	// full_page_writes off, initdb without sync): for tests. Stop and
	// Restart lose nothing, but a killed server may lose its last commits.
	Fast bool
}

// Cluster is a running (or stopped) cluster started by Start. Its methods are
// safe for concurrent use.
type Cluster struct {
	opts     Options
	dataDir  string
	sockDir  string
	binDir   string
	logPath  string
	port     int
	autoPort bool
	as       runAs
	log      *slog.Logger

	mu   sync.Mutex
	proc *postmaster // nil when stopped
}

// Start initialises DataDir if needed, starts the postmaster and waits until
// it accepts connections, then makes sure the role and database in opts exist.
// A stale postmaster.pid (its process gone, or its PID reused by an unrelated
// process) is removed; a postmaster still running from an earlier run on the
// same DataDir is shut down first and a fresh one started with these options.
// ctx bounds the start only: the cluster runs until Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	began := time.Now()
	if opts.DataDir == "" {
		return nil, errors.New("devpg: Options.DataDir is required")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("devpg: invalid port %d", opts.Port)
	}
	opts.User = orDefault(opts.User, DefaultUser)
	opts.Password = orDefault(opts.Password, DefaultPassword)
	opts.Database = orDefault(opts.Database, DefaultDatabase)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("devpg: data dir: %w", err)
	}
	binDir, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	as, err := currentRunAs()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:    opts,
		dataDir: dataDir,
		binDir:  binDir,
		logPath: filepath.Join(dataDir, logFileName),
		as:      as,
		log:     log.With("component", "devpg", "data_dir", dataDir),
	}
	if c.sockDir, err = socketDir(dataDir); err != nil {
		return nil, err
	}

	if err := c.prepareParent(); err != nil {
		return nil, err
	}
	if err := c.clearLeftover(); err != nil {
		return nil, err
	}
	if err := c.ensureInitialized(ctx); err != nil {
		return nil, err
	}
	if err := c.prepareDataDir(); err != nil {
		return nil, err
	}

	c.port, c.autoPort = opts.Port, opts.Port == 0
	if c.autoPort {
		if c.port, err = c.preferredPort(); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	err = c.launchLocked(ctx)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := c.ensureRoleAndDatabase(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	_ = c.writeOwned(filepath.Join(dataDir, portFile), []byte(strconv.Itoa(c.port)+"\n"), 0o600)
	c.log.Info("postgres ready", "port", c.port, "took", time.Since(began).Round(time.Millisecond))
	return c, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// URL is the application URL: the role and database from Options over TCP
// on 127.0.0.1.
func (c *Cluster) URL() string { return c.databaseURL(c.opts.Database) }

// Port is the TCP port the cluster listens on (stable across Restart).
func (c *Cluster) Port() int { return c.port }

// DataDir is the absolute data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// LogPath is the file the postmaster writes its log to; error messages from
// Start quote its tail, but a failing test may want the whole file.
func (c *Cluster) LogPath() string { return c.logPath }

func (c *Cluster) databaseURL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.opts.User, c.opts.Password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates database name owned by the application role, unless
// it already exists, and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", errors.New("devpg: empty database name")
	}
	conn, err := c.superConn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := createDatabase(ctx, conn, name, c.opts.User); err != nil {
		return "", err
	}
	return c.databaseURL(name), nil
}

// Stop shuts the cluster down (fast: open transactions are rolled back) and
// waits for every postgres process to exit. Calling it again, or after the
// postmaster died on its own, is a no-op.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ran := c.proc != nil && !c.proc.exited()
	if err := c.stopLocked(); err != nil {
		return err
	}
	// A socket directory of our own under the temp dir goes with the server
	// (unless our server had already been replaced by another Start, which
	// uses the same directory).
	if ran && c.sockDir != c.dataDir {
		_ = os.RemoveAll(c.sockDir)
	}
	return nil
}

func (c *Cluster) stopLocked() error {
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	err := p.stop()
	if err != nil {
		return fmt.Errorf("devpg: stop: %w", err)
	}
	c.log.Info("postgres stopped", "port", c.port)
	return nil
}

// Restart stops the cluster (fast shutdown) and starts it again on the same
// port, for fault tests of "Postgres restarting": open connections break and
// clients must reconnect.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopLocked(); err != nil {
		return err
	}
	auto := c.autoPort
	c.autoPort = false // keep the port: URLs handed out must stay valid
	defer func() { c.autoPort = auto }()
	return c.launchLocked(ctx)
}

// superConn connects as the bootstrap superuser over the unix socket (trust).
func (c *Cluster) superConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.superConnString("postgres"))
	if err != nil {
		return nil, fmt.Errorf("devpg: connect as superuser: %w", err)
	}
	return conn, nil
}

func (c *Cluster) superConnString(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=5",
		kv(c.sockDir), c.port, kv(superuser), kv(db))
}

// kv quotes a value for a libpq keyword/value connection string.
func kv(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// ensureRoleAndDatabase creates (or updates) the login role and creates its
// database when missing.
func (c *Cluster) ensureRoleAndDatabase(ctx context.Context) error {
	conn, err := c.superConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	const roleExists = `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`
	var exists bool
	if err := conn.QueryRow(ctx, roleExists, c.opts.User).Scan(&exists); err != nil {
		return fmt.Errorf("devpg: look up role %s: %w", c.opts.User, err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER" // keep the password in step with Options
	}
	// format() quotes the identifier and the password literal server-side.
	const roleSQL = `SELECT format('%s ROLE %I LOGIN CREATEDB PASSWORD %L', $1::text, $2::text, $3::text)`
	var stmt string
	if err := conn.QueryRow(ctx, roleSQL, verb, c.opts.User, c.opts.Password).Scan(&stmt); err != nil {
		return fmt.Errorf("devpg: role statement: %w", err)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("devpg: %s role %s: %w", strings.ToLower(verb), c.opts.User, err)
	}
	return createDatabase(ctx, conn, c.opts.Database, c.opts.User)
}

// createDatabase creates name owned by owner unless it exists.
func createDatabase(ctx context.Context, conn *pgx.Conn, name, owner string) error {
	const dbExists = `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`
	var exists bool
	if err := conn.QueryRow(ctx, dbExists, name).Scan(&exists); err != nil {
		return fmt.Errorf("devpg: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " OWNER " + pgx.Identifier{owner}.Sanitize()
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("devpg: create database %s: %w", name, err)
	}
	return nil
}

// preferredPort returns the previous run's port when it is still free, else
// a free port.
func (c *Cluster) preferredPort() (int, error) {
	if b, err := os.ReadFile(filepath.Join(c.dataDir, portFile)); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 && portFree(p) {
			return p, nil
		}
	}
	return freePort()
}

// portFree reports whether 127.0.0.1:p can be bound right now.
func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// freePort asks the kernel for an unused port. Another process may take it
// before postgres binds it; launchLocked retries with a new one then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devpg: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
