// Package storetest gives a package's tests a migrated billflow store on a
// real Postgres (internal/pgtest), so each test package does not set it up
// again.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/pgtest"
	"github.com/billflow/billflow/store"
)

// Main runs a package's tests with a real Postgres, migrated once into the
// template each test's database is cloned from. Call it from TestMain.
func Main(m *testing.M) {
	pgtest.Main(m, nil, pgtest.Setup(store.MigrateURL))
}

// Open gives t a store on a database of its own, closed when t ends, and a
// context that ends with t (or after a minute).
func Open(t testing.TB) (*store.Store, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	st, err := store.Open(ctx, pgtest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st, ctx
}
