package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/internal/devpg"
)

// setupWidgets stands in for migrations.
func setupWidgets(ctx context.Context, u string) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE TABLE widgets (name text PRIMARY KEY); INSERT INTO widgets VALUES ('from setup')")
	return err
}

func TestMain(m *testing.M) {
	Main(m, nil, Setup(setupWidgets))
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func widgets(t *testing.T, ctx context.Context, u string) []string {
	t.Helper()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT name FROM widgets ORDER BY name")
	if err != nil {
		t.Fatalf("query widgets: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func databaseExists(t *testing.T, ctx context.Context, adminURL, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func dbName(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(p.Path, "/")
}

// The package database and per-test databases come from the Setup template
// and are isolated from each other.
func TestURLAndNewDB(t *testing.T) {
	ctx := ctxFor(t)
	began := time.Now()
	shared := URL(t)
	t.Logf("first URL (server start + setup) took %v", time.Since(began).Round(time.Millisecond))
	if again := URL(t); again != shared {
		t.Fatalf("URL changed: %s then %s", shared, again)
	}
	if got := widgets(t, ctx, shared); len(got) != 1 || got[0] != "from setup" {
		t.Fatalf("package database widgets = %v", got)
	}
	pool, err := pgx.Connect(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	if _, err := pool.Exec(ctx, "INSERT INTO widgets VALUES ('shared only')"); err != nil {
		t.Fatal(err)
	}

	var (
		mu   sync.Mutex
		made []string
	)
	t.Run("parallel", func(t *testing.T) {
		for i := range 3 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				began := time.Now()
				u := NewDB(t)
				t.Logf("NewDB took %v", time.Since(began).Round(time.Millisecond))
				mu.Lock()
				made = append(made, dbName(t, u))
				mu.Unlock()
				if got := widgets(t, ctx, u); len(got) != 1 || got[0] != "from setup" {
					t.Fatalf("new database widgets = %v, want only the setup row", got)
				}
				conn, err := pgx.Connect(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				// An open connection must not stop the drop at cleanup.
				t.Cleanup(func() { conn.Close(context.Background()) })
				if _, err := conn.Exec(ctx, "INSERT INTO widgets VALUES ($1)", fmt.Sprint("test ", i)); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	if len(made) != 3 || made[0] == made[1] || made[1] == made[2] {
		t.Fatalf("databases %v", made)
	}
	for _, n := range made {
		if databaseExists(t, ctx, shared, n) {
			t.Errorf("database %s still exists after its test", n)
		}
	}
	if got := widgets(t, ctx, shared); len(got) != 2 {
		t.Fatalf("package database saw other tests' rows: %v", got)
	}
}

func TestNewPool(t *testing.T) {
	pool := NewPool(t)
	var n int
	if err := pool.QueryRow(ctxFor(t), "SELECT count(*) FROM widgets").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count = %d, %v", n, err)
	}
}

func TestStartWithoutDatabaseURL(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	ctx := ctxFor(t)
	began := time.Now()
	s, err := openServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("private cluster start took %v", time.Since(began).Round(time.Millisecond))
	if s.cluster == nil || s.tmpDir == "" {
		t.Fatal("no private cluster without DATABASE_URL")
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.tmpDir); !os.IsNotExist(err) {
		t.Fatalf("temp dir %s left behind: %v", s.tmpDir, err)
	}
	if conn, err := pgx.Connect(ctx, s.adminURL); err == nil {
		conn.Close(ctx)
		t.Fatal("private cluster still accepts connections after cleanup")
	}

	u, cleanup, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		cleanup()
		t.Fatal(err)
	}
	var tables int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables)
	conn.Close(ctx)
	cleanup()
	if err != nil || tables != 0 {
		t.Fatalf("Start's database has %d tables (%v), want an empty one", tables, err)
	}
	if conn, err := pgx.Connect(ctx, u); err == nil {
		conn.Close(ctx)
		t.Fatal("database still reachable after cleanup")
	}
}

func TestWithDatabaseURL(t *testing.T) {
	ctx := ctxFor(t)
	c, err := devpg.Start(ctx, devpg.Options{DataDir: filepath.Join(t.TempDir(), "pg"), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Setenv("DATABASE_URL", c.URL())

	t.Run("Start", func(t *testing.T) {
		u, cleanup, err := Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		name := dbName(t, u)
		if !strings.Contains(u, fmt.Sprintf("127.0.0.1:%d", c.Port())) || !strings.HasPrefix(name, "pgtest_") {
			t.Fatalf("Start returned %s, want a pgtest_ database on port %d", u, c.Port())
		}
		if !databaseExists(t, ctx, c.URL(), name) {
			t.Fatal("database not created on DATABASE_URL's server")
		}
		cleanup()
		if databaseExists(t, ctx, c.URL(), name) {
			t.Fatal("cleanup left the database")
		}
		if got := dbName(t, c.URL()); !databaseExists(t, ctx, c.URL(), got) {
			t.Fatal("cleanup dropped DATABASE_URL's own database")
		}
	})

	t.Run("suite", func(t *testing.T) {
		s := &suite{cfg: config{setup: setupWidgets}}
		if err := s.ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if got := widgets(t, ctx, s.url); len(got) != 1 {
			t.Fatalf("widgets = %v", got)
		}
		var perTest string
		t.Run("newDB", func(t *testing.T) {
			u, err := s.newDB(t)
			if err != nil {
				t.Fatal(err)
			}
			perTest = dbName(t, u)
			if got := widgets(t, ctx, u); len(got) != 1 {
				t.Fatalf("widgets = %v", got)
			}
		})
		if databaseExists(t, ctx, c.URL(), perTest) {
			t.Fatal("per-test database survived its test")
		}
		if err := s.teardown(); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, c.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var left []string
		rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'pgtest\\_%'")
		if err == nil {
			left, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil || len(left) != 0 {
			t.Fatalf("teardown left databases %v (%v)", left, err)
		}
	})
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"postgres://u:p@h:5/app?sslmode=disable", "postgres://u:p@h:5/x_1?sslmode=disable"},
		{"postgresql://u@h/app", "postgresql://u@h/x_1"},
		{"host=h dbname=app", "host=h dbname=app dbname='x_1'"},
	} {
		if got, err := withDatabase(tc.base, "x_1"); err != nil || got != tc.want {
			t.Errorf("withDatabase(%s) = %s, %v; want %s", tc.base, got, err, tc.want)
		}
	}
	if p := dbPrefix(); !strings.HasPrefix(p, "pgtest_pgtest_") || len(p) > 50 {
		t.Errorf("prefix %s", p)
	}
}
