package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
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

// A strict converter refuses anything a keyless writer could have put in
// history — arguments, nils, failure attributes — while summaries stay
// readable and the codec itself (the UI's endpoint) still passes plaintext.
func TestStrictRefusesPlaintext(t *testing.T) {
	c, err := New(bytes.Repeat([]byte{4}, 32))
	if err != nil {
		t.Fatal(err)
	}
	strict := c.StrictDataConverter()
	plainDC := converter.GetDefaultDataConverter()

	type input struct{ InvoiceID string }
	injected, err := plainDC.ToPayloads(&input{InvoiceID: "inv_forged"}, nil, "text")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range injected.Payloads {
		one := &commonpb.Payloads{Payloads: []*commonpb.Payload{p}}
		var dst any
		if err := strict.FromPayloads(one, &dst); !errors.Is(err, ErrPlaintext) {
			t.Errorf("plaintext argument %d (%s) decoded: %v", i, p.Metadata[MetadataEncoding], err)
		}
	}
	var in input
	if err := strict.FromPayload(injected.Payloads[0], &in); !errors.Is(err, ErrPlaintext) {
		t.Errorf("plaintext lone payload decoded into a struct: %v", err)
	}
	// The lenient converter still reads it: strictness is opt-in.
	if err := c.DataConverter().FromPayloads(&commonpb.Payloads{Payloads: injected.Payloads[:1]}, &in); err != nil || in.InvoiceID != "inv_forged" {
		t.Fatalf("lenient decode: %+v %v", in, err)
	}

	// A summary is read into a string without the key.
	sum, _ := plainDC.ToPayload("Charge $90.00 to Visa")
	var s string
	if err := strict.FromPayload(sum, &s); err != nil || s != "Charge $90.00 to Visa" {
		t.Fatalf("summary: %q %v", s, err)
	}
	// What billflow writes round-trips, nil included.
	enc, err := strict.ToPayloads(&input{InvoiceID: "inv_1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var back *input
	var nothing *input
	if err := strict.FromPayloads(enc, &back, &nothing); err != nil || back.InvoiceID != "inv_1" || nothing != nil {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	one, err := strict.ToPayload(&input{InvoiceID: "inv_2"})
	if err != nil || string(one.Metadata[MetadataEncoding]) != EncodingName {
		t.Fatalf("struct payload not encrypted: %v", err)
	}
	if err := strict.FromPayload(one, &in); err != nil || in.InvoiceID != "inv_2" {
		t.Fatalf("encrypted lone payload: %+v %v", in, err)
	}
	// The codec endpoint decodes through Decode, which passes plaintext through.
	out, err := c.Decode([]*commonpb.Payload{sum})
	if err != nil || out[0] != sum {
		t.Fatalf("codec Decode must pass a plaintext summary through: %v", err)
	}
}

// Seal and Open are the envelope for data keys: bound to their AAD (the
// practice and key ID), tamper-evident, and opened only with the key that
// sealed them, current or old.
func TestSealOpenWrapsDataKeys(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{5}, 32), bytes.Repeat([]byte{6}, 32)
	old, err := New(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{9}, 32)
	id, sealed, err := old.Seal(secret, []byte("prac_a|d1"))
	if err != nil || id != KeyID(oldKey) || bytes.Contains(sealed, secret) {
		t.Fatalf("seal: %s %v", id, err)
	}
	rotated, _ := New(newKey, oldKey)
	if got, err := rotated.Open(id, sealed, []byte("prac_a|d1")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open with the old key among old keys: %v", err)
	}
	if rotated.CurrentKeyID() != KeyID(newKey) || !rotated.Has(id) {
		t.Fatal("current and old key IDs")
	}
	if _, err := rotated.Open(id, sealed, []byte("prac_b|d1")); err == nil {
		t.Fatal("opened under another practice's AAD")
	}
	newOnly, _ := New(newKey)
	if _, err := newOnly.Open(id, sealed, []byte("prac_a|d1")); err == nil {
		t.Fatal("opened without the sealing key")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := rotated.Open(id, sealed, []byte("prac_a|d1")); err == nil {
		t.Fatal("tampered envelope opened")
	}
}

// In a practice's namespace summaries are encrypted too: readable through
// the codec with the practice's key, ciphertext without it.
func TestPracticeConverterSealsSummaries(t *testing.T) {
	c, err := New(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	dc := PracticeDataConverter(c)
	sum, err := dc.ToPayload("INV-0001 · $120.00 due 2026-12-07")
	if err != nil {
		t.Fatal(err)
	}
	if string(sum.Metadata[MetadataEncoding]) != EncodingName || bytes.Contains(sum.Data, []byte("INV-0001")) {
		t.Fatalf("summary left in the clear: %q", sum.Metadata[MetadataEncoding])
	}
	var back string
	if err := dc.FromPayload(sum, &back); err != nil || back != "INV-0001 · $120.00 due 2026-12-07" {
		t.Fatalf("summary round trip: %q %v", back, err)
	}
	// Still strict: plaintext input is refused.
	plain, _ := converter.GetDefaultDataConverter().ToPayloads(map[string]string{"InvoiceID": "inv_forged"})
	var in map[string]string
	if err := dc.FromPayloads(plain, &in); !errors.Is(err, ErrPlaintext) {
		t.Fatalf("plaintext input accepted: %v", err)
	}
}
