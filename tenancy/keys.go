package tenancy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/store"
)

// ErrNoMasterKey: data keys need TEMPORAL_ENCRYPTION_KEY to wrap them.
var ErrNoMasterKey = errors.New("tenancy: no master key (TEMPORAL_ENCRYPTION_KEY) to wrap data keys with")

// wrapAAD binds a wrapped data key to its practice and key ID: a wrapped key
// copied onto another practice's row, or under another ID, does not unwrap.
func wrapAAD(practiceID, keyID string) []byte {
	return []byte("billflow/data-key/v1|" + practiceID + "|" + keyID)
}

// NewDataKey makes a random data key for a practice, wrapped by master's
// current key. The secret is returned only for tests.
func NewDataKey(master *codec.Codec, practiceID string) (store.DataKey, []byte, error) {
	if master == nil {
		return store.DataKey{}, nil, ErrNoMasterKey
	}
	secret := make([]byte, 32)
	idb := make([]byte, 8)
	if _, err := rand.Read(secret); err != nil {
		return store.DataKey{}, nil, err
	}
	if _, err := rand.Read(idb); err != nil {
		return store.DataKey{}, nil, err
	}
	// "d…": never one of the master keys' "k…" IDs.
	k := store.DataKey{KeyID: "d" + hex.EncodeToString(idb), PracticeID: practiceID, Current: true}
	var err error
	k.MasterKeyID, k.Wrapped, err = master.Seal(secret, wrapAAD(practiceID, k.KeyID))
	return k, secret, err
}

// Unwrap opens a stored data key with the master key that wrapped it.
func Unwrap(master *codec.Codec, k store.DataKey) ([]byte, error) {
	if master == nil {
		return nil, ErrNoMasterKey
	}
	secret, err := master.Open(k.MasterKeyID, k.Wrapped, wrapAAD(k.PracticeID, k.KeyID))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key %s of practice %s (master key %s): %w", k.KeyID, k.PracticeID, k.MasterKeyID, err)
	}
	return secret, nil
}

// RotateDataKey gives a practice a new current data key. Payloads under its
// earlier keys still decode; running processes encrypt with the new one
// within a minute (codec.Keyring.MaxAge), and decode payloads under it at
// once.
func RotateDataKey(ctx context.Context, st *store.Store, master *codec.Codec, practiceID string) (string, error) {
	if _, err := st.GetPractice(ctx, practiceID); err != nil {
		return "", err
	}
	k, _, err := NewDataKey(master, practiceID)
	if err != nil {
		return "", err
	}
	if err := st.AddDataKey(ctx, k); err != nil {
		return "", err
	}
	return k.KeyID, nil
}

// Rewrap re-wraps every data key not wrapped by master's current key (after a
// master key rotation: the new key in TEMPORAL_ENCRYPTION_KEY, the old one in
// TEMPORAL_ENCRYPTION_OLD_KEYS). Once it reports no failures the old master
// key can be dropped.
func Rewrap(ctx context.Context, st *store.Store, master *codec.Codec) (rewrapped int, err error) {
	if master == nil {
		return 0, ErrNoMasterKey
	}
	keys, err := st.DataKeys(ctx)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, k := range keys {
		if k.MasterKeyID == master.CurrentKeyID() {
			continue
		}
		secret, err := Unwrap(master, k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		to, wrapped, err := master.Seal(secret, wrapAAD(k.PracticeID, k.KeyID))
		if err != nil {
			return rewrapped, err
		}
		ok, err := st.RewrapDataKey(ctx, k.KeyID, k.MasterKeyID, to, wrapped)
		if err != nil {
			return rewrapped, err
		}
		if ok {
			rewrapped++
		}
	}
	return rewrapped, errors.Join(errs...)
}

// Source is the codec.KeySource over Postgres: every data key, unwrapped by
// the master key. A key that does not unwrap (its master key was dropped
// before a rewrap) is left out and logged, so one bad key costs only its own
// payloads.
type Source struct {
	Store  *store.Store
	Master *codec.Codec
	Logger *slog.Logger
}

// DataKeys implements codec.KeySource.
func (s *Source) DataKeys(ctx context.Context) ([]codec.Key, error) {
	keys, err := s.Store.DataKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]codec.Key, 0, len(keys))
	for _, k := range keys {
		secret, err := Unwrap(s.Master, k)
		if err != nil {
			if s.Logger != nil {
				s.Logger.Error("data key does not unwrap", "key_id", k.KeyID, "practice_id", k.PracticeID, "error", err)
			}
			continue
		}
		out = append(out, codec.Key{ID: k.KeyID, PracticeID: k.PracticeID, Secret: secret, Current: k.Current})
	}
	return out, nil
}
