package devpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/store"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startTest starts a Fast cluster in dir and stops it at the end of the test.
func startTest(t *testing.T, ctx context.Context, dir string) *Cluster {
	t.Helper()
	return startOpts(t, ctx, Options{DataDir: dir, Fast: true})
}

func startOpts(t *testing.T, ctx context.Context, opts Options) *Cluster {
	t.Helper()
	dir := opts.DataDir
	began := time.Now()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start(%s) took %v (port %d)", dir, time.Since(began).Round(time.Millisecond), c.Port())
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

func exec1(t *testing.T, ctx context.Context, url, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryString(t *testing.T, ctx context.Context, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// waitGone waits until no postgres process works in c's data directory.
func waitGone(t *testing.T, c *Cluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.serverProcs()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("postgres processes still running on %s: %v", c.dataDir, c.serverProcs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartStopStartReusesData(t *testing.T) {
	ctx := testContext(t)
	// t.TempDir's parents are 0700 and root-owned: Start must make them
	// traversable for the postgres account.
	dir := filepath.Join(t.TempDir(), "nested", "pg")
	c := startTest(t, ctx, dir)

	wantURL := fmt.Sprintf("postgres://billflow:billflow@127.0.0.1:%d/billflow?sslmode=disable", c.Port())
	if c.URL() != wantURL {
		t.Fatalf("URL = %s, want %s", c.URL(), wantURL)
	}
	if got := queryString(t, ctx, c.URL(), "SELECT current_user || '/' || current_database()"); got != "billflow/billflow" {
		t.Fatalf("connected as %s, want billflow/billflow", got)
	}
	exec1(t, ctx, c.URL(), "CREATE TABLE kept (v text)")
	exec1(t, ctx, c.URL(), "INSERT INTO kept VALUES ($1)", "survives restarts")

	// Password auth over TCP is real: a wrong password is refused.
	bad := strings.Replace(c.URL(), "billflow:billflow@", "billflow:wrong@", 1)
	if conn, err := pgx.Connect(ctx, bad); err == nil {
		conn.Close(ctx)
		t.Fatal("connecting with a wrong password succeeded")
	}

	pid := c.proc.cmd.Process.Pid
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if processAlive(pid) {
		t.Fatalf("postmaster %d still alive after Stop", pid)
	}
	if procs := c.serverProcs(); len(procs) > 0 {
		t.Fatalf("postgres processes left after Stop: %v", procs)
	}
	if _, err := pgx.Connect(ctx, c.URL()); err == nil {
		t.Fatal("connected after Stop")
	}

	c2 := startTest(t, ctx, dir)
	if got := queryString(t, ctx, c2.URL(), "SELECT v FROM kept"); got != "survives restarts" {
		t.Fatalf("after restart read %q", got)
	}
	if c2.Port() != c.Port() {
		t.Logf("port changed from %d to %d (the old one was taken)", c.Port(), c2.Port())
	}
}

func TestStalePostmasterPID(t *testing.T) {
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "pg")
	// Not Fast: with synchronous_commit off, a killed server may lose the
	// last commits, and this test checks that crashed data survives.
	durable := Options{DataDir: dir}
	c := startOpts(t, ctx, durable)
	exec1(t, ctx, c.URL(), "CREATE TABLE kept (v text)")
	exec1(t, ctx, c.URL(), "INSERT INTO kept VALUES ('before crash')")

	crash := func(t *testing.T, c *Cluster) {
		// Keep a backend busy so that it may outlive its postmaster.
		conn, err := pgx.Connect(ctx, c.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		c.mu.Lock()
		p := c.proc
		c.mu.Unlock()
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.done
	}

	t.Run("dead pid", func(t *testing.T) {
		crash(t, c)
		if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); err != nil {
			t.Fatalf("SIGKILL should leave postmaster.pid behind: %v", err)
		}
		c2 := startOpts(t, ctx, durable)
		if got := queryString(t, ctx, c2.URL(), "SELECT v FROM kept"); got != "before crash" {
			t.Fatalf("read %q", got)
		}
		exec1(t, ctx, c2.URL(), "INSERT INTO kept VALUES ('second')")
		crash(t, c2)
		waitGone(t, c2)
		if err := c2.Stop(); err != nil {
			t.Fatalf("Stop after crash: %v", err)
		}
	})

	t.Run("pid reused by another process", func(t *testing.T) {
		// The postmaster.pid now names a live process that is not postgres,
		// which the server alone would take for a running postmaster.
		sleeper := exec.Command("sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
		pidPath := filepath.Join(dir, "postmaster.pid")
		b, err := os.ReadFile(pidPath)
		if err != nil {
			t.Fatalf("postmaster.pid after crash: %v", err)
		}
		_, rest, _ := strings.Cut(string(b), "\n")
		if err := os.WriteFile(pidPath, []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"+rest), 0o600); err != nil {
			t.Fatal(err)
		}
		c3 := startOpts(t, ctx, durable)
		if got := queryString(t, ctx, c3.URL(), "SELECT string_agg(v, ',' ORDER BY v) FROM kept"); got != "before crash,second" {
			t.Fatalf("read %q", got)
		}
	})
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop of the crashed first cluster: %v", err)
	}
}

func TestStartReplacesRunningCluster(t *testing.T) {
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "pg")
	c1 := startTest(t, ctx, dir)
	exec1(t, ctx, c1.URL(), "CREATE TABLE kept (v int)")
	c2 := startTest(t, ctx, dir)
	select {
	case <-c1.proc.done:
	default:
		t.Fatal("the first postmaster still runs after a second Start on its data directory")
	}
	exec1(t, ctx, c2.URL(), "INSERT INTO kept VALUES (1)")
	if err := c1.Stop(); err != nil {
		t.Fatalf("Stop of the replaced cluster: %v", err)
	}
	// Stopping the replaced cluster must not touch the new one.
	if got := queryString(t, ctx, c2.URL(), "SELECT count(*)::text FROM kept"); got != "1" {
		t.Fatalf("count = %s", got)
	}
}

func TestRestart(t *testing.T) {
	ctx := testContext(t)
	c := startTest(t, ctx, filepath.Join(t.TempDir(), "pg"))
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	port := c.Port()
	began := time.Now()
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	t.Logf("Restart took %v", time.Since(began).Round(time.Millisecond))
	if c.Port() != port {
		t.Fatalf("port changed across Restart: %d -> %d", port, c.Port())
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a connection from before the restart still works")
	}
	if got := queryString(t, ctx, c.URL(), "SELECT v::text FROM kept"); got != "7" {
		t.Fatalf("read %q", got)
	}
}

func TestCreateDatabase(t *testing.T) {
	ctx := testContext(t)
	c := startTest(t, ctx, filepath.Join(t.TempDir(), "pg"))
	url, err := c.CreateDatabase(ctx, "Other-DB")
	if err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, ctx, url, "SELECT current_database() || '/' || pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"); got != "Other-DB/billflow" {
		t.Fatalf("got %s", got)
	}
	if again, err := c.CreateDatabase(ctx, "Other-DB"); err != nil || again != url {
		t.Fatalf("second CreateDatabase = %s, %v", again, err)
	}
}

func TestLongDataDirUsesShortSocketDir(t *testing.T) {
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	c := startTest(t, ctx, dir)
	if c.sockDir == c.dataDir {
		t.Fatalf("socket dir is the %d-byte data dir", len(dir))
	}
	if _, err := c.CreateDatabase(ctx, "x"); err != nil { // uses the socket
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.sockDir); !os.IsNotExist(err) {
		t.Fatalf("socket dir %s left after Stop: %v", c.sockDir, err)
	}
}

// TestNoOrphanWhenParentDies kills a process that started a cluster and
// checks the server goes away on its own.
func TestNoOrphanWhenParentDies(t *testing.T) {
	if dir := os.Getenv("DEVPG_HELPER_DIR"); dir != "" {
		c, err := Start(context.Background(), Options{DataDir: dir, Fast: true})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("READY", c.Port())
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "pg")
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNoOrphanWhenParentDies$")
	cmd.Env = append(os.Environ(), "DEVPG_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _ := out.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "READY") {
		_ = cmd.Process.Kill()
		t.Fatalf("helper: %s", buf[:n])
	}
	probe := &Cluster{dataDir: dir}
	if len(probe.serverProcs()) == 0 {
		t.Fatal("helper's postgres not found")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, probe)
}

// TestInitdbCache covers both sides of the initdb cache: a miss runs initdb
// and fills the cache, a hit copies it, and both clusters work.
func TestInitdbCache(t *testing.T) {
	ctx := testContext(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	c1 := startTest(t, ctx, filepath.Join(t.TempDir(), "pg"))
	cache := c1.initCacheDir()
	if !strings.HasPrefix(cache, os.Getenv("XDG_CACHE_HOME")) {
		t.Fatalf("cache dir %s not under XDG_CACHE_HOME", cache)
	}
	if _, err := os.Stat(filepath.Join(cache, "PG_VERSION")); err != nil {
		t.Fatalf("cache not filled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "postmaster.pid")); err == nil {
		t.Fatal("cache holds a running cluster's files")
	}
	c2 := startTest(t, ctx, filepath.Join(t.TempDir(), "pg"))
	exec1(t, ctx, c1.URL(), "CREATE TABLE only_in_one (v int)")
	exec1(t, ctx, c2.URL(), "CREATE TABLE only_in_one (v int)") // separate clusters
	if got := queryString(t, ctx, c2.URL(), "SELECT inet_server_port()::text"); got != strconv.Itoa(c2.Port()) || c1.Port() == c2.Port() {
		t.Fatalf("second cluster answers on port %s; ports %d and %d", got, c1.Port(), c2.Port())
	}
}

func TestFindBinDir(t *testing.T) {
	t.Setenv("PG_BIN_DIR", "")
	if _, err := findBinDir("/nonexistent"); err == nil {
		t.Fatal("an explicit BinDir without binaries was accepted")
	}
	t.Setenv("PG_BIN_DIR", t.TempDir())
	if _, err := findBinDir(""); err == nil || !strings.Contains(err.Error(), "PG_BIN_DIR") {
		t.Fatalf("PG_BIN_DIR without binaries: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := testContext(t)
	if _, err := Start(ctx, Options{}); err == nil {
		t.Fatal("Start without DataDir succeeded")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(ctx, Options{DataDir: dir, Fast: true})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Start on a non-empty non-cluster dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); errors.Is(err, os.ErrNotExist) {
		t.Fatal("Start removed a file it did not own")
	}
}

// A billflow process started while Postgres is down (restarting, say)
// waits for it instead of exiting; a wrong database fails at once.
func TestStoreOpenWaitsForPostgres(t *testing.T) {
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "pg")
	c := startTest(t, ctx, dir)
	url, port := c.URL(), c.Port()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	up := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		c2, err := Start(ctx, Options{DataDir: dir, Port: port, Fast: true})
		if err == nil {
			t.Cleanup(func() { _ = c2.Stop() })
		}
		up <- err
	}()
	began := time.Now()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("Open while Postgres was starting: %v", err)
	}
	st.Close()
	if err := <-up; err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited < time.Second {
		t.Fatalf("Open returned after %v, before Postgres was started", waited)
	}
	began = time.Now()
	if _, err := store.Open(ctx, strings.Replace(url, "/billflow?", "/no_such_db?", 1)); err == nil {
		t.Fatal("Open of a missing database succeeded")
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("a missing database took %v to fail; it is not a restart", d)
	}
}
