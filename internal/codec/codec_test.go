package codec

import (
	"bytes"
	"strings"
	"testing"

	"go.temporal.io/sdk/converter"
)

func TestRoundTripRotationAndTamper(t *testing.T) {
	oldKey := bytes.Repeat([]byte{1}, 32)
	newKey := bytes.Repeat([]byte{2}, 32)
	oldC, err := New(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	dc := oldC.DataConverter()
	p, err := dc.ToPayload(map[string]string{"description": "Individual therapy F41.1"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte("therapy")) || string(p.Metadata[MetadataEncoding]) != EncodingName {
		t.Fatal("payload not encrypted")
	}
	// After rotation, the new codec still reads the old payload and writes with the new key.
	rotated, err := New(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := rotated.DataConverter().FromPayload(p, &got); err != nil || got["description"] != "Individual therapy F41.1" {
		t.Fatalf("decode after rotation: %v %v", got, err)
	}
	p2, _ := rotated.DataConverter().ToPayload("x")
	if string(p2.Metadata[MetadataKeyID]) != KeyID(newKey) {
		t.Fatal("new payloads must use the current key")
	}
	// Without the key, decoding fails loudly.
	if err := oldC.DataConverter().FromPayload(p2, new(string)); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("want missing key error, got %v", err)
	}
	// Tampering is detected.
	p.Data[len(p.Data)-1] ^= 1
	if err := rotated.DataConverter().FromPayload(p, &got); err == nil {
		t.Fatal("tampered payload decoded")
	}
	// Unencrypted payloads pass through.
	plain, _ := converter.GetDefaultDataConverter().ToPayload("hello")
	var s string
	if err := rotated.DataConverter().FromPayload(plain, &s); err != nil || s != "hello" {
		t.Fatal("plain passthrough")
	}
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}
