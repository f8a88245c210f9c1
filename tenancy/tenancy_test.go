package tenancy_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/internal/storetest"
	"github.com/billflow/billflow/internal/testclock"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/tenancy"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func masterCodec(t *testing.T, keys ...byte) *codec.Codec {
	var ks [][]byte
	for _, b := range keys {
		ks = append(ks, bytes.Repeat([]byte{b}, 32))
	}
	c, err := codec.New(ks[0], ks[1:]...)
	require.NoError(t, err)
	return c
}

// practice makes a practice with a data key, as tenancy.CreatePractice
// does before it registers the namespace.
func practice(t *testing.T, ctx context.Context, st *store.Store, master *codec.Codec, name string) *store.Practice {
	id := store.NewID("prac")
	k, _, err := tenancy.NewDataKey(master, id)
	require.NoError(t, err)
	p, _, err := st.CreatePractice(ctx, store.NewPractice{ID: id, Name: name, Currency: "usd", Timezone: "UTC",
		TemporalNamespace: tenancy.Namespace(id), DataKey: &k})
	require.NoError(t, err)
	return p
}

func encode(t *testing.T, pc converter.PayloadCodec, v any) *commonpb.Payload {
	p, err := codec.DataConverter(pc).ToPayloads(v)
	require.NoError(t, err)
	require.Equal(t, codec.EncodingName, string(p.Payloads[0].Metadata[codec.MetadataEncoding]))
	return p.Payloads[0]
}

func keyOf(p *commonpb.Payload) string { return string(p.Metadata[codec.MetadataKeyID]) }

// Each practice's payloads decode only with its own keys; after a rotation
// old payloads still decode, a process meeting the new key reloads at once
// (rate-limited), and one that does not encrypts with it within MaxAge.
func TestKeyringOwnershipRotationAndReloads(t *testing.T) {
	st, ctx := storetest.Open(t)
	master := masterCodec(t, 7)
	a := practice(t, ctx, st, master, "A")
	b := practice(t, ctx, st, master, "B")
	clk := testclock.New(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	kr := codec.NewKeyring(master, &tenancy.Source{Store: st, Master: master})
	kr.Now, kr.MaxAge, kr.MinReload = clk.Now, time.Minute, 5*time.Second

	p1 := encode(t, kr.ForPractice(a.ID), map[string]int{"amount": 9000})
	require.True(t, keyOf(p1)[0] == 'd', "a data key, not the master key")
	out, err := kr.ForPractice(a.ID).Decode([]*commonpb.Payload{p1})
	require.NoError(t, err)
	require.Contains(t, string(out[0].Data), "9000")
	for name, pc := range map[string]converter.PayloadCodec{"B": kr.ForPractice(b.ID), "shared": kr.ForPractice("")} {
		_, err := pc.Decode([]*commonpb.Payload{p1})
		require.ErrorIs(t, err, codec.ErrForbidden, "%s decoded A's payload", name)
	}
	shared := encode(t, kr.ForPractice(""), "shared")
	_, err = kr.ForPractice(a.ID).Decode([]*commonpb.Payload{shared})
	require.ErrorIs(t, err, codec.ErrForbidden, "A decoded a master-key payload")
	// A mix is refused whole: nothing is decrypted.
	_, err = kr.ForPractice(a.ID).Decode([]*commonpb.Payload{p1, encode(t, kr.ForPractice(b.ID), "b")})
	require.ErrorIs(t, err, codec.ErrForbidden)

	// Rotation, seen first by another process.
	newID, err := tenancy.RotateDataKey(ctx, st, master, a.ID)
	require.NoError(t, err)
	other := codec.NewKeyring(master, &tenancy.Source{Store: st, Master: master})
	p2 := encode(t, other.ForPractice(a.ID), "after rotation")
	require.Equal(t, newID, keyOf(p2))
	loads := kr.Reloads()
	_, err = kr.ForPractice(a.ID).Decode([]*commonpb.Payload{p2})
	require.NoError(t, err, "a payload under the new key decodes at once")
	require.Equal(t, loads+1, kr.Reloads())
	_, err = kr.ForPractice(a.ID).Decode([]*commonpb.Payload{p1})
	require.NoError(t, err, "old payloads still decode")
	require.Equal(t, newID, keyOf(encode(t, kr.ForPractice(a.ID), "x")), "the reload also moved encryption to the new key")

	// Forged key IDs cost one reload per MinReload, not one each.
	forged := encode(t, kr.ForPractice(a.ID), "x")
	forged.Metadata[codec.MetadataKeyID] = []byte("dforged")
	clk.Add(5 * time.Second) // past the reload for p2's key
	loads = kr.Reloads()
	for range 5 {
		_, err = kr.ForPractice(a.ID).Decode([]*commonpb.Payload{forged})
		require.ErrorIs(t, err, codec.ErrForbidden)
	}
	require.Equal(t, loads+1, kr.Reloads(), "reloads for unknown keys are rate-limited")
	clk.Add(5 * time.Second)
	_, err = kr.ForPractice(a.ID).Decode([]*commonpb.Payload{forged})
	require.ErrorIs(t, err, codec.ErrForbidden)
	require.Equal(t, loads+2, kr.Reloads())

	// A rotation nobody's payload announces is picked up within MaxAge.
	third, err := tenancy.RotateDataKey(ctx, st, master, a.ID)
	require.NoError(t, err)
	require.Equal(t, newID, keyOf(encode(t, kr.ForPractice(a.ID), "x")), "still the loaded key")
	clk.Add(time.Minute + time.Second)
	require.Equal(t, third, keyOf(encode(t, kr.ForPractice(a.ID), "x")), "reloaded after MaxAge")
}

// Master rotation: with the new master key current and the old one among
// the old keys, rewrap moves every data key to the new master; then a
// process with the new master key alone reads every practice's payloads.
func TestMasterRewrapThenOldMasterDropped(t *testing.T) {
	st, ctx := storetest.Open(t)
	oldMaster := masterCodec(t, 1)
	a := practice(t, ctx, st, oldMaster, "A")
	b := practice(t, ctx, st, oldMaster, "B")
	_, err := tenancy.RotateDataKey(ctx, st, oldMaster, b.ID)
	require.NoError(t, err)
	before := codec.NewKeyring(oldMaster, &tenancy.Source{Store: st, Master: oldMaster})
	pa := encode(t, before.ForPractice(a.ID), "a")
	pb := encode(t, before.ForPractice(b.ID), "b")

	newOnly := masterCodec(t, 2)
	keys, err := (&tenancy.Source{Store: st, Master: newOnly}).DataKeys(ctx)
	require.NoError(t, err)
	require.Empty(t, keys, "before the rewrap the new master key alone unwraps nothing")

	n, err := tenancy.Rewrap(ctx, st, masterCodec(t, 2, 1))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	n, err = tenancy.Rewrap(ctx, st, masterCodec(t, 2, 1))
	require.NoError(t, err)
	require.Zero(t, n, "a second rewrap has nothing to do")

	after := codec.NewKeyring(newOnly, &tenancy.Source{Store: st, Master: newOnly})
	for p, id := range map[*commonpb.Payload]string{pa: a.ID, pb: b.ID} {
		_, err := after.ForPractice(id).Decode([]*commonpb.Payload{p})
		require.NoError(t, err, "payload of %s after the old master key is gone", id)
	}

	// A wrapped key is bound to its practice and ID: copied onto another
	// practice's row it does not unwrap.
	stored, err := st.DataKeys(ctx)
	require.NoError(t, err)
	k := stored[0]
	k.PracticeID = map[bool]string{true: b.ID, false: a.ID}[k.PracticeID == a.ID]
	_, err = tenancy.Unwrap(newOnly, k)
	require.Error(t, err)
}

func TestNamespaceNames(t *testing.T) {
	ns := tenancy.Namespace("prac_0123abc")
	require.Equal(t, "billflow-prac-0123abc", ns)
	id, ok := tenancy.PracticeOfNamespace(ns)
	require.True(t, ok)
	require.Equal(t, "prac_0123abc", id)
	for _, other := range []string{"default", "billflow", "billflow-prac-", ""} {
		_, ok := tenancy.PracticeOfNamespace(other)
		require.False(t, ok, other)
	}
}
