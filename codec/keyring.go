package codec

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// Key is one practice data key in the clear, as a KeySource hands it over.
type Key struct {
	ID         string
	PracticeID string
	Secret     []byte
	Current    bool // the key the practice's new payloads are encrypted with
}

// KeySource loads every practice's data keys, unwrapped (tenancy's, from
// Postgres, unwrapped by the master key).
type KeySource interface {
	DataKeys(ctx context.Context) ([]Key, error)
}

// ErrForbidden is a payload under a key that is not the caller's: another
// practice's data key, the master key for a practice with keys of its own, or
// a key nobody knows. Nothing is decrypted.
var ErrForbidden = errors.New("codec: payload is encrypted under a key that is not this practice's")

// Keyring resolves keys per practice: a practice's payloads are encrypted
// with its current data key and decrypted only with its own keys; the shared
// namespace's (practice "") with the master keys. Data keys rotate: the
// keyring reloads them every MaxAge, and at once when it meets a payload
// under a key ID it does not know, at most once per MinReload (a flood of
// forged key IDs costs one Postgres read per MinReload, not one each).
type Keyring struct {
	master *Codec
	src    KeySource
	// MaxAge is how old the loaded keys may get before the next use
	// reloads them; default one minute.
	MaxAge time.Duration
	// MinReload spaces reloads for unknown key IDs; default 5 s.
	MinReload time.Duration
	Logger    *slog.Logger
	Now       func() time.Time

	mu        sync.Mutex
	practices map[string]*Codec // practice ID → its keys
	owner     map[string]string // data key ID → practice ID
	loadedAt  time.Time
	missAt    time.Time // last reload for an unknown key
	reloads   int
}

// NewKeyring keys the shared namespace with master and practices with src's keys.
func NewKeyring(master *Codec, src KeySource) *Keyring {
	return &Keyring{master: master, src: src, practices: map[string]*Codec{}, owner: map[string]string{}}
}

func (k *Keyring) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Master is the master-key codec (the shared namespace's).
func (k *Keyring) Master() *Codec { return k.master }

// Load reloads every data key now.
func (k *Keyring) Load(ctx context.Context) error {
	keys, err := k.src.DataKeys(ctx)
	if err != nil {
		return fmt.Errorf("load data keys: %w", err)
	}
	practices := map[string]*Codec{}
	owner := map[string]string{}
	for _, key := range keys {
		c := practices[key.PracticeID]
		if c == nil {
			c = &Codec{aeads: map[string]cipher.AEAD{}}
			practices[key.PracticeID] = c
		}
		if err := c.add(key.ID, key.Secret, key.Current); err != nil {
			return fmt.Errorf("data key %s: %w", key.ID, err)
		}
		owner[key.ID] = key.PracticeID
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.practices, k.owner, k.loadedAt = practices, owner, k.now()
	k.reloads++
	return nil
}

// Reloads counts loads, for tests and metrics.
func (k *Keyring) Reloads() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloads
}

func (k *Keyring) reload(why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := k.Load(ctx); err != nil && k.Logger != nil {
		k.Logger.Warn("reload data keys", "why", why, "error", err)
	}
}

// fresh reloads the keys when they are older than MaxAge.
func (k *Keyring) fresh() {
	maxAge := k.MaxAge
	if maxAge <= 0 {
		maxAge = time.Minute
	}
	k.mu.Lock()
	stale := k.now().Sub(k.loadedAt) > maxAge
	k.mu.Unlock()
	if stale {
		k.reload("keys older than " + maxAge.String())
	}
}

// codecOf is a practice's keys; with unknown set, a key ID seen in a payload
// that no practice owns triggers a rate-limited reload first.
func (k *Keyring) codecOf(practiceID string, unknown string) (*Codec, map[string]string) {
	k.fresh()
	k.mu.Lock()
	_, known := k.owner[unknown]
	k.mu.Unlock()
	if unknown != "" && !known && !k.master.Has(unknown) {
		k.reloadLimited("unknown key " + unknown)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.practices[practiceID], k.owner
}

// reloadLimited reloads unless a reload for a miss ran within MinReload.
func (k *Keyring) reloadLimited(why string) {
	minReload := k.MinReload
	if minReload <= 0 {
		minReload = 5 * time.Second
	}
	k.mu.Lock()
	if k.now().Sub(k.missAt) < minReload {
		k.mu.Unlock()
		return
	}
	k.missAt = k.now()
	k.mu.Unlock()
	k.reload(why)
}

// ForPractice is the payload codec of one practice ("": the shared
// namespace, master keys).
func (k *Keyring) ForPractice(practiceID string) converter.PayloadCodec {
	if practiceID == "" {
		return &scoped{k: k}
	}
	return &scoped{k: k, practice: practiceID}
}

// scoped is a converter.PayloadCodec restricted to one practice's keys.
type scoped struct {
	k        *Keyring
	practice string
}

// Encode encrypts with the practice's current data key.
func (s *scoped) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if s.practice == "" {
		return s.k.master.Encode(payloads)
	}
	c, _ := s.k.codecOf(s.practice, "")
	if c == nil || c.current == "" {
		// A practice made a moment ago: its key may be newer than the load.
		s.k.reloadLimited("no current key for " + s.practice)
		c, _ = s.k.codecOf(s.practice, "")
	}
	if c == nil || c.current == "" {
		return nil, fmt.Errorf("codec: practice %s has no current data key", s.practice)
	}
	return c.Encode(payloads)
}

// Decode decrypts payloads only if every encrypted one is under one of the
// practice's own keys; otherwise it decrypts none and returns ErrForbidden.
// Plaintext payloads (summaries) pass through.
func (s *scoped) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	c := s.k.master
	for _, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != EncodingName {
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		if s.practice == "" {
			if !s.k.master.Has(id) {
				return nil, fmt.Errorf("key %q: %w", id, ErrForbidden)
			}
			continue
		}
		pc, owner := s.k.codecOf(s.practice, id)
		if owner[id] != s.practice || pc == nil || !pc.Has(id) {
			return nil, fmt.Errorf("key %q: %w", id, ErrForbidden)
		}
		c = pc
	}
	return c.Decode(payloads)
}
