package devcluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TemporalOptions configure StartTemporal.
type TemporalOptions struct {
	// Dir holds the server's config file and log.
	Dir string
	// ServerBin and SQLToolBin are Temporal's own binaries, built from the
	// pinned go.temporal.io/server (the tools in go.mod): `go build -o bin/
	// go.temporal.io/server/cmd/server go.temporal.io/server/cmd/tools/sql`.
	ServerBin, SQLToolBin string
	// Postgres the server persists to: a role that may create databases.
	PGHost             string
	PGPort             int
	PGUser, PGPassword string
	// Namespace is registered if missing; default "default".
	Namespace string
	// Env is the server process's environment (default: this process's).
	Env []string
}

// Temporal is Temporal's server binary running as one process (all four
// services) with Postgres persistence and Postgres visibility: databases
// temporal and temporal_visibility, schemas applied with Temporal's own
// schema tool from the schemas it embeds.
type Temporal struct {
	*Proc
	opts     TemporalOptions
	Frontend string // host:port clients dial
}

// The databases and the embedded schemas the schema tool applies to them.
var temporalDatabases = []struct{ name, schema string }{
	{"temporal", "postgresql/v12/temporal"},
	{"temporal_visibility", "postgresql/v12/visibility"},
}

// StartTemporal applies the schemas (idempotently), writes the server's
// config with free loopback ports, starts the server and returns once its
// frontend answers and the namespace exists.
func StartTemporal(ctx context.Context, o TemporalOptions) (*Temporal, error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, db := range temporalDatabases {
		if err := applySchema(ctx, o, db.name, db.schema); err != nil {
			return nil, err
		}
	}
	ports, err := lowPorts(9)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(o.Dir, "temporal-server.yaml")
	if err := writeServerConfig(cfgPath, o, ports); err != nil {
		return nil, err
	}
	t := &Temporal{opts: o, Frontend: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Proc: NewProc("temporal-server", o.ServerBin, o.Dir, o.Env, "--config-file", cfgPath, "--allow-no-auth", "start")}
	if err := t.Start(); err != nil {
		return nil, err
	}
	if err := t.WaitServing(ctx); err != nil {
		t.Kill()
		return nil, err
	}
	return t, nil
}

// WaitServing waits (up to two minutes) until the frontend answers and the
// namespace is registered and readable, registering it if missing.
func (t *Temporal) WaitServing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last error
	for {
		if t.Exited() {
			return fmt.Errorf("temporal server exited; see %s", t.Log())
		}
		if last = t.ensureNamespace(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal server at %s not serving: %w (see %s)", t.Frontend, last, t.Log())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (t *Temporal) ensureNamespace(ctx context.Context) error {
	nc, err := client.NewNamespaceClient(client.Options{HostPort: t.Frontend})
	if err != nil {
		return err
	}
	defer nc.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := nc.Describe(cctx, t.opts.Namespace); err == nil {
		// Registered; usable once the frontend's namespace registry has
		// refreshed (up to 10 s after registering).
		c, err := client.Dial(client.Options{HostPort: t.Frontend, Namespace: t.opts.Namespace})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.OperatorService().ListSearchAttributes(cctx, &operatorservice.ListSearchAttributesRequest{Namespace: t.opts.Namespace})
		return err
	} else if !errors.As(err, new(*serviceerror.NamespaceNotFound)) {
		return err
	}
	err = nc.Register(cctx, &workflowservice.RegisterNamespaceRequest{Namespace: t.opts.Namespace,
		WorkflowExecutionRetentionPeriod: durationpb.New(7 * 24 * time.Hour)})
	if err != nil && !errors.As(err, new(*serviceerror.NamespaceAlreadyExists)) {
		return err
	}
	return errors.New("namespace registered; waiting for the frontend to see it")
}

// Restart stops the server abruptly (SIGKILL) and starts it again on the
// same ports and databases: what clients, workers and the API see when the
// Temporal cluster restarts.
func (t *Temporal) Restart(ctx context.Context) error {
	t.Kill()
	if err := t.Start(); err != nil {
		return err
	}
	return t.WaitServing(ctx)
}

// lowPorts finds n free loopback ports below 32768: Temporal's SQL
// persistence stores membership ports as smallint, and the kernel's
// ephemeral ports (what FreePort gets) start above that.
func lowPorts(n int) ([]int, error) {
	var out []int
	for p := 20000 + rand.IntN(10000); len(out) < n && p < 32768; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		out = append(out, p)
	}
	if len(out) < n {
		return nil, errors.New("no free ports below 32768 for the Temporal server")
	}
	return out, nil
}

// applySchema creates database db if missing and brings it to the newest
// version of the embedded schema, as Temporal's auto-setup does.
func applySchema(ctx context.Context, o TemporalOptions, db, schema string) error {
	base := []string{"--plugin", "postgres12", "--endpoint", o.PGHost, "--port", fmt.Sprint(o.PGPort),
		"--user", o.PGUser, "--password", o.PGPassword, "--database", db}
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, o.SQLToolBin, append(append([]string{}, base...), args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("create-database"); err != nil && !strings.Contains(out, "already exists") {
		return fmt.Errorf("create database %s: %w\n%s", db, err, out)
	}
	if out, err := run("setup-schema", "-v", "0.0"); err != nil {
		return fmt.Errorf("setup schema %s: %w\n%s", db, err, out)
	}
	if out, err := run("update-schema", "--schema-name", schema); err != nil {
		return fmt.Errorf("update schema %s: %w\n%s", db, err, out)
	}
	return nil
}

var serverConfig = template.Must(template.New("temporal").Parse(`# Written by billflow's devcluster: Temporal with Postgres persistence and visibility.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
{{- range $name, $db := .Stores}}
    {{$name}}:
      sql:
        pluginName: "postgres12"
        databaseName: "{{$db}}"
        connectAddr: "{{$.Host}}:{{$.Port}}"
        connectProtocol: "tcp"
        user: "{{$.User}}"
        password: "{{$.Password}}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: "1h"
{{- end}}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
services:
  frontend:
    rpc: {grpcPort: {{index .Ports 0}}, membershipPort: {{index .Ports 1}}, httpPort: {{index .Ports 2}}, bindOnIP: "127.0.0.1"}
  history:
    rpc: {grpcPort: {{index .Ports 3}}, membershipPort: {{index .Ports 4}}, bindOnIP: "127.0.0.1"}
  matching:
    rpc: {grpcPort: {{index .Ports 5}}, membershipPort: {{index .Ports 6}}, bindOnIP: "127.0.0.1"}
  worker:
    rpc: {grpcPort: {{index .Ports 7}}, membershipPort: {{index .Ports 8}}, bindOnIP: "127.0.0.1"}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:{{index .Ports 0}}"
      httpAddress: "127.0.0.1:{{index .Ports 2}}"
dcRedirectionPolicy:
  policy: "noop"
`))

func writeServerConfig(path string, o TemporalOptions, ports []int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = serverConfig.Execute(f, map[string]any{
		"Stores": map[string]string{"postgres-default": "temporal", "postgres-visibility": "temporal_visibility"},
		"Host":   o.PGHost, "Port": o.PGPort, "User": o.PGUser, "Password": o.PGPassword, "Ports": ports,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
