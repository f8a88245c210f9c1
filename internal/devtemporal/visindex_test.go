package devtemporal

import (
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/server/common/config"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"

	"github.com/billflow/billflow/tenancy"
)

// visibilityIndexes reads the indexes of executions_visibility straight from
// the SQLite file: name to normalised CREATE statement.
func visibilityIndexes(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions_visibility' AND sql IS NOT NULL`)
	require.NoError(t, err)
	defer rows.Close()
	space := regexp.MustCompile(`\s+`)
	out := map[string]string{}
	for rows.Next() {
		var name, stmt string
		require.NoError(t, rows.Scan(&name, &stmt))
		stmt = strings.Replace(stmt, "IF NOT EXISTS ", "", 1)
		out[name] = space.ReplaceAllString(stmt, " ")
	}
	require.NoError(t, rows.Err())
	return out
}

func TestVisibilityIndexesFollowTheSearchAttributeMapping(t *testing.T) {
	dir := t.TempDir()

	// The schema as the server library ships it.
	refPath := filepath.Join(dir, "reference.db")
	refConf := &config.SQL{PluginName: sqliteplugin.PluginName, DatabaseName: refPath, ConnectAttributes: map[string]string{"mode": "rwc"}}
	require.NoError(t, sqliteschema.SetupSchema(refConf))
	reference := visibilityIndexes(t, refPath)

	path := filepath.Join(dir, "temporal.db")
	conf, err := prepareDatabase(Options{DBFile: path, Namespace: "billing"})
	require.NoError(t, err)
	pruned := visibilityIndexes(t, path)

	mapped, err := mappedSlots(conf)
	require.NoError(t, err)
	require.Len(t, mapped, len(tenancy.SearchAttributes), "every billflow attribute has a slot: %v", mapped)

	var dropped []string
	for _, stmt := range slotIndexStatements(mapped) {
		if name, ok := strings.CutPrefix(stmt, "DROP INDEX IF EXISTS "); ok {
			dropped = append(dropped, name)
		}
	}
	// 22 indexed custom slots (3 bool, 3 datetime, 3 double, 3 int, 10
	// keyword) less billflow's 5, and the 13 CHASM slots.
	require.Len(t, dropped, 22-len(tenancy.SearchAttributes)+len(chasmSlots))
	for _, name := range dropped {
		require.Contains(t, reference, name, "the schema has an index named %s", name)
		require.NotContains(t, pruned, name)
	}
	for slot := range mapped {
		name := slotIndexName(slot)
		require.Contains(t, pruned, name, "mapped slot %s keeps its index", slot)
		require.Equal(t, reference[name], pruned[name], "the kept index is the schema's")
	}
	require.Len(t, pruned, len(reference)-len(dropped), "no other index is touched")

	// A slot's index comes back once an attribute maps to it (here: the
	// index of a mapped slot is missing, as after a RegisterSearchAttributes
	// call on a running server), and a second pass changes nothing.
	var someSlot string
	for slot := range mapped {
		someSlot = slot
		break
	}
	admin, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	_, err = admin.Exec("DROP INDEX " + slotIndexName(someSlot))
	require.NoError(t, err)
	require.NoError(t, admin.Close())
	require.NoError(t, pruneVisibilityIndexes(conf))
	require.Equal(t, pruned, visibilityIndexes(t, path))
}

func TestSlotIndexName(t *testing.T) {
	for col, want := range map[string]string{
		"Keyword01":                       "by_keyword_01",
		"Datetime03":                      "by_datetime_03",
		"TemporalLowCardinalityKeyword01": "by_temporal_low_cardinality_keyword_01",
		"TemporalBool02":                  "by_temporal_bool_02",
	} {
		require.Equal(t, want, slotIndexName(col))
	}
}
