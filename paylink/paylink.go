// Package paylink makes and checks the signed, expiring, single-invoice
// tokens in "Pay Invoice" links. A token names its invoice and expiry and is
// signed with PAY_LINK_SECRET; the database keeps only its hash, so a link can
// be revoked (void) and a leaked database reveals no usable link.
package paylink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors of Verify: a forged token is indistinguishable from an unknown one.
var (
	ErrForged  = errors.New("pay link is not valid")
	ErrExpired = errors.New("pay link has expired")
)

const prefix = "pl1"

var b64 = base64.RawURLEncoding

// Token is a decoded, signature-checked link.
type Token struct {
	InvoiceID string
	ExpiresAt time.Time
}

// New signs a token for one invoice that expires at exp.
func New(secret []byte, invoiceID string, exp time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("paylink: no secret")
	}
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	body := strings.Join([]string{prefix, b64.EncodeToString([]byte(invoiceID)), strconv.FormatInt(exp.Unix(), 36), b64.EncodeToString(nonce)}, ".")
	return body + "." + b64.EncodeToString(sign(secret, body)), nil
}

// Derived is the one token for an invoice and expiry that New would make
// with a nonce derived from the secret instead of a random one: the same
// arguments give the same token, so a link can be shown again (GET
// /v1/invoices/{id} pay_url) without storing anything. It needs no stored
// hash either (IsDerived recognises it); it dies with its expiry or when the
// invoice is voided.
func Derived(secret []byte, invoiceID string, exp time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("paylink: no secret")
	}
	nonce := sign(secret, "derived\x00"+invoiceID+"\x00"+strconv.FormatInt(exp.Unix(), 36))[:12]
	body := strings.Join([]string{prefix, b64.EncodeToString([]byte(invoiceID)), strconv.FormatInt(exp.Unix(), 36), b64.EncodeToString(nonce)}, ".")
	return body + "." + b64.EncodeToString(sign(secret, body)), nil
}

// IsDerived says whether tok, verified as t, is the token Derived makes
// for t's invoice and expiry.
func IsDerived(secret []byte, tok string, t *Token) bool {
	if t == nil {
		return false
	}
	want, err := Derived(secret, t.InvoiceID, t.ExpiresAt)
	return err == nil && hmac.Equal([]byte(want), []byte(tok))
}

func sign(secret []byte, body string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// Verify checks the signature and expiry (against now). Revocation is the
// store's: a valid token whose hash is unknown or revoked is dead too.
func Verify(secret []byte, tok string, now time.Time) (*Token, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 5 || parts[0] != prefix {
		return nil, ErrForged
	}
	body := strings.Join(parts[:4], ".")
	sig, err := b64.DecodeString(parts[4])
	if err != nil || !hmac.Equal(sig, sign(secret, body)) {
		return nil, ErrForged
	}
	id, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, ErrForged
	}
	exp, err := strconv.ParseInt(parts[2], 36, 64)
	if err != nil {
		return nil, ErrForged
	}
	t := &Token{InvoiceID: string(id), ExpiresAt: time.Unix(exp, 0).UTC()}
	if !now.Before(t.ExpiresAt) {
		return t, ErrExpired
	}
	return t, nil
}

// Hash is what the database stores for a token.
func Hash(tok string) []byte {
	s := sha256.Sum256([]byte(tok))
	return s[:]
}

// Expiry is the end of the day daysAfterDue days after the due date.
func Expiry(due time.Time, daysAfterDue int) time.Time {
	d := time.Date(due.Year(), due.Month(), due.Day(), 0, 0, 0, 0, time.UTC)
	return d.AddDate(0, 0, daysAfterDue+1)
}

// URL is the hosted pay page of a token.
func URL(base, tok string) string { return fmt.Sprintf("%s/pay/%s", strings.TrimRight(base, "/"), tok) }
