package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.TemporalAddress != "127.0.0.1:7233" || c.SMTPPort != 1025 || c.HTTPAddr != "127.0.0.1:8080" || len(c.PayLinkSecret) == 0 {
		t.Fatalf("bad defaults: %+v", c)
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil || len(c.TrustedProxies) != 0 {
		t.Fatalf("default: %v %v, want none trusted", c.TrustedProxies, err)
	}
	c, err = Load(env(map[string]string{"TRUSTED_PROXIES": " 10.0.0.0/8 ,192.0.2.1,, 2001:db8::/32"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.TrustedProxies, " "); got != "10.0.0.0/8 192.0.2.1 2001:db8::/32" {
		t.Fatalf("got %q", got)
	}
}

func TestMalformed(t *testing.T) {
	_, err := Load(env(map[string]string{"SMTP_PORT": "abc", "SMTP_TLS": "ssl", "DATABASE_URL": "mysql://x", "TEMPORAL_ENCRYPTION_KEY": "short", "WORKER_CACHE_SIZE": "0",
		"TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"}))
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"SMTP_PORT", "SMTP_TLS", "DATABASE_URL", "TEMPORAL_ENCRYPTION_KEY", "WORKER_CACHE_SIZE", `TRUSTED_PROXIES must be comma-separated IP addresses or CIDRs, got "proxy.internal"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestProductionRequiresSecrets(t *testing.T) {
	_, err := Load(env(map[string]string{"BILLFLOW_ENV": "production"}))
	if err == nil || !strings.Contains(err.Error(), "STRIPE_SECRET_KEY is required in production") || !strings.Contains(err.Error(), "DATABASE_URL is required") {
		t.Fatalf("got %v", err)
	}
	ok := map[string]string{"BILLFLOW_ENV": "production", "DATABASE_URL": "postgres://u:secretpw@db/x", "STRIPE_SECRET_KEY": "sk_live_x",
		"STRIPE_WEBHOOK_SECRET": "whsec_x", "PAY_LINK_SECRET": strings.Repeat("s", 40), "PUBLIC_BASE_URL": "https://bill.example",
		"TEMPORAL_ENCRYPTION_KEY": strings.Repeat("0123456789abcdef", 4), "TEMPORAL_API_KEY": "tmprl_apikey_secret"}
	c, err := Load(env(ok))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	if strings.Contains(buf.String(), "secretpw") || strings.Contains(buf.String(), "sk_live_x") || strings.Contains(buf.String(), "tmprl_apikey_secret") {
		t.Fatalf("secret leaked in log: %s", buf.String())
	}
}

func TestWorkerCacheSize(t *testing.T) {
	for _, tc := range []struct {
		v       string
		want    int
		wantErr bool
	}{{"", 2000, false}, {" 500 ", 500, false}, {"100000", 100000, false}, {"0", 0, true}, {"100001", 0, true}, {"lots", 0, true}} {
		n, err := WorkerCacheSize(env(map[string]string{"WORKER_CACHE_SIZE": tc.v}))
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "WORKER_CACHE_SIZE must be 1-100000") {
				t.Errorf("%q: got %d, %v; want an error", tc.v, n, err)
			}
			continue
		}
		if err != nil || n != tc.want {
			t.Errorf("%q: got %d, %v; want %d", tc.v, n, err, tc.want)
		}
		c, err := Load(env(map[string]string{"WORKER_CACHE_SIZE": tc.v}))
		if err != nil || c.WorkerCacheSize != tc.want {
			t.Errorf("Load with %q: got %v, %v; want %d", tc.v, c, err, tc.want)
		}
	}
}

// The sample secrets compose files and docs once carried are refused in
// production, each naming its variable; a Stripe test-mode key is not.
func TestProductionRefusesSampleSecrets(t *testing.T) {
	base := map[string]string{"BILLFLOW_ENV": "production", "DATABASE_URL": "postgres://u:p@db/x", "STRIPE_SECRET_KEY": "sk_test_123",
		"STRIPE_WEBHOOK_SECRET": "whsec_3kT9q", "PAY_LINK_SECRET": strings.Repeat("k9", 20), "PUBLIC_BASE_URL": "https://bill.example",
		"TEMPORAL_ENCRYPTION_KEY": strings.Repeat("0123456789abcdef", 4)}
	if _, err := Load(env(base)); err != nil {
		t.Fatalf("a test-mode Stripe key must be accepted: %v", err)
	}
	for variable, sample := range map[string]string{
		"TEMPORAL_ENCRYPTION_KEY": strings.Repeat("00", 32),
		"PAY_LINK_SECRET":         "replace-me-with-32-or-more-random-characters",
		"STRIPE_WEBHOOK_SECRET":   "whsec_replace_me",
		"STRIPE_SECRET_KEY":       "sk_live_REPLACE_ME",
	} {
		e := map[string]string{}
		for k, v := range base {
			e[k] = v
		}
		e[variable] = sample
		if _, err := Load(env(e)); err == nil || !strings.Contains(err.Error(), variable+" is a sample") {
			t.Errorf("%s=%s: got %v", variable, sample, err)
		}
	}
	// Development takes them: the dev stack and tests use fixed keys.
	if _, err := Load(env(map[string]string{"TEMPORAL_ENCRYPTION_KEY": strings.Repeat("00", 32)})); err != nil {
		t.Errorf("development: %v", err)
	}
	// A key of one byte repeated, in base64 too.
	e := map[string]string{}
	for k, v := range base {
		e[k] = v
	}
	e["TEMPORAL_ENCRYPTION_KEY"] = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
	if _, err := Load(env(e)); err == nil || !strings.Contains(err.Error(), "TEMPORAL_ENCRYPTION_KEY is a sample key") {
		t.Errorf("base64 repeated key: %v", err)
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "billflow"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTemporalTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := Load(env(nil))
	if err != nil || c.TemporalTLS {
		t.Fatalf("default must be plaintext: %v %v", c.TemporalTLS, err)
	}
	if tc, err := c.TemporalTLSConfig(); tc != nil || err != nil {
		t.Fatalf("plaintext TLS config: %v %v", tc, err)
	}

	c, err = Load(env(map[string]string{"TEMPORAL_TLS_CA": cert, "TEMPORAL_TLS_CERT": cert, "TEMPORAL_TLS_KEY": key,
		"TEMPORAL_TLS_SERVER_NAME": "temporal.internal"}))
	if err != nil || !c.TemporalTLS {
		t.Fatalf("TLS files imply TLS: %v %v", c, err)
	}
	tc, err := c.TemporalTLSConfig()
	if err != nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "temporal.internal" {
		t.Fatalf("TLS config: %+v %v", tc, err)
	}
	c, err = Load(env(map[string]string{"TEMPORAL_TLS": "true"}))
	if tc, _ := c.TemporalTLSConfig(); err != nil || tc == nil || tc.RootCAs != nil {
		t.Fatalf("TEMPORAL_TLS=true alone verifies against the system roots: %v %v", tc, err)
	}
	c, err = Load(env(map[string]string{"TEMPORAL_ADDRESS": "billing.tmprl.cloud:7233", "TEMPORAL_API_KEY": "k"}))
	if err != nil || !c.TemporalTLS {
		t.Fatalf("an API key implies TLS: %v", err)
	}
	c, err = Load(env(map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:7233", "TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "false"}))
	if err != nil || c.TemporalTLS {
		t.Fatalf("an API key may go to a loopback address in plaintext: %v", err)
	}

	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TEMPORAL_ADDRESS": "temporal.internal:7233", "TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "false"},
			"TEMPORAL_API_KEY requires TLS to temporal.internal:7233"},
		{map[string]string{"TEMPORAL_TLS": "maybe"}, `TEMPORAL_TLS must be true or false, got "maybe"`},
		{map[string]string{"TEMPORAL_TLS": "false", "TEMPORAL_TLS_CA": cert}, "TEMPORAL_TLS=false contradicts"},
		{map[string]string{"TEMPORAL_TLS_CERT": cert}, "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together"},
		{map[string]string{"TEMPORAL_TLS_KEY": key}, "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together"},
		{map[string]string{"TEMPORAL_TLS_CA": filepath.Join(dir, "missing.pem")}, "TEMPORAL_TLS_CA: open"},
		{map[string]string{"TEMPORAL_TLS_CA": notPEM}, "TEMPORAL_TLS_CA: no PEM certificate in"},
		{map[string]string{"TEMPORAL_TLS_CERT": cert, "TEMPORAL_TLS_KEY": notPEM}, "TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: load client certificate"},
		{map[string]string{"TEMPORAL_TLS_CERT": key, "TEMPORAL_TLS_KEY": cert}, "TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: load client certificate"},
	} {
		_, err := Load(env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.env, err, tc.want)
		} else if strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("%v: want one line, got %q", tc.env, err)
		}
	}
}
