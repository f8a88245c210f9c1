// Package codec encrypts every Temporal payload billflow writes (AES-256-GCM)
// so clients' health information never rests in Temporal's database in the
// clear. Each payload names its key ID, so keys can rotate: new payloads use
// the current key, old ones decode with any key still configured.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata keys and the encoding marker of encrypted payloads.
const (
	MetadataEncoding = "encoding"
	MetadataKeyID    = "encryption-key-id"
	EncodingName     = "binary/encrypted"
)

// KeyID derives a stable, non-secret ID from a key.
func KeyID(key []byte) string {
	s := sha256.Sum256(key)
	return "k" + hex.EncodeToString(s[:4])
}

// Codec is a converter.PayloadCodec.
type Codec struct {
	current string
	aeads   map[string]cipher.AEAD
}

// New encrypts with current and decrypts with current or any of old.
func New(current []byte, old ...[]byte) (*Codec, error) {
	c := &Codec{aeads: map[string]cipher.AEAD{}}
	for i, k := range append([][]byte{current}, old...) {
		if err := c.add(KeyID(k), k, i == 0); err != nil {
			return nil, fmt.Errorf("codec: key %d: %w", i, err)
		}
	}
	return c, nil
}

// add makes a key (32 bytes, AES-256) known under id.
func (c *Codec) add(id string, k []byte, current bool) error {
	if len(k) != 32 {
		return fmt.Errorf("must be 32 bytes (AES-256), got %d", len(k))
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	if current {
		c.current = id
	}
	c.aeads[id] = aead
	return nil
}

// CurrentKeyID is the ID of the key new payloads are encrypted with.
func (c *Codec) CurrentKeyID() string { return c.current }

// Has tells whether the codec holds a key.
func (c *Codec) Has(keyID string) bool { _, ok := c.aeads[keyID]; return ok }

// Seal encrypts plain with the current key, binding it to aad: the envelope
// for data keys wrapped by a master key. It returns the key ID used.
func (c *Codec) Seal(plain, aad []byte) (keyID string, sealed []byte, err error) {
	aead := c.aeads[c.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return c.current, aead.Seal(nonce, nonce, plain, aad), nil
}

// Open decrypts what Seal sealed with key keyID and the same aad.
func (c *Codec) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := c.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("codec: no key %q configured", keyID)
	}
	ns := aead.NonceSize()
	if len(sealed) < ns {
		return nil, fmt.Errorf("codec: sealed data too short")
	}
	return aead.Open(nil, sealed[:ns], sealed[ns:], aad)
}

// DataConverter wraps Temporal's default converter with this codec. Every
// workflow, activity, signal, Update and query payload is encrypted; a lone
// string converted on its own — the SDK's path for the summaries and details
// of workflows, activities and timers (user metadata) — stays in the clear,
// as summaries hold only IDs, statuses, amounts and dates and the Temporal UI
// shows them without the codec. Billflow never passes health information as
// a bare string: its workflow and activity arguments are structs.
func (c *Codec) DataConverter() converter.DataConverter { return DataConverter(c) }

// DataConverter is Codec.DataConverter for any payload codec (a practice's).
func DataConverter(pc converter.PayloadCodec) converter.DataConverter {
	return &dataConverter{DataConverter: converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), pc),
		clear: converter.GetDefaultDataConverter()}
}

// StrictDataConverter is Codec.StrictDataConverter for any payload codec.
func StrictDataConverter(pc converter.PayloadCodec) converter.DataConverter {
	d := DataConverter(pc).(*dataConverter)
	d.strict = true
	return d
}

// PracticeDataConverter is the converter of a practice's own namespace:
// strict like StrictDataConverter, and its summaries and details are
// encrypted too, under the practice's data key. The practitioner reads them
// in the Temporal UI through the codec endpoint with their practice's
// credential; without it they are ciphertext. (In the shared namespace they
// stay in the clear, as before.)
func PracticeDataConverter(pc converter.PayloadCodec) converter.DataConverter {
	d := StrictDataConverter(pc).(*dataConverter)
	d.sealSummaries = true
	return d
}

// StrictDataConverter is DataConverter for processes that act on payloads
// (the worker, and the API that reads Update and Query results): it refuses
// arguments, results, signals, Updates, heartbeat details and failure
// attributes that are not encrypted with a configured key. Without it, anyone
// who can reach the Temporal frontend but holds no key could start an
// invoice, or signal or update one, with input of their own choosing; with
// it, such a workflow task or activity fails on the decode error and the
// input is never acted on.
//
// What the SDK reads that is not billflow's data stays readable: a summary or
// details string (decoded on its own into a string), and search attributes,
// which the SDK always decodes with its default converter, never this one.
// A plaintext "binary/null" payload is refused like any other: billflow
// encrypts its own nils, and an injected one would set an input to nil.
func (c *Codec) StrictDataConverter() converter.DataConverter { return StrictDataConverter(c) }

type dataConverter struct {
	converter.DataConverter
	clear         converter.DataConverter
	strict        bool
	sealSummaries bool
}

// ErrPlaintext is returned by a strict converter for a payload that is not encrypted.
var ErrPlaintext = errors.New("codec: refusing an unencrypted payload: TEMPORAL_ENCRYPTION_KEY is set, so billflow only accepts payloads encrypted with it")

// FromPayloads decodes arguments and results; a strict converter first makes
// sure every one of them is encrypted.
func (d *dataConverter) FromPayloads(payloads *commonpb.Payloads, valuePtrs ...any) error {
	if d.strict {
		for i, p := range payloads.GetPayloads() {
			if enc := string(p.GetMetadata()[MetadataEncoding]); enc != EncodingName {
				return fmt.Errorf("payload %d (encoding %q): %w", i, enc, ErrPlaintext)
			}
		}
	}
	return d.DataConverter.FromPayloads(payloads, valuePtrs...)
}

// FromPayload decodes a lone payload. A strict converter accepts a plaintext
// one only into a string, the mirror of ToPayload: that is how the SDK reads
// summaries and details. Failure attributes, which it decodes into a struct,
// must be encrypted.
func (d *dataConverter) FromPayload(payload *commonpb.Payload, valuePtr any) error {
	if enc := string(payload.GetMetadata()[MetadataEncoding]); d.strict && enc != EncodingName {
		if _, ok := valuePtr.(*string); !ok {
			return fmt.Errorf("payload (encoding %q) into %T: %w", enc, valuePtr, ErrPlaintext)
		}
	}
	return d.DataConverter.FromPayload(payload, valuePtr)
}

// ToPayload leaves a string (a summary) unencrypted and encrypts the rest.
// ToPayloads, which carries arguments and results, is not overridden.
func (d *dataConverter) ToPayload(value any) (*commonpb.Payload, error) {
	if _, ok := value.(string); ok && !d.sealSummaries {
		return d.clear.ToPayload(value)
	}
	return d.DataConverter.ToPayload(value)
}

// Encode encrypts each payload whole (metadata included).
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	aead := c.aeads[c.current]
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{MetadataEncoding: []byte(EncodingName), MetadataKeyID: []byte(c.current)},
			Data:     aead.Seal(nonce, nonce, plain, []byte(c.current)),
		}
	}
	return out, nil
}

// Decode decrypts payloads this codec encrypted and passes others through:
// the codec endpoint the Temporal UI calls must show plaintext summaries.
// Refusing plaintext input is StrictDataConverter's job.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != EncodingName {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("codec: no key %q configured to decrypt this payload", id)
		}
		ns := aead.NonceSize()
		if len(p.Data) < ns {
			return nil, fmt.Errorf("codec: payload too short")
		}
		plain, err := aead.Open(nil, p.Data[:ns], p.Data[ns:], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("codec: decrypt with key %s: %w", id, err)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, err
		}
		out[i] = &dec
	}
	return out, nil
}
