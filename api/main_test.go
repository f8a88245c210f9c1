package api

import (
	"testing"

	"github.com/billflow/billflow/internal/pgtest"
	"github.com/billflow/billflow/store"
)

// TestMain gives the package a real Postgres, migrated once into the template
// each test's database is cloned from. Tests that never ask for one start nothing.
func TestMain(m *testing.M) {
	pgtest.Main(m, nil, pgtest.Setup(store.MigrateURL))
}
