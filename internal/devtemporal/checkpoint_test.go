package devtemporal

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/server/common/config"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
)

// TestCheckpointerBoundsTheWAL writes far more than walSizeLimit through a
// connection set up like the server's (no automatic checkpoints) and checks
// that the checkpointer keeps the WAL file bounded and loses no row.
func TestCheckpointerBoundsTheWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "temporal.db")
	db, err := sql.Open("sqlite", fileDSN(path)) // the server's settings
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1) // as the server's plugin does
	_, err = db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)`)
	require.NoError(t, err)

	// A shorter interval than the server's keeps the bound well inside
	// what the test writes on a slow machine too.
	defer func(d time.Duration) { checkpointInterval = d }(checkpointInterval)
	checkpointInterval = 100 * time.Millisecond
	c, err := startCheckpointer(path, nil, nil)
	require.NoError(t, err)

	blob := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16) // 64 KiB
	var maxWAL int64
	rows := 0
	// Well past the limit, or the bound below would mean nothing. Written
	// by volume, not for a time, so a busy machine only takes longer.
	target := int64(5 * walSizeLimit)
	deadline := time.Now().Add(time.Minute)
	for written := int64(0); written < target; written += int64(len(blob)) {
		require.True(t, time.Now().Before(deadline), "writing %d MiB took over a minute", target>>20)
		_, err := db.Exec(`INSERT INTO t (body) VALUES (?)`, blob)
		require.NoError(t, err)
		rows++
		// The server commits in bursts with gaps between them; a loop
		// that never lets go of the write lock is not what the
		// checkpointer has to keep up with.
		time.Sleep(time.Millisecond)
		if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > maxWAL {
			maxWAL = fi.Size()
		}
	}
	require.NoError(t, c.close())
	t.Logf("wrote %d MiB; the WAL file peaked at %d MiB", int64(rows)*int64(len(blob))>>20, maxWAL>>20)

	written := int64(rows) * int64(len(blob))
	// Between two restarts the WAL grows by the restart threshold plus
	// what is written while the checkpoint runs.
	require.Less(t, maxWAL, written/4, "the WAL was never restarted: %d bytes for %d written", maxWAL, written)
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM t`).Scan(&n))
	require.Equal(t, rows, n)
}

// The checkpointer's RESTART runs on the server's own connection, so it never
// holds the write lock while a server transaction is open (SQLite fails that
// transaction's write at once, "database is locked"). That rests on the
// SQLite plugin sharing one single-connection pool per DSN: a temporary
// table, which only its own connection sees, shows it.
func TestServerConnIsTheServersConnection(t *testing.T) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName, DatabaseName: filepath.Join(t.TempDir(), "temporal.db"),
		ConnectAttributes: fileConnectAttributes()}
	server, err := openServerConn(conf) // as the server opens its store
	require.NoError(t, err)
	defer server.Close()
	ckpt, err := openServerConn(conf)
	require.NoError(t, err)
	defer ckpt.Close()
	require.NoError(t, server.Exec(`CREATE TEMP TABLE only_here (x INTEGER)`))
	require.NoError(t, ckpt.Exec(`INSERT INTO temp.only_here VALUES (1)`), "the checkpointer has a connection of its own")
	require.NoError(t, ckpt.Exec(`PRAGMA main.wal_checkpoint(RESTART)`))
}
