// Package config loads billflow's configuration from the environment once, with
// documented defaults for development and one clear error line for anything
// missing or malformed in production.
package config

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/billflow/billflow/temporalclient"
)

// Config is every setting billflow reads. Production (BILLFLOW_ENV=production)
// requires the secrets; development fills in safe local defaults.
type Config struct {
	Env                  string        // "development" (default) or "production"
	DatabaseURL          string        // DATABASE_URL
	TemporalAddress      string        // TEMPORAL_ADDRESS, default 127.0.0.1:7233
	TemporalNamespace    string        // TEMPORAL_NAMESPACE, default "default"
	StripeSecretKey      string        // STRIPE_SECRET_KEY
	StripeAPIBase        string        // STRIPE_API_BASE, default Stripe's API
	StripePublishableKey string        // STRIPE_PUBLISHABLE_KEY (pay page, production)
	StripeWebhookSecret  string        // STRIPE_WEBHOOK_SECRET
	StripeTimeout        time.Duration // STRIPE_TIMEOUT per request, default 30s; an expired request's outcome is resolved by asking Stripe
	SMTPHost             string        // SMTP_HOST, default 127.0.0.1
	SMTPPort             int           // SMTP_PORT, default 1025
	SMTPUsername         string        // SMTP_USERNAME
	SMTPPassword         string        // SMTP_PASSWORD
	SMTPTLS              string        // SMTP_TLS: none|starttls|tls, default none
	MailFrom             string        // MAIL_FROM, default "billflow <billing@billflow.localhost>"
	PublicBaseURL        string        // PUBLIC_BASE_URL, default http://127.0.0.1:8080
	ChromiumPath         string        // CHROMIUM_PATH, default "": pdf picks chromium-headless-shell if installed, else /usr/bin/chromium
	HTTPAddr             string        // HTTP_ADDR, default 127.0.0.1:8080
	PayLinkSecret        []byte        // PAY_LINK_SECRET
	EncryptionKey        []byte        // TEMPORAL_ENCRYPTION_KEY (32 bytes, hex or base64); nil = payloads unencrypted
	EncryptionKeyID      string        // derived from the key so rotated keys are told apart
	EncryptionOldKeys    [][]byte      // TEMPORAL_ENCRYPTION_OLD_KEYS, comma-separated: still decrypt, never encrypt
	ReminderHour         int           // REMINDER_HOUR (0-23, practice-local cron runs daily at this UTC hour), default 9
	TemporalUIOrigin     string        // TEMPORAL_UI_ORIGIN for the codec endpoint's CORS, default http://127.0.0.1:8233
	WorkerCacheSize      int           // WORKER_CACHE_SIZE: invoice workflows a worker keeps in memory (sticky cache), default 2000
	TrustedProxies       []string      // TRUSTED_PROXIES: comma-separated IPs/CIDRs whose X-Forwarded-For is believed; default none (the peer address is the client)

	// Credentials to the Temporal frontend. Whoever reaches it can start,
	// signal and terminate invoices, so a cluster beyond this machine
	// should demand mTLS or an API key.
	TemporalTLS           bool   // TEMPORAL_TLS: dial the frontend over TLS; default false, implied true by any setting below
	TemporalTLSCA         string // TEMPORAL_TLS_CA: PEM file of the CA that signed the frontend's certificate; default the system roots
	TemporalTLSCert       string // TEMPORAL_TLS_CERT: PEM client certificate for mTLS; set with TEMPORAL_TLS_KEY
	TemporalTLSKey        string // TEMPORAL_TLS_KEY: PEM private key of TEMPORAL_TLS_CERT
	TemporalTLSServerName string // TEMPORAL_TLS_SERVER_NAME: name the frontend's certificate is verified against (and SNI); default the address's host
	TemporalAPIKey        string // TEMPORAL_API_KEY: sent as bearer credentials (Temporal Cloud API keys); needs TLS unless the address is loopback
}

// Production reports whether secrets are mandatory.
func (c *Config) Production() bool { return c.Env == "production" }

// devPayLinkSecret is only ever used outside production.
const devPayLinkSecret = "billflow-dev-pay-link-secret-not-for-production"

const defaultWorkerCacheSize = 2000

// WorkerCacheSize reads WORKER_CACHE_SIZE through getenv: how many workflows
// the worker keeps in its sticky cache (default 2000). Load reads it too; it
// is separate for a process that must size the SDK's process-wide cache
// before anything else in it creates a worker (billflow-dev, whose embedded
// Temporal server runs workers of its own).
func WorkerCacheSize(getenv func(string) string) (int, error) {
	v := strings.TrimSpace(getenv("WORKER_CACHE_SIZE"))
	if v == "" {
		return defaultWorkerCacheSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100000 {
		return 0, fmt.Errorf("WORKER_CACHE_SIZE must be 1-100000 workflows, got %q", v)
	}
	return n, nil
}

// Load reads the environment through getenv (os.Getenv when nil).
func Load(getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	c := &Config{
		Env:                  get("BILLFLOW_ENV", "development"),
		DatabaseURL:          get("DATABASE_URL", ""),
		TemporalAddress:      get("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		TemporalNamespace:    get("TEMPORAL_NAMESPACE", "default"),
		StripeSecretKey:      get("STRIPE_SECRET_KEY", ""),
		StripeAPIBase:        get("STRIPE_API_BASE", ""),
		StripePublishableKey: get("STRIPE_PUBLISHABLE_KEY", ""),
		StripeWebhookSecret:  get("STRIPE_WEBHOOK_SECRET", ""),
		SMTPHost:             get("SMTP_HOST", "127.0.0.1"),
		SMTPUsername:         get("SMTP_USERNAME", ""),
		SMTPPassword:         get("SMTP_PASSWORD", ""),
		SMTPTLS:              get("SMTP_TLS", "none"),
		MailFrom:             get("MAIL_FROM", "billflow <billing@billflow.localhost>"),
		PublicBaseURL:        strings.TrimRight(get("PUBLIC_BASE_URL", "http://127.0.0.1:8080"), "/"),
		ChromiumPath:         get("CHROMIUM_PATH", ""),
		HTTPAddr:             get("HTTP_ADDR", "127.0.0.1:8080"),
		TemporalUIOrigin:     get("TEMPORAL_UI_ORIGIN", "http://127.0.0.1:8233"),
	}
	var errs []error
	if c.Env != "development" && c.Env != "production" {
		errs = append(errs, fmt.Errorf("BILLFLOW_ENV must be development or production, got %q", c.Env))
	}
	port, err := strconv.Atoi(get("SMTP_PORT", "1025"))
	if err != nil || port < 1 || port > 65535 {
		errs = append(errs, fmt.Errorf("SMTP_PORT must be a port number 1-65535, got %q", getenv("SMTP_PORT")))
	}
	c.SMTPPort = port
	c.StripeTimeout, err = time.ParseDuration(get("STRIPE_TIMEOUT", "30s"))
	if err != nil || c.StripeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("STRIPE_TIMEOUT must be a positive duration such as 30s, got %q", getenv("STRIPE_TIMEOUT")))
	}
	hour, err := strconv.Atoi(get("REMINDER_HOUR", "9"))
	if err != nil || hour < 0 || hour > 23 {
		errs = append(errs, fmt.Errorf("REMINDER_HOUR must be 0-23, got %q", getenv("REMINDER_HOUR")))
	}
	c.ReminderHour = hour
	c.WorkerCacheSize, err = WorkerCacheSize(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range strings.Split(getenv("TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES must be comma-separated IP addresses or CIDRs, got %q", p))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	errs = append(errs, c.loadTemporalTLS(get)...)
	switch c.SMTPTLS {
	case "none", "starttls", "tls":
	default:
		errs = append(errs, fmt.Errorf("SMTP_TLS must be none, starttls or tls, got %q", c.SMTPTLS))
	}
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, errors.New("DATABASE_URL must be a postgres:// URL"))
		}
	}
	if u, err := url.Parse(c.PublicBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("PUBLIC_BASE_URL must be an http(s) URL, got %q", c.PublicBaseURL))
	}
	if c.StripeAPIBase != "" {
		if u, err := url.Parse(c.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("STRIPE_API_BASE must be an http(s) URL, got %q", c.StripeAPIBase))
		}
	}
	if s := getenv("PAY_LINK_SECRET"); s != "" {
		if len(s) < 32 {
			errs = append(errs, errors.New("PAY_LINK_SECRET must be at least 32 characters"))
		}
		c.PayLinkSecret = []byte(s)
	}
	if k := strings.TrimSpace(getenv("TEMPORAL_ENCRYPTION_KEY")); k != "" {
		key, err := decodeKey(k)
		if err != nil {
			errs = append(errs, err)
		} else {
			c.EncryptionKey = key
			sum := sha256.Sum256(key)
			c.EncryptionKeyID = "k" + hex.EncodeToString(sum[:4])
		}
	}
	for _, k := range strings.Split(getenv("TEMPORAL_ENCRYPTION_OLD_KEYS"), ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		key, err := decodeKey(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("TEMPORAL_ENCRYPTION_OLD_KEYS: %w", err))
			continue
		}
		c.EncryptionOldKeys = append(c.EncryptionOldKeys, key)
	}
	if c.Production() {
		for _, req := range []struct{ name, val string }{
			{"DATABASE_URL", c.DatabaseURL},
			{"STRIPE_SECRET_KEY", c.StripeSecretKey},
			{"STRIPE_WEBHOOK_SECRET", c.StripeWebhookSecret},
			{"PAY_LINK_SECRET", string(c.PayLinkSecret)},
			{"TEMPORAL_ENCRYPTION_KEY", string(c.EncryptionKey)},
			{"PUBLIC_BASE_URL", getenv("PUBLIC_BASE_URL")},
		} {
			if req.val == "" {
				errs = append(errs, fmt.Errorf("%s is required in production", req.name))
			}
		}
		errs = append(errs, c.sampleSecrets()...)
	} else if len(c.PayLinkSecret) == 0 {
		c.PayLinkSecret = []byte(devPayLinkSecret)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}

// loadTemporalTLS reads the credentials to the Temporal frontend, settles
// TemporalTLS from TEMPORAL_TLS and the others, and reads the files now, so
// a wrong path or a broken PEM stops start-up with one line instead of
// failing every dial.
func (c *Config) loadTemporalTLS(get func(k, def string) string) []error {
	c.TemporalTLSCA = get("TEMPORAL_TLS_CA", "")
	c.TemporalTLSCert = get("TEMPORAL_TLS_CERT", "")
	c.TemporalTLSKey = get("TEMPORAL_TLS_KEY", "")
	c.TemporalTLSServerName = get("TEMPORAL_TLS_SERVER_NAME", "")
	c.TemporalAPIKey = get("TEMPORAL_API_KEY", "")
	raw := get("TEMPORAL_TLS", "")
	var errs []error
	implied := c.TemporalTLSCA != "" || c.TemporalTLSCert != "" || c.TemporalTLSKey != "" || c.TemporalTLSServerName != ""
	switch strings.ToLower(raw) {
	case "":
		c.TemporalTLS = implied || c.TemporalAPIKey != ""
	case "true", "1", "yes":
		c.TemporalTLS = true
	case "false", "0", "no":
		if implied {
			errs = append(errs, errors.New("TEMPORAL_TLS=false contradicts the TEMPORAL_TLS_* settings given; unset it or them"))
		}
	default:
		errs = append(errs, fmt.Errorf("TEMPORAL_TLS must be true or false, got %q", raw))
	}
	if c.TemporalAPIKey != "" && !c.TemporalTLS && !temporalclient.IsLoopback(c.TemporalAddress) {
		// The key would cross the network in the clear.
		errs = append(errs, fmt.Errorf("TEMPORAL_API_KEY requires TLS to %s: unset TEMPORAL_TLS=false", c.TemporalAddress))
	}
	if (c.TemporalTLSCert == "") != (c.TemporalTLSKey == "") {
		errs = append(errs, errors.New("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together"))
		return errs
	}
	if len(errs) == 0 {
		if _, err := c.TemporalTLSConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// TemporalTLSConfig is the TLS configuration to dial the Temporal frontend
// with, or nil for plaintext. It reads the files again on every call, so a
// restarted process picks up renewed certificates.
func (c *Config) TemporalTLSConfig() (*tls.Config, error) {
	if !c.TemporalTLS {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TemporalTLSServerName}
	if c.TemporalTLSCA != "" {
		pem, err := os.ReadFile(c.TemporalTLSCA)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA: no PEM certificate in %s", c.TemporalTLSCA)
		}
	}
	if c.TemporalTLSCert != "" || c.TemporalTLSKey != "" {
		cert, err := tls.LoadX509KeyPair(c.TemporalTLSCert, c.TemporalTLSKey)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: load client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// sampleSecrets refuses, in production, the placeholder values shipped in
// examples: a deployment started with them runs with secrets anyone can read.
// A Stripe test-mode key (sk_test_…) is not refused: it cannot move money,
// and a demo against stripe-mock legitimately uses one.
func (c *Config) sampleSecrets() []error {
	var errs []error
	if k := c.EncryptionKey; len(k) > 0 && bytes.Count(k, k[:1]) == len(k) {
		errs = append(errs, errors.New("TEMPORAL_ENCRYPTION_KEY is a sample key (one byte repeated); generate one with `openssl rand -hex 32`"))
	}
	for _, s := range []struct{ name, val string }{
		{"STRIPE_SECRET_KEY", c.StripeSecretKey},
		{"STRIPE_WEBHOOK_SECRET", c.StripeWebhookSecret},
		{"PAY_LINK_SECRET", string(c.PayLinkSecret)},
	} {
		if strings.Contains(strings.ToLower(s.val), "replace") {
			errs = append(errs, fmt.Errorf("%s is a sample value (it says \"replace\"); set the real secret", s.name))
		}
	}
	return errs
}

// decodeKey accepts a 32-byte AES-256 key as 64 hex digits or standard base64.
func decodeKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("TEMPORAL_ENCRYPTION_KEY must be 32 bytes as 64 hex digits or base64")
}

// LogValue masks every secret when the configuration is logged.
func (c *Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return slog.GroupValue(
		slog.String("env", c.Env),
		slog.String("database_url", maskURL(c.DatabaseURL)),
		slog.String("temporal_address", c.TemporalAddress),
		slog.String("temporal_namespace", c.TemporalNamespace),
		slog.Bool("temporal_tls", c.TemporalTLS),
		slog.Bool("temporal_mtls", c.TemporalTLSCert != ""),
		slog.String("temporal_api_key", mask(c.TemporalAPIKey)),
		slog.String("stripe_secret_key", mask(c.StripeSecretKey)),
		slog.String("stripe_api_base", c.StripeAPIBase),
		slog.String("stripe_webhook_secret", mask(c.StripeWebhookSecret)),
		slog.String("smtp", fmt.Sprintf("%s:%d tls=%s", c.SMTPHost, c.SMTPPort, c.SMTPTLS)),
		slog.String("smtp_password", mask(c.SMTPPassword)),
		slog.String("public_base_url", c.PublicBaseURL),
		slog.String("http_addr", c.HTTPAddr),
		slog.Any("trusted_proxies", c.TrustedProxies),
		slog.Bool("payload_encryption", c.EncryptionKey != nil),
	)
}

func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return u.String()
}

// Ensure Config is loggable without leaking secrets.
var _ slog.LogValuer = (*Config)(nil)

// Durations shared by API and worker.
const (
	DefaultRefundWindow = 180 * 24 * time.Hour
)
