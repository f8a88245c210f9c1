package devtemporal

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence/serialization"
	"go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/resolver"
	"go.temporal.io/server/common/searchattribute/sadefs"
)

// chasmSlots are the visibility columns the SQLite schema pre-allocates for
// CHASM components (schema/sqlite/v3/visibility/schema.sql). This server
// enables no CHASM component, so nothing writes or queries them.
var chasmSlots = []string{
	"TemporalBool01", "TemporalBool02",
	"TemporalDatetime01", "TemporalDatetime02",
	"TemporalDouble01", "TemporalDouble02",
	"TemporalInt01", "TemporalInt02",
	"TemporalKeyword01", "TemporalKeyword02", "TemporalKeyword03", "TemporalKeyword04",
	"TemporalLowCardinalityKeyword01",
}

// indexedSlotTypes are the custom search attribute types whose slots have a
// B-tree index in the SQLite schema; Text and KeywordList slots use FTS tables.
var indexedSlotTypes = map[enumspb.IndexedValueType]bool{
	enumspb.INDEXED_VALUE_TYPE_BOOL:     true,
	enumspb.INDEXED_VALUE_TYPE_DATETIME: true,
	enumspb.INDEXED_VALUE_TYPE_DOUBLE:   true,
	enumspb.INDEXED_VALUE_TYPE_INT:      true,
	enumspb.INDEXED_VALUE_TYPE_KEYWORD:  true,
}

// pruneVisibilityIndexes keeps a B-tree index only on the pre-allocated
// search attribute slots that some namespace maps an attribute to, and drops
// the rest. The SQLite visibility table indexes every one of its 30 unused
// slots (custom and CHASM) in the schema, and SQLite maintains every index,
// and compiles it into the statement, on every search attribute upsert: with
// them the upsert after each payment was a sixth of the dev server's CPU.
//
// No query can name an unmapped slot (queries use attribute names, and the
// slots get names only through a namespace's mapping), so nothing reads those
// indexes. A slot that gets an attribute while the server runs (a new
// tenancy.SearchAttributes entry) is queried by scan until the next start,
// which indexes it again: the index set follows the mapping on every start.
func pruneVisibilityIndexes(conf *config.SQL) error {
	mapped, err := mappedSlots(conf)
	if err != nil {
		return err
	}
	db, err := sql.NewSQLAdminDB(sqlplugin.DbKindVisibility, conf, resolver.NewNoopResolver(), log.NewNoopLogger(), metrics.NoopMetricsHandler)
	if err != nil {
		return fmt.Errorf("open temporal visibility store: %w", err)
	}
	defer func() { _ = db.Close() }()
	for _, stmt := range slotIndexStatements(mapped) {
		if err := db.Exec(stmt); err != nil {
			return fmt.Errorf("visibility index: %q: %w", stmt, err)
		}
	}
	return nil
}

// mappedSlots returns the slots (Keyword01, Int01, ...) that any namespace in
// the database maps a custom search attribute to.
func mappedSlots(conf *config.SQL) (map[string]bool, error) {
	db, err := sql.NewSQLDB(sqlplugin.DbKindMain, conf, resolver.NewNoopResolver(), log.NewNoopLogger(), metrics.NoopMetricsHandler)
	if err != nil {
		return nil, fmt.Errorf("open temporal store: %w", err)
	}
	defer func() { _ = db.Close() }()
	pageSize := 1000
	rows, err := db.SelectFromNamespace(context.Background(), sqlplugin.NamespaceFilter{PageSize: &pageSize})
	if err != nil {
		return nil, fmt.Errorf("read temporal namespaces: %w", err)
	}
	ser := serialization.NewSerializer()
	mapped := map[string]bool{}
	for _, row := range rows {
		enc, err := enumspb.EncodingTypeFromString(row.DataEncoding)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", row.Name, err)
		}
		detail, err := ser.NamespaceDetailFromBlob(&commonpb.DataBlob{Data: row.Data, EncodingType: enc})
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", row.Name, err)
		}
		for field := range detail.GetConfig().GetCustomSearchAttributeAliases() {
			mapped[field] = true
		}
	}
	return mapped, nil
}

// slotIndexStatements creates the index of every mapped slot that lacks it and
// drops the index of every unmapped one. Each statement is idempotent.
func slotIndexStatements(mapped map[string]bool) []string {
	var slots []string
	for field, typ := range sadefs.GetDBIndexSearchAttributes(nil).CustomSearchAttributes {
		if indexedSlotTypes[typ] {
			slots = append(slots, field)
		}
	}
	sort.Strings(slots)
	slots = append(slots, chasmSlots...)
	stmts := make([]string, 0, len(slots))
	for _, col := range slots {
		if mapped[col] {
			stmts = append(stmts, "CREATE INDEX IF NOT EXISTS "+slotIndexName(col)+" ON executions_visibility (namespace_id, "+col+
				", (COALESCE(close_time, '9999-12-31 23:59:59+00:00')) DESC, start_time DESC, run_id)")
		} else {
			stmts = append(stmts, "DROP INDEX IF EXISTS "+slotIndexName(col))
		}
	}
	return stmts
}

var slotWord = regexp.MustCompile(`[A-Z][a-z]*|[0-9]+`)

// slotIndexName is the schema's name for a slot's index: Keyword01 is
// by_keyword_01, TemporalLowCardinalityKeyword01 is
// by_temporal_low_cardinality_keyword_01.
func slotIndexName(col string) string {
	return "by_" + strings.ToLower(strings.Join(slotWord.FindAllString(col, -1), "_"))
}
