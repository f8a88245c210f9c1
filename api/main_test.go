package api

import (
	"context"
	"testing"

	"github.com/billflow/billflow/internal/pgtest"
	"github.com/billflow/billflow/store"
)

// TestMain gives the package a real Postgres, migrated once into the template
// each test's database is cloned from. Tests that never ask for one start nothing.
func TestMain(m *testing.M) {
	pgtest.Main(m, nil, pgtest.Setup(func(ctx context.Context, url string) error {
		st, err := store.Open(ctx, url)
		if err != nil {
			return err
		}
		defer st.Close()
		_, err = st.Migrate(ctx)
		return err
	}))
}
