package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/store"
)

// A practice has one current data key: adding one retires the previous
// (which stays, to decrypt), and a practice's namespace is set once.
func TestDataKeysOneCurrentAndNamespaceSetOnce(t *testing.T) {
	st, ctx := storetest.Open(t)
	first := &store.DataKey{KeyID: "d1", MasterKeyID: "kmaster", Wrapped: []byte("w1")}
	p, _, err := st.CreatePractice(ctx, store.NewPractice{ID: "prac_tenant1", Name: "A", Currency: "usd", Timezone: "Pacific/Honolulu",
		TemporalNamespace: "billflow-prac-tenant1", DataKey: first})
	require.NoError(t, err)
	require.Equal(t, "prac_tenant1", p.ID)
	require.Equal(t, "billflow-prac-tenant1", p.TemporalNamespace)

	require.NoError(t, st.AddDataKey(ctx, store.DataKey{KeyID: "d2", PracticeID: p.ID, MasterKeyID: "kmaster", Wrapped: []byte("w2")}))
	keys, err := st.DataKeys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	current := map[string]bool{}
	for _, k := range keys {
		require.Equal(t, p.ID, k.PracticeID)
		current[k.KeyID] = k.Current
	}
	require.Equal(t, map[string]bool{"d1": false, "d2": true}, current)
	// The index refuses a second current key however it is written.
	_, err = st.Pool.Exec(ctx, `UPDATE practice_data_keys SET current = true WHERE key_id = 'd1'`)
	require.Error(t, err, "two current keys for one practice")

	// Rewrap only moves a key still under the master it names.
	ok, err := st.RewrapDataKey(ctx, "d1", "kother", "knew", []byte("x"))
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = st.RewrapDataKey(ctx, "d1", "kmaster", "knew", []byte("w1'"))
	require.NoError(t, err)
	require.True(t, ok)

	// Namespace: the same again is a no-op, another is refused, and a
	// practice without one gets one once.
	require.NoError(t, st.SetPracticeNamespace(ctx, p.ID, "billflow-prac-tenant1"))
	require.ErrorIs(t, st.SetPracticeNamespace(ctx, p.ID, "billflow-prac-other"), store.ErrConflict)
	_, err = st.Pool.Exec(ctx, `UPDATE practices SET temporal_namespace = NULL WHERE id = $1`, p.ID)
	require.Error(t, err, "the database keeps a namespace once set, whoever writes")
	legacy, _, err := st.CreatePractice(ctx, store.NewPractice{Name: "Legacy", Currency: "usd", Timezone: "UTC"})
	require.NoError(t, err)
	require.Empty(t, legacy.TemporalNamespace)
	require.ErrorIs(t, st.SetPracticeNamespace(ctx, "prac_missing", "billflow-prac-missing"), store.ErrNotFound)
	list, err := st.PracticeNamespaces(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.PracticeNamespace{{PracticeID: p.ID, Namespace: "billflow-prac-tenant1", Timezone: "Pacific/Honolulu"}}, list)
	// Namespaces are unique: no second practice shares one.
	_, _, err = st.CreatePractice(ctx, store.NewPractice{Name: "Copycat", Currency: "usd", Timezone: "UTC", TemporalNamespace: "billflow-prac-tenant1"})
	require.Error(t, err)
}

// A Schedule's run sees its scope: one practice's rows, or ("") those of
// practices without a namespace of their own.
func TestSchedulesSeeOnlyTheirScope(t *testing.T) {
	st, ctx := storetest.Open(t)
	legacy, legacyInv := seed(t, st, ctx, 9000, false)
	tenant, tenantInv := seed(t, st, ctx, 9000, false)
	require.NoError(t, st.SetPracticeNamespace(ctx, tenant.ID, "billflow-prac-"+tenant.ID[len("prac_"):]))
	today := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	shared, err := st.ListRemindable(ctx, "", today, "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{legacyInv.ID}, shared)
	own, err := st.ListRemindable(ctx, tenant.ID, today, "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{tenantInv.ID}, own)
	none, err := st.ListRemindable(ctx, legacy.ID+"x", today, "", 10)
	require.NoError(t, err)
	require.Empty(t, none)
}
