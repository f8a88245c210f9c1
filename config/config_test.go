package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
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
		"TEMPORAL_ENCRYPTION_KEY": strings.Repeat("ab", 32)}
	c, err := Load(env(ok))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	if strings.Contains(buf.String(), "secretpw") || strings.Contains(buf.String(), "sk_live_x") {
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
