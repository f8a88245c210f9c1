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
	p2, _ := rotated.DataConverter().ToPayload(struct{ X string }{"x"})
	if string(p2.Metadata[MetadataKeyID]) != KeyID(newKey) {
		t.Fatal("new payloads must use the current key")
	}
	// Without the key, decoding fails loudly.
	if err := oldC.DataConverter().FromPayload(p2, new(struct{ X string })); err == nil || !strings.Contains(err.Error(), "no key") {
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

// Summaries (a lone string through ToPayload) stay readable without the key;
// arguments and results (ToPayloads), strings included, are encrypted.
func TestSummariesClearArgumentsEncrypted(t *testing.T) {
	c, err := New(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	dc := c.DataConverter()
	sum, err := dc.ToPayload("Charge $90.00 to Visa •••• 4242")
	if err != nil {
		t.Fatal(err)
	}
	if string(sum.Metadata[MetadataEncoding]) != "json/plain" || !bytes.Contains(sum.Data, []byte("Charge $90.00")) {
		t.Fatalf("summary should be clear json/plain, got %q", sum.Metadata[MetadataEncoding])
	}
	var back string
	if err := dc.FromPayload(sum, &back); err != nil || back != "Charge $90.00 to Visa •••• 4242" {
		t.Fatalf("summary round trip: %q %v", back, err)
	}
	args, err := dc.ToPayloads("Ada Lovelace", map[string]int{"amount": 9000})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range args.Payloads {
		if string(p.Metadata[MetadataEncoding]) != EncodingName || bytes.Contains(p.Data, []byte("Ada")) {
			t.Fatalf("argument %d not encrypted", i)
		}
	}
	var name string
	var amt map[string]int
	if err := dc.FromPayloads(args, &name, &amt); err != nil || name != "Ada Lovelace" || amt["amount"] != 9000 {
		t.Fatalf("arguments round trip: %q %v %v", name, amt, err)
	}
}
