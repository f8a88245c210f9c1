// Package devtemporal runs a complete Temporal server (frontend, history,
// matching, worker) and optionally the Temporal UI inside the current process,
// backed by SQLite. The one-command dev stack uses it with a database file so
// invoices survive restarts; integration tests use it in memory so they need no
// external cluster. It follows what `temporal server start-dev` does.
package devtemporal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/common/primitives/timestamp"
	sqliteschema "go.temporal.io/server/schema/sqlite"

	"github.com/billflow/billflow/tenancy"
	"go.temporal.io/server/temporal"
)

const (
	defaultIP        = "127.0.0.1"
	defaultNamespace = "default"
	clusterName      = "active"

	// memoryRetention is short because an in-memory server dies with its test.
	memoryRetention = 24 * time.Hour
	// fileRetention keeps a week of closed invoice workflows in the dev UI.
	fileRetention = 7 * 24 * time.Hour

	readyTimeout = 2 * time.Minute
)

// Options configures Start. The zero value is a quiet in-memory server on a
// free port of 127.0.0.1 with namespace "default" and no UI.
type Options struct {
	// DBFile is the SQLite file; "" keeps everything in memory (tests).
	// The file is created with the schema on first use and reused afterwards.
	DBFile string
	// IP is where the frontend, the internal services and the UI listen;
	// default 127.0.0.1.
	IP string
	// FrontendPort is the gRPC port clients dial; 0 picks a free one.
	FrontendPort int
	// UIPort is the Temporal UI's HTTP port; 0 starts no UI.
	UIPort int
	// UICodecEndpoint is the remote codec the UI calls to decode payloads
	// (billflow's /codec endpoint); "" shows payloads as stored.
	UICodecEndpoint string
	// Namespace is created if missing; default "default".
	Namespace string
	// Logger receives the server's warnings and errors; nil discards them.
	Logger *slog.Logger
	// TLS, when set, serves the frontend over TLS; ClientCAs in it makes
	// that mTLS. Not with a UI.
	TLS *TLSOptions
	// APIKey, when set, makes the frontend refuse (Unauthenticated) calls
	// without "authorization: Bearer <APIKey>" metadata, as Temporal Cloud
	// does for a namespace with API keys. Requires TLS.
	APIKey string
}

// Server is a running embedded Temporal server. Stop it when done.
type Server struct {
	frontendAddr string
	httpAddr     string
	namespace    string
	uiURL        string

	server temporal.Server
	sec    *frontendSecurity
	ckpt   *checkpointer
	ui     *uiserver.Server
	uiDone chan struct{}

	logMuted atomic.Bool
	stopOnce sync.Once
	stopErr  error
}

// Start starts the server and returns once the frontend accepts client calls
// and opts.Namespace and tenancy.SearchAttributes exist, so callers can dial and start
// workflows at once. ctx bounds that wait; it does not stop the server later.
//
// The SQLite plugin of the server library keeps one connection per database
// open for the life of the process (its pool never closes them), so Stop does
// not release DBFile, and each in-memory server keeps its memory until the
// process exits. Sequential servers in one process work; each gets its own
// random in-memory database and its own ports.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.IP == "" {
		opts.IP = defaultIP
	}
	if opts.Namespace == "" {
		opts.Namespace = defaultNamespace
	}
	sec, err := newFrontendSecurity(opts)
	if err != nil {
		return nil, err
	}
	ports, err := pickPorts(opts)
	if err != nil {
		return nil, err
	}
	sqlConf, err := prepareDatabase(opts)
	if err != nil {
		return nil, err
	}
	conf := serverConfig(opts, ports, sqlConf)

	s := &Server{
		frontendAddr: hostPort(opts.IP, ports.frontend),
		httpAddr:     hostPort(opts.IP, ports.frontendHTTP),
		namespace:    opts.Namespace,
		sec:          sec,
	}
	logger := log.Logger(log.NewNoopLogger())
	if opts.Logger != nil {
		logger = serverLogger{log: opts.Logger, muted: &s.logMuted}
	}
	if opts.UIPort != 0 {
		// The UI server exits the whole process when it cannot listen, so a
		// taken port must be caught here.
		if err := checkPortFree(opts.IP, opts.UIPort); err != nil {
			return nil, fmt.Errorf("temporal UI port %d: %w", opts.UIPort, err)
		}
		s.uiURL = "http://" + hostPort(opts.IP, opts.UIPort)
	}

	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("temporal authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("temporal claim mapper: %w", err)
	}
	serverOpts := []temporal.ServerOption{
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(map[primitives.ServiceName]static.Hosts{
			primitives.FrontendService: static.SingleLocalHost(hostPort(opts.IP, ports.frontend)),
			primitives.HistoryService:  static.SingleLocalHost(hostPort(opts.IP, ports.history)),
			primitives.MatchingService: static.SingleLocalHost(hostPort(opts.IP, ports.matching)),
			primitives.WorkerService:   static.SingleLocalHost(hostPort(opts.IP, ports.worker)),
		}),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicConfig()),
	}
	if sec != nil {
		serverOpts = append(serverOpts, temporal.WithTLSConfigFactory(sec.provider))
		if opts.APIKey != "" {
			serverOpts = append(serverOpts, temporal.WithChainedFrontendGrpcInterceptors(sec.apiKeyInterceptor(opts.APIKey)))
		}
	}
	s.server, err = temporal.NewServer(serverOpts...)
	if err != nil {
		return nil, fmt.Errorf("create temporal server: %w", err)
	}
	if err := s.server.Start(); err != nil {
		return nil, fmt.Errorf("start temporal server: %w", err)
	}
	if opts.DBFile != "" {
		conn, err := openServerConn(sqlConf)
		if err != nil {
			return nil, errors.Join(err, s.Stop())
		}
		if s.ckpt, err = startCheckpointer(opts.DBFile, opts.Logger, conn); err != nil {
			return nil, errors.Join(err, conn.Close(), s.Stop())
		}
	}
	if s.uiURL != "" {
		// Built only now: the UI dials the frontend as it is created, and a
		// refused first attempt leaves its connection in backoff, failing
		// the UI's first requests.
		s.ui = newUI(opts, s.frontendAddr)
		s.uiDone = make(chan struct{})
		go func() {
			defer close(s.uiDone)
			_ = s.ui.Start() // returns nil once Stop closes it
		}()
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, errors.Join(err, s.Stop())
	}
	return s, nil
}

// FrontendAddress is the host:port SDK clients dial.
func (s *Server) FrontendAddress() string { return s.frontendAddr }

// FrontendHTTPAddress is the host:port of the frontend's HTTP API.
func (s *Server) FrontendHTTPAddress() string { return s.httpAddr }

// Namespace is the namespace Start made sure exists.
func (s *Server) Namespace() string { return s.namespace }

// UIURL is the Temporal UI's base URL, or "" when Options.UIPort was 0.
func (s *Server) UIURL() string { return s.uiURL }

// Stop stops the UI, then the server. Later calls return the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.logMuted.Store(true)
		if s.ui != nil {
			s.ui.Stop()
			<-s.uiDone
		}
		if s.server != nil {
			if err := s.server.Stop(); err != nil {
				s.stopErr = fmt.Errorf("stop temporal server: %w", err)
			}
		}
		if s.ckpt != nil {
			if err := s.ckpt.close(); err != nil {
				s.stopErr = errors.Join(s.stopErr, fmt.Errorf("checkpoint temporal database: %w", err))
			}
		}
	})
	return s.stopErr
}

// waitReady dials the frontend as a client would, waits for the namespace and
// registers the search attributes (a no-op when the namespace was created with
// them), then waits until the UI answers API calls through to the frontend.
func (s *Server) waitReady(ctx context.Context) error {
	// A server that is not up in this long is stuck; without a bound a
	// caller passing context.Background() would hang forever.
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	opts := client.Options{
		HostPort:  s.frontendAddr,
		Namespace: s.namespace,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	}
	if s.sec != nil {
		opts.ConnectionOptions.TLS = s.sec.client
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("dial temporal frontend %s: %w", s.frontendAddr, err)
	}
	defer c.Close()

	err = poll(ctx, func() error {
		_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.namespace})
		return err
	})
	if err != nil {
		return fmt.Errorf("wait for namespace %s: %w", s.namespace, err)
	}
	if err := tenancy.RegisterSearchAttributes(ctx, c, s.namespace); err != nil {
		return err
	}
	if s.ui != nil {
		err = poll(ctx, func() error {
			// The UI's API proxies to the frontend, so success here means
			// the UI is wired to it, not just listening.
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.uiURL+"/api/v1/namespaces/"+url.PathEscape(s.namespace), nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s", resp.Status)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("wait for temporal UI at %s: %w", s.uiURL, err)
		}
	}
	return nil
}

// poll retries f every 50ms until it succeeds or ctx ends, returning f's last error.
func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type ports struct {
	frontend, frontendHTTP, history, matching, worker int
}

// pickPorts gives every service its own port: with fixed ports a second server
// in the same test process would collide with the first one's TIME_WAIT
// sockets or a parallel test's listeners.
func pickPorts(opts Options) (ports, error) {
	p := ports{frontend: opts.FrontendPort}
	for _, dst := range []*int{&p.frontend, &p.frontendHTTP, &p.history, &p.matching, &p.worker} {
		if *dst != 0 {
			continue
		}
		port, err := FreePort(opts.IP)
		if err != nil {
			return ports{}, err
		}
		*dst = port
	}
	return p, nil
}

// prepareDatabase returns the SQLite config and makes sure the schema and the
// namespace exist. The namespace is written straight into the database before
// the server starts, as start-dev does: registered through the API it would
// only become usable after the namespace cache refreshes.
func prepareDatabase(opts Options) (*config.SQL, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	retention := memoryRetention
	if opts.DBFile == "" {
		// A random name gives each in-memory server its own database; the
		// plugin creates the schema for memory databases itself.
		conf.DatabaseName = "devtemporal-" + strconv.FormatUint(rand.Uint64(), 36)
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
	} else {
		retention = fileRetention
		conf.DatabaseName = opts.DBFile
		conf.ConnectAttributes = fileConnectAttributes()
		info, err := os.Stat(opts.DBFile)
		switch {
		case errors.Is(err, os.ErrNotExist) || (err == nil && info.Size() == 0):
			if _, err := os.Stat(filepath.Dir(opts.DBFile)); err != nil {
				return nil, fmt.Errorf("temporal database directory: %w", err)
			}
			if err := sqliteschema.SetupSchema(conf); err != nil {
				return nil, fmt.Errorf("create temporal schema in %s: %w", opts.DBFile, err)
			}
		case err != nil:
			return nil, fmt.Errorf("temporal database: %w", err)
		}
	}

	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, tenancy.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("namespace %s config: %w", opts.Namespace, err)
	}
	ns.Detail.Config.Retention = timestamp.DurationPtr(retention)
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", opts.Namespace, err)
	}
	if err := pruneVisibilityIndexes(conf); err != nil {
		return nil, err
	}
	return conf, nil
}

// fileConnectAttributes are the SQLite settings of a database file, for the
// server's connection and the checkpointer's.
func fileConnectAttributes() map[string]string {
	return map[string]string{
		"mode": "rwc",
		// WAL lets readers proceed during a write; NORMAL skips the fsync
		// per commit, which is safe with WAL (only the last commits can be
		// lost on power failure, never integrity) and makes the dev server
		// several times faster.
		"journal_mode": "wal",
		"synchronous":  "NORMAL",
		"busy_timeout": "5000",
		// The checkpointer (checkpoint.go) checkpoints instead, off the
		// server's connection.
		"wal_autocheckpoint": "0",
		// The WAL file left after the checkpointer resets the WAL.
		"journal_size_limit": strconv.Itoa(walSizeLimit),
	}
}

func serverConfig(opts Options, p ports, sqlConf *config.SQL) *config.Config {
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = opts.IP
	// Metrics stay off (nil config): a Prometheus listener per test server
	// would only add ports and goroutines.

	conf.Persistence.DefaultStore = "sqlite"
	conf.Persistence.VisibilityStore = "sqlite"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sqlConf}}

	conf.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             hostPort(opts.IP, p.frontend),
				HTTPAddress:            hostPort(opts.IP, p.frontendHTTP),
				// Fresh per boot like start-dev: the first boot persists
				// the cluster metadata and the stored row wins afterwards.
				ClusterID: uuid.NewString(),
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"

	service := func(port int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: port, BindOnIP: opts.IP}}
	}
	frontend := service(p.frontend)
	frontend.RPC.HTTPPort = p.frontendHTTP
	conf.Services = map[string]config.Service{
		string(primitives.FrontendService): frontend,
		string(primitives.HistoryService):  service(p.history),
		string(primitives.MatchingService): service(p.matching),
		string(primitives.WorkerService):   service(p.worker),
	}

	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = hostPort(opts.IP, p.frontend)
	return &conf
}

// dynamicConfig mirrors start-dev's settings plus what billflow relies on.
func dynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		// Mutable states the history service keeps in memory. start-dev
		// keeps 8096; on a dev stack that has taken thousands of invoices
		// they were ~70 MB of live heap, and every GC cycle marks all of
		// it. 2048 still covers a burst of 1,000 payments.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 2048,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// Task processors: 512 goroutines each by default, sized for
		// clusters. One shard on a laptop needs a few; every idle one is a
		// stack each GC cycle scans.
		dynamicconfig.TimerProcessorSchedulerWorkerCount.Key():      32,
		dynamicconfig.TransferProcessorSchedulerWorkerCount.Key():   32,
		dynamicconfig.VisibilityProcessorSchedulerWorkerCount.Key(): 32,
		dynamicconfig.ArchivalProcessorSchedulerWorkerCount.Key():   4,
		// Pay is an Update; these are on by default in v1.32 but billflow
		// must not depend on a default flipping.
		dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key():              true,
		dynamicconfig.FrontendEnableUpdateWorkflowExecutionAsyncAccepted.Key(): true,
		// Not ForceSearchAttributesCacheRefreshOnRead (start-dev sets it):
		// with SQL visibility every custom search attribute is a
		// pre-allocated column, and adding one only writes an alias into
		// the namespace, so the cluster metadata that cache holds never
		// changes. Forced, every upsert, validation and visibility write
		// re-read it from SQLite under one process-wide mutex.
		// An activity scheduled by a workflow task goes straight back to the
		// worker that completed it (the charge right after a pay Update).
		dynamicconfig.EnableActivityEagerExecution.Key(): true,
	}
}

func newUI(opts Options, frontendAddr string) *uiserver.Server {
	return uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host:                uiHost(opts.IP),
		Port:                opts.UIPort,
		TemporalGRPCAddress: frontendAddr,
		EnableUI:            true,
		DefaultNamespace:    opts.Namespace,
		Codec:               uiconfig.Codec{Endpoint: opts.UICodecEndpoint},
		// Plain HTTP on localhost: a Secure CSRF cookie would never be sent.
		CORS:             uiconfig.CORS{CookieInsecure: true},
		HideLogs:         true,
		DisableNewsFetch: true,
	}))
}

// uiHost brackets an IPv6 address: the UI server joins host and port with a
// plain colon.
func uiHost(ip string) string {
	if addr := net.ParseIP(ip); addr != nil && addr.To4() == nil {
		return "[" + ip + "]"
	}
	return ip
}

func hostPort(ip string, port int) string {
	return net.JoinHostPort(ip, strconv.Itoa(port))
}
