package paylink

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRoundTripExpiryAndForgery(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	exp := Expiry(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 30)
	if want := time.Date(2026, 12, 32, 0, 0, 0, 0, time.UTC); !exp.Equal(want) {
		t.Fatalf("expiry %v want %v", exp, want)
	}
	tok, err := New(secret, "inv_123", exp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(secret, tok, now)
	if err != nil || got.InvoiceID != "inv_123" {
		t.Fatalf("verify: %v %+v", err, got)
	}
	if _, err := Verify(secret, tok, exp); !errors.Is(err, ErrExpired) {
		t.Fatalf("want expired, got %v", err)
	}
	if _, err := Verify([]byte(strings.Repeat("x", 32)), tok, now); !errors.Is(err, ErrForged) {
		t.Fatalf("other secret: %v", err)
	}
	// Changing the invoice ID inside the token breaks the signature.
	parts := strings.Split(tok, ".")
	parts[1] = b64.EncodeToString([]byte("inv_999"))
	if _, err := Verify(secret, strings.Join(parts, "."), now); !errors.Is(err, ErrForged) {
		t.Fatalf("tampered: %v", err)
	}
	for _, bad := range []string{"", "pl1", "x.y.z.w.v", tok + "x"} {
		if _, err := Verify(secret, bad, now); !errors.Is(err, ErrForged) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if string(Hash(tok)) == tok || len(Hash(tok)) != 32 {
		t.Fatal("hash")
	}
}

func TestDerivedIsStableAndRecognised(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	exp := Expiry(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 30)
	a, err := Derived(secret, "inv_123", exp)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := Derived(secret, "inv_123", exp); a != b {
		t.Fatalf("not stable: %s %s", a, b)
	}
	tk, err := Verify(secret, a, now)
	if err != nil || tk.InvoiceID != "inv_123" {
		t.Fatalf("verify: %v %+v", err, tk)
	}
	if !IsDerived(secret, a, tk) {
		t.Fatal("a derived token is not recognised")
	}
	random, _ := New(secret, "inv_123", exp)
	rtk, _ := Verify(secret, random, now)
	if IsDerived(secret, random, rtk) {
		t.Fatal("a random token taken for a derived one")
	}
	if other, _ := Derived(secret, "inv_124", exp); other == a {
		t.Fatal("two invoices share a token")
	}
	if o, _ := Derived([]byte(strings.Repeat("x", 32)), "inv_123", exp); IsDerived(secret, o, tk) {
		t.Fatal("another secret's token recognised")
	}
}
