package devtemporal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"time"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	persistencesql "go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/resolver"
)

// checkpointInterval is how often the checkpointer folds the WAL back into
// the database file (a variable for tests).
var checkpointInterval = time.Second

// restartFrames is the WAL length (in 4 KiB pages) at which a checkpoint
// makes the WAL start over; walSizeLimit caps the file left on disk then.
const (
	restartFrames = 4096
	walSizeLimit  = 32 << 20
)

// The server's SQLite connection runs with wal_autocheckpoint=0: SQLite's
// automatic checkpoint runs inside the commit that crosses the threshold, on
// the plugin's one connection, so every persistence call of the server waited
// behind a 4 MB copy and an fsync several times a second under load. The
// checkpointer does the bulk of that work from a connection of its own: a
// PASSIVE checkpoint never blocks the writer. Only the short RESTART that
// makes the WAL start over runs on the server's connection, between its
// transactions.
type checkpointer struct {
	db   *sql.DB
	log  *slog.Logger
	stop context.CancelFunc
	done chan struct{}
	// server runs the RESTART checkpoint on the server's own connection
	// (nil: on db). From any other connection, the RESTART holds SQLite's
	// write lock while the server may be inside a transaction that has read
	// and is about to write; SQLite fails such an upgrade at once with
	// SQLITE_BUSY ("database is locked") instead of waiting, and Temporal
	// logs each retry as an ERROR. On the server's one connection it runs
	// between the server's transactions.
	server sqlplugin.AdminDB
}

// openServerConn opens the server's SQLite connection again: the plugin keeps
// one connection pool per DSN (one connection), so this shares it.
func openServerConn(conf *config.SQL) (sqlplugin.AdminDB, error) {
	db, err := persistencesql.NewSQLAdminDB(sqlplugin.DbKindMain, conf, resolver.NewNoopResolver(), log.NewNoopLogger(), metrics.NoopMetricsHandler)
	if err != nil {
		return nil, fmt.Errorf("open the temporal server's database connection: %w", err)
	}
	return db, nil
}

// fileDSN opens file with fileConnectAttributes, as the server's SQLite
// plugin does: "mode" is a URI parameter, the others are pragmas.
func fileDSN(file string) string {
	attrs := fileConnectAttributes()
	keys := slices.Sorted(maps.Keys(attrs))
	v := url.Values{}
	for _, k := range keys {
		if k == "mode" {
			v.Set(k, attrs[k])
		} else {
			v.Add("_pragma", k+"("+attrs[k]+")")
		}
	}
	return "file:" + file + "?" + v.Encode()
}

// startCheckpointer starts checkpointing file every checkpointInterval until
// close. It uses modernc's "sqlite" driver, which the server's SQLite plugin
// registers.
func startCheckpointer(file string, logger *slog.Logger, server sqlplugin.AdminDB) (*checkpointer, error) {
	db, err := sql.Open("sqlite", fileDSN(file))
	if err != nil {
		return nil, fmt.Errorf("open %s for checkpoints: %w", file, err)
	}
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	if err := db.PingContext(ctx); err != nil {
		cancel()
		_ = db.Close()
		return nil, fmt.Errorf("open %s for checkpoints: %w", file, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &checkpointer{db: db, log: logger, stop: cancel, done: make(chan struct{}), server: server}
	go c.run(ctx)
	return c, nil
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _, err := c.checkpoint(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			// Logged once per streak: the WAL only grows meanwhile, and
			// the next success folds all of it in.
			c.log.Warn("temporal database checkpoint failed", "error", err)
			failing = true
		case err == nil && failing:
			c.log.Info("temporal database checkpoints work again")
			failing = false
		}
	}
}

// checkpoint copies the WAL into the database file. A PASSIVE checkpoint
// first copies what it can without blocking anyone. Under steady load new
// commits always land during it, so the WAL would never be fully copied and
// never restart: it would grow without end. Once it holds restartFrames, a
// RESTART checkpoint follows, which holds new commits back while it copies
// the few frames the PASSIVE one left (a few milliseconds), so the next
// commit writes the WAL from its start again.
func (c *checkpointer) checkpoint(ctx context.Context) (walFrames, checkpointed int, err error) {
	walFrames, checkpointed, err = c.run1(ctx, "PASSIVE")
	if err != nil || walFrames < restartFrames {
		return walFrames, checkpointed, err
	}
	if c.server != nil {
		// The server's connection reports no counts through Exec.
		return walFrames, checkpointed, c.server.Exec("PRAGMA main.wal_checkpoint(RESTART)")
	}
	return c.run1(ctx, "RESTART")
}

func (c *checkpointer) run1(ctx context.Context, mode string) (walFrames, checkpointed int, err error) {
	var busy int
	err = c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &walFrames, &checkpointed)
	if err == nil && busy != 0 {
		err = fmt.Errorf("%s checkpoint: database busy", mode)
	}
	return walFrames, checkpointed, err
}

// close stops the loop, folds in what is left and closes the connection.
func (c *checkpointer) close() error {
	c.stop()
	<-c.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.checkpoint(ctx)
	err = errors.Join(err, c.db.Close())
	if c.server != nil {
		err = errors.Join(err, c.server.Close())
	}
	return err
}
