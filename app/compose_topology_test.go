package app

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	tconfig "go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
)

// servicesRunning lists the compose services built from the Dockerfile that
// run `billflow <cmd>`, sorted.
func servicesRunning(cf composeFile, cmd string) []string {
	var out []string
	for name, s := range cf.Services {
		if s.Build != nil && len(s.Command) > 0 && s.Command[0] == cmd {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// oneShots are the services that run to completion; every other service is
// long-running and must have a healthcheck.
var oneShots = map[string]bool{"temporal-schema": true, "temporal-namespace": true, "migrate": true, "temporal-setup": true}

// A specific release: major.minor at least, optionally v-prefixed and with a
// suffix (15.17, v1.20.5, 1.32.1, 15.17-bookworm).
var pinnedTag = regexp.MustCompile(`^v?[0-9]+\.[0-9]+(\.[0-9]+)*(-[a-z0-9.]+)?$`)

func imageTag(image string) (repo, tag string) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return image, ""
	}
	return image[:i], image[i+1:]
}

// serverVersion is go.temporal.io/server's version in go.mod without the v:
// the Temporal images must be that release.
func serverVersion(t *testing.T) string {
	t.Helper()
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*go\.temporal\.io/server v([0-9]+\.[0-9]+\.[0-9]+)\s`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod does not require go.temporal.io/server")
	}
	return string(m[1])
}

func script(s composeService) string {
	return strings.Join(append(append([]string{}, s.Entrypoint...), s.Command...), " ")
}

// The compose topology is `make cluster`'s: Temporal's own server at the
// embedded version on Postgres persistence and Postgres visibility, schemas
// from the admin-tools of that version, two workers and two API replicas,
// every image pinned and every long-running service health-checked.
func TestDockerComposeTopology(t *testing.T) {
	cf := loadCompose(t)
	version := serverVersion(t)

	t.Run("images pinned", func(t *testing.T) {
		for name, s := range cf.Services {
			if s.Image == "" {
				if s.Build == nil {
					t.Errorf("%s has neither an image nor a build", name)
				}
				continue
			}
			repo, tag := imageTag(s.Image)
			if tag == "" || tag == "latest" || !pinnedTag.MatchString(tag) {
				t.Errorf("%s: image %q is not pinned to a release tag", name, s.Image)
			}
			if strings.HasPrefix(repo, "temporalio/") && repo != "temporalio/ui" && tag != version {
				t.Errorf("%s: %s, but go.mod has go.temporal.io/server v%s", name, s.Image, version)
			}
		}
	})

	t.Run("temporal server on postgres", func(t *testing.T) {
		tmp := cf.Services["temporal"]
		if tmp.Image != "temporalio/server:"+version {
			t.Fatalf("temporal image %q, want temporalio/server:%s (Temporal's own server, not auto-setup)", tmp.Image, version)
		}
		env := tmp.Environment
		for k, v := range env {
			if strings.Contains(strings.ToLower(k+v), "sqlite") {
				t.Errorf("temporal env %s=%s: SQLite", k, v)
			}
		}
		want := map[string]string{"DB": "postgres12", "POSTGRES_SEEDS": "postgres", "DB_PORT": "5432",
			"DBNAME": "temporal", "VISIBILITY_DBNAME": "temporal_visibility"}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("temporal env %s=%q, want %q", k, env[k], v)
			}
		}
		if strings.EqualFold(env["ENABLE_ES"], "true") {
			t.Error("temporal visibility on Elasticsearch; billflow's is SQL on Postgres")
		}
		if d := tmp.DependsOn["temporal-schema"].Condition; d != "service_completed_successfully" {
			t.Errorf("temporal starts before the schema is applied (depends_on temporal-schema: %q)", d)
		}
		if d := tmp.DependsOn["postgres"].Condition; d != "service_healthy" {
			t.Errorf("temporal depends_on postgres: %q", d)
		}

		// Render the config the server image renders (no config file: the
		// template embedded in temporal-server, from the environment) with
		// the very server version, and check what it persists to.
		for _, k := range []string{"ENABLE_ES", "SQL_TLS_ENABLED", "VISIBILITY_POSTGRES_SEEDS", "VISIBILITY_DB_PORT", "VISIBILITY_POSTGRES_USER", "VISIBILITY_POSTGRES_PWD"} {
			if _, set := env[k]; !set {
				t.Setenv(k, "")
			}
		}
		for k, v := range env {
			t.Setenv(k, v)
		}
		cfg, err := tconfig.Load(tconfig.WithEmbedded())
		if err != nil {
			t.Fatalf("temporal-server %s would not load its config from this environment: %v", version, err)
		}
		p := cfg.Persistence
		for store, db := range map[string]string{p.DefaultStore: "temporal", p.VisibilityStore: "temporal_visibility"} {
			ds, ok := p.DataStores[store]
			if !ok || ds.SQL == nil {
				t.Errorf("store %q is not SQL", store)
				continue
			}
			if ds.SQL.PluginName != "postgres12" || ds.SQL.DatabaseName != db || ds.SQL.ConnectAddr != "postgres:5432" {
				t.Errorf("store %q: plugin %q database %q at %q, want postgres12 %s at postgres:5432", store, ds.SQL.PluginName, ds.SQL.DatabaseName, ds.SQL.ConnectAddr, db)
			}
		}
		if p.NumHistoryShards < 1 {
			t.Errorf("numHistoryShards %d", p.NumHistoryShards)
		}

		// The dynamic config file the rendered config names must be mounted
		// (the image ships none and the server will not start without it)
		// from a file here that the server parses.
		if cfg.DynamicConfigClient == nil {
			t.Fatal("no dynamic config client")
		}
		mounted := ""
		for _, v := range tmp.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && parts[1] == cfg.DynamicConfigClient.Filepath {
				mounted = parts[0]
			}
		}
		if mounted == "" {
			t.Fatalf("dynamic config %s is not mounted into temporal", cfg.DynamicConfigClient.Filepath)
		}
		dc, err := os.ReadFile("../" + strings.TrimPrefix(mounted, "./"))
		if err != nil {
			t.Fatalf("dynamic config %s: %v", mounted, err)
		}
		if err := dynamicconfig.LoadYamlFile(dc).Err(); err != nil {
			t.Errorf("dynamic config %s: %v", mounted, err)
		}
	})

	t.Run("schema setup with the admin-tools of the server's version", func(t *testing.T) {
		s := cf.Services["temporal-schema"]
		if s.Image != "temporalio/admin-tools:"+version {
			t.Errorf("temporal-schema image %q, want temporalio/admin-tools:%s", s.Image, version)
		}
		sh := script(s)
		for _, want := range []string{"temporal-sql-tool", "--plugin postgres12", "--endpoint postgres",
			"--database temporal ", "--database temporal_visibility ", "create-database", "setup-schema -v 0.0",
			"update-schema --schema-name postgresql/v12/temporal", "update-schema --schema-name postgresql/v12/visibility"} {
			if !strings.Contains(sh, want) {
				t.Errorf("temporal-schema does not run %q: %s", want, sh)
			}
		}
		if d := s.DependsOn["postgres"].Condition; d != "service_healthy" {
			t.Errorf("temporal-schema depends_on postgres: %q", d)
		}
	})

	t.Run("namespace registered before billflow's setup", func(t *testing.T) {
		s := cf.Services["temporal-namespace"]
		if s.Image != "temporalio/admin-tools:"+version {
			t.Errorf("temporal-namespace image %q, want temporalio/admin-tools:%s", s.Image, version)
		}
		sh := script(s)
		if !strings.Contains(sh, "temporal operator namespace create --namespace default") {
			t.Errorf("temporal-namespace does not create the default namespace: %s", sh)
		}
		if s.Environment["TEMPORAL_ADDRESS"] != "temporal:7233" {
			t.Errorf("temporal-namespace TEMPORAL_ADDRESS %q", s.Environment["TEMPORAL_ADDRESS"])
		}
		if d := s.DependsOn["temporal"].Condition; d != "service_healthy" {
			t.Errorf("temporal-namespace depends_on temporal: %q", d)
		}
		setup := cf.Services["temporal-setup"]
		if setup.Command[0] != "temporal" || setup.Command[1] != "setup" {
			t.Errorf("temporal-setup runs %v", setup.Command)
		}
		if d := setup.DependsOn["temporal-namespace"].Condition; d != "service_completed_successfully" {
			t.Errorf("temporal-setup may run before the namespace exists (depends_on temporal-namespace: %q)", d)
		}
	})

	t.Run("one-shot scripts escape $ from compose", func(t *testing.T) {
		// Compose interpolates $NAME in commands from the host's environment;
		// a shell variable must be written $$NAME.
		bare := regexp.MustCompile(`(^|[^$])\$[A-Za-z_{(]`)
		for name, s := range cf.Services {
			for _, c := range append(append([]string{}, s.Entrypoint...), s.Command...) {
				if bare.MatchString(strings.ReplaceAll(c, "$$", "")) {
					t.Errorf("%s: command has a $ compose would substitute: %q", name, c)
				}
			}
		}
	})

	t.Run("healthchecks", func(t *testing.T) {
		for name, s := range cf.Services {
			if oneShots[name] {
				continue
			}
			h := s.Healthcheck
			if h == nil || h.Disable || len(h.Test) < 2 || h.Test[0] == "NONE" {
				t.Errorf("long-running service %s has no healthcheck", name)
			}
		}
		if h := cf.Services["postgres"].Healthcheck; h == nil || !strings.Contains(strings.Join(h.Test, " "), "pg_isready") {
			t.Error("postgres healthcheck is not pg_isready")
		}
		df, err := os.ReadFile("../Dockerfile")
		if err != nil {
			t.Fatal(err)
		}
		runtime := string(df[strings.LastIndex(string(df), "\nFROM "):])
		for _, name := range servicesRunning(cf, "api") {
			h := cf.Services[name].Healthcheck
			if h == nil {
				continue
			}
			test := strings.Join(h.Test, " ")
			if !strings.Contains(test, "/readyz") {
				t.Errorf("%s healthcheck does not ask /readyz: %s", name, test)
			}
			if tool := h.Test[1]; h.Test[0] == "CMD" && !regexp.MustCompile(`apt-get install[^\n]*\b`+regexp.QuoteMeta(tool)+`\b`).MatchString(runtime) {
				t.Errorf("%s healthcheck runs %s, which the Dockerfile's runtime image does not install", name, tool)
			}
		}
	})

	t.Run("start-up order", func(t *testing.T) {
		for _, name := range append(servicesRunning(cf, "api"), servicesRunning(cf, "worker")...) {
			d := cf.Services[name].DependsOn
			for dep, cond := range map[string]string{"migrate": "service_completed_successfully",
				"temporal-setup": "service_completed_successfully", "temporal": "service_healthy"} {
				if d[dep].Condition != cond {
					t.Errorf("%s depends_on %s: %q, want %s", name, dep, d[dep].Condition, cond)
				}
			}
		}
		if d := cf.Services["migrate"].DependsOn["postgres"].Condition; d != "service_healthy" {
			t.Errorf("migrate depends_on postgres: %q", d)
		}
	})

	t.Run("two workers and two API replicas", func(t *testing.T) {
		count := func(cmd string) int {
			n := 0
			for _, name := range servicesRunning(cf, cmd) {
				if r := cf.Services[name].Deploy.Replicas; r != nil {
					n += *r
				} else {
					n++
				}
			}
			return n
		}
		if n := count("worker"); n < 2 {
			t.Errorf("%d worker processes, want at least 2", n)
		}
		if n := count("api"); n < 2 {
			t.Errorf("%d API replicas, want at least 2", n)
		}
		hostPorts := map[string]string{}
		for _, name := range servicesRunning(cf, "api") {
			s := cf.Services[name]
			if len(s.Ports) != 1 || !strings.HasSuffix(s.Ports[0], ":8080") {
				t.Errorf("%s ports %v, want one host port to the container's 8080", name, s.Ports)
				continue
			}
			hp := strings.TrimSuffix(s.Ports[0], ":8080")
			if other, dup := hostPorts[hp]; dup {
				t.Errorf("%s and %s both publish %s", name, other, hp)
			}
			hostPorts[hp] = name
		}
	})
}
