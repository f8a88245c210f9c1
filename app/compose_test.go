package app

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/billflow/billflow/config"
)

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Ports       []string `yaml:"ports"`
	Volumes     []string `yaml:"volumes"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
	Deploy struct {
		Replicas *int `yaml:"replicas"`
	} `yaml:"deploy"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	return cf
}

// composeVar is compose's ${NAME}, ${NAME:-default} or ${NAME:?message}.
var composeVar = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}`)

// substitute does what docker compose does with a .env: required variables
// take the values a user would set (random, like theirs), defaults apply.
// It reports which variables had to be set.
func substitute(t *testing.T, env map[string]string, dotenv map[string]string) (out map[string]string, required []string) {
	t.Helper()
	out = map[string]string{}
	for k, v := range env {
		out[k] = composeVar.ReplaceAllStringFunc(v, func(ref string) string {
			m := composeVar.FindStringSubmatch(ref)
			if val, ok := dotenv[m[1]]; ok {
				if m[2] == ":?" {
					required = append(required, m[1])
				}
				return val
			}
			switch m[2] {
			case ":-":
				return m[3]
			case ":?":
				t.Errorf("%s: compose would stop: %s", k, m[3])
			}
			return ""
		})
	}
	return out, required
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// No container engine runs here, so the compose file is checked for what can
// be checked: every service the app needs is there, and the app's services are
// built from the Dockerfile and wired to the others by the same variables the
// config reads, which a production config accepts once a .env like
// .env.example describes is filled in — and refuses with the samples such
// files used to carry. Temporal itself is not published beyond this machine.
func TestDockerComposeWiring(t *testing.T) {
	cf := loadCompose(t)
	for _, svc := range []string{"postgres", "temporal", "temporal-ui", "mailpit", "stripe-mock", "migrate", "temporal-setup"} {
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
	dotenv := map[string]string{
		"TEMPORAL_ENCRYPTION_KEY": randomHex(t, 32),
		"PAY_LINK_SECRET":         randomHex(t, 24),
		"STRIPE_WEBHOOK_SECRET":   "whsec_" + randomHex(t, 16),
	}
	example, err := os.ReadFile("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for name := range dotenv {
		if !regexp.MustCompile(`(?m)^` + name + `=$`).Match(example) {
			t.Errorf(".env.example does not list %s for the user to fill in", name)
		}
	}
	billflowServices := []string{"migrate", "temporal-setup"}
	billflowServices = append(billflowServices, servicesRunning(cf, "api")...)
	billflowServices = append(billflowServices, servicesRunning(cf, "worker")...)
	for _, name := range billflowServices {
		s := cf.Services[name]
		if s.Build == nil {
			t.Errorf("%s is not built from the Dockerfile", name)
		}
		env, required := substitute(t, s.Environment, dotenv)
		if len(required) != len(dotenv) {
			t.Errorf("%s: secrets must come from .env (${VAR:?...}); required: %v", name, required)
		}
		if _, err := config.Load(func(k string) string { return env[k] }); err != nil {
			t.Errorf("%s: production config rejected: %v", name, err)
		}
		if env["STRIPE_SECRET_KEY"] != "sk_test_123" {
			t.Errorf("%s: without a .env STRIPE_SECRET_KEY, stripe-mock's test key applies, got %q", name, env["STRIPE_SECRET_KEY"])
		}
		for variable, sample := range map[string]string{
			"TEMPORAL_ENCRYPTION_KEY": strings.Repeat("0", 64),
			"PAY_LINK_SECRET":         "replace-me-with-32-or-more-random-characters",
			"STRIPE_WEBHOOK_SECRET":   "whsec_replace_me",
		} {
			sampled := map[string]string{variable: sample}
			for k, v := range dotenv {
				if k != variable {
					sampled[k] = v
				}
			}
			withSample, _ := substitute(t, s.Environment, sampled)
			if _, err := config.Load(func(k string) string { return withSample[k] }); err == nil || !strings.Contains(err.Error(), variable+" is a sample") {
				t.Errorf("%s: sample %s accepted in production: %v", name, variable, err)
			}
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
	for name, svc := range cf.Services {
		for _, p := range svc.Ports {
			local := strings.HasPrefix(p, "127.0.0.1:")
			if strings.Contains(p, "7233") {
				t.Errorf("%s publishes Temporal's gRPC port (%q): it is reached on the compose network only", name, p)
			}
			if (name == "temporal" || name == "temporal-ui" || name == "mailpit" || name == "stripe-mock") && !local {
				t.Errorf("%s publishes %q beyond this machine; bind it to 127.0.0.1", name, p)
			}
		}
	}
	if got := cf.Services["temporal-ui"].Ports; len(got) != 1 || got[0] != "127.0.0.1:8233:8080" {
		t.Errorf("temporal-ui ports %v, want the UI on 127.0.0.1:8233 only", got)
	}
	if len(servicesRunning(cf, "api")) == 0 || len(servicesRunning(cf, "worker")) == 0 {
		t.Error("no service runs billflow api / billflow worker")
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
