package app

import (
	"net/url"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/billflow/billflow/config"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   any               `yaml:"depends_on"`
	} `yaml:"services"`
}

// No container engine runs here, so the compose file is checked for what can
// be checked: every service the app needs is there, and the app's services are
// built from the Dockerfile and wired to the others by the same variables the
// config reads, which a production config accepts.
func TestDockerComposeWiring(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	for _, svc := range []string{"postgres", "temporal", "temporal-ui", "mailpit", "stripe-mock", "api", "worker", "migrate"} {
		if _, ok := cf.Services[svc]; !ok {
			t.Errorf("service %q missing", svc)
		}
	}
	if !strings.Contains(cf.Services["temporal"].Image, "temporal") {
		t.Errorf("temporal service image %q", cf.Services["temporal"].Image)
	}
	if cf.Services["temporal"].Environment["POSTGRES_SEEDS"] != "postgres" {
		t.Error("temporal is not backed by the postgres service")
	}
	hostOf := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("bad url %q", raw)
		}
		return u.Hostname()
	}
	for _, name := range []string{"api", "worker", "migrate"} {
		s := cf.Services[name]
		if s.Build == nil {
			t.Errorf("%s is not built from the Dockerfile", name)
		}
		env := s.Environment
		if _, err := config.Load(func(k string) string { return env[k] }); err != nil {
			t.Errorf("%s: production config rejected: %v", name, err)
		}
		if h := hostOf(env["DATABASE_URL"]); cf.Services[h].Image == "" {
			t.Errorf("%s: DATABASE_URL points at %q, not a service", name, h)
		}
		if h := strings.Split(env["TEMPORAL_ADDRESS"], ":")[0]; h != "temporal" {
			t.Errorf("%s: TEMPORAL_ADDRESS host %q", name, h)
		}
		if _, ok := cf.Services[env["SMTP_HOST"]]; !ok {
			t.Errorf("%s: SMTP_HOST %q is not a service", name, env["SMTP_HOST"])
		}
		if h := hostOf(env["STRIPE_API_BASE"]); h != "stripe-mock" {
			t.Errorf("%s: STRIPE_API_BASE host %q", name, h)
		}
	}
	if cf.Services["api"].Command[0] != "api" || cf.Services["worker"].Command[0] != "worker" {
		t.Error("api/worker commands wrong")
	}
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "./cmd/billflow") || strings.Contains(string(df), "billflow-dev") {
		t.Error("Dockerfile must build cmd/billflow and not the dev stack")
	}
	if _, err := os.Stat("../cmd/billflow/main.go"); err != nil {
		t.Error("cmd/billflow missing")
	}
}

func TestValidatePractice(t *testing.T) {
	if _, err := ValidatePractice(storeNP("", "usd", "UTC")); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := ValidatePractice(storeNP("Calm Minds", "xyz", "UTC")); err == nil {
		t.Error("bad currency accepted")
	}
	if _, err := ValidatePractice(storeNP("Calm Minds", "usd", "Mars/Base")); err == nil {
		t.Error("bad timezone accepted")
	}
	p, err := ValidatePractice(storeNP("  Calm Minds ", "EUR", "Europe/Berlin"))
	if err != nil || p.Name != "Calm Minds" || p.Currency != "eur" {
		t.Errorf("got %+v %v", p, err)
	}
}
