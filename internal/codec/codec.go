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
		if len(k) != 32 {
			return nil, fmt.Errorf("codec: key %d must be 32 bytes (AES-256), got %d", i, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := KeyID(k)
		if i == 0 {
			c.current = id
		}
		c.aeads[id] = aead
	}
	return c, nil
}

// DataConverter wraps Temporal's default converter with this codec. Every
// workflow, activity, signal, Update and query payload is encrypted; a lone
// string converted on its own — the SDK's path for the summaries and details
// of workflows, activities and timers (user metadata) — stays in the clear,
// as summaries hold only IDs, statuses, amounts and dates and the Temporal UI
// shows them without the codec. Billflow never passes health information as
// a bare string: its workflow and activity arguments are structs.
func (c *Codec) DataConverter() converter.DataConverter {
	return &dataConverter{DataConverter: converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c),
		clear: converter.GetDefaultDataConverter()}
}

type dataConverter struct {
	converter.DataConverter
	clear converter.DataConverter
}

// ToPayload leaves a string (a summary) unencrypted and encrypts the rest.
// ToPayloads, which carries arguments and results, is not overridden.
func (d *dataConverter) ToPayload(value any) (*commonpb.Payload, error) {
	if _, ok := value.(string); ok {
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

// Decode decrypts payloads this codec encrypted and passes others through.
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
