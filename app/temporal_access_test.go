package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/internal/devtemporal"
	"github.com/billflow/billflow/temporalclient"
)

// testCA is a throwaway certificate authority whose certificates are also
// written as PEM files, for the TEMPORAL_TLS_* settings.
type testCA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{dir: t.TempDir(), cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.file = writePEM(t, ca.dir, name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

// issue signs a leaf: a server certificate for 127.0.0.1 or a client one.
// It returns the pair and the PEM files of certificate and key.
func (ca *testCA) issue(t *testing.T, name string, server bool) (pair tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"temporal.test"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile = writePEM(t, ca.dir, name+".pem", "CERTIFICATE", der)
	keyFile = writePEM(t, ca.dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	return pair, certFile, keyFile
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return path
}

// dialEnv loads a development config from env and dials through Dial, the
// path the API and the worker take. Failing dials are bounded by a short
// context, as temporalclient retries transient errors.
func dialEnv(t *testing.T, env map[string]string) (client.Client, error) {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// Billflow dials a frontend that demands client certificates with the
// TEMPORAL_TLS_* files, and is refused without a certificate or when it
// trusts another CA. The same server then shows that a strict worker never
// runs plaintext input and that failure messages rest encrypted.
func TestTemporalMTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	ca := newTestCA(t, "billflow-test")
	serverPair, _, _ := ca.issue(t, "frontend", true)
	_, clientCert, clientKey := ca.issue(t, "billflow-worker", false)
	otherCA := newTestCA(t, "other")
	_, otherCert, otherKey := otherCA.issue(t, "stranger", false)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := devtemporal.Start(ctx, devtemporal.Options{TLS: &devtemporal.TLSOptions{
		Certificate: serverPair, RootCAs: ca.pool, ClientCAs: ca.pool}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	addr := srv.FrontendAddress()

	mtls := map[string]string{"TEMPORAL_ADDRESS": addr, "TEMPORAL_TLS_CA": ca.file,
		"TEMPORAL_TLS_CERT": clientCert, "TEMPORAL_TLS_KEY": clientKey}
	with := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range mtls {
			env[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(env, k)
			} else {
				env[k] = v
			}
		}
		return env
	}

	t.Run("client certificate accepted", func(t *testing.T) {
		c, err := dialEnv(t, mtls)
		require.NoError(t, err)
		_, err = c.CheckHealth(context.Background(), nil)
		require.NoError(t, err)
	})
	t.Run("verified by server name", func(t *testing.T) {
		_, err := dialEnv(t, with(map[string]string{"TEMPORAL_TLS_SERVER_NAME": "temporal.test"}))
		require.NoError(t, err)
		_, err = dialEnv(t, with(map[string]string{"TEMPORAL_TLS_SERVER_NAME": "elsewhere.test"}))
		require.ErrorContains(t, err, "certificate")
	})
	t.Run("no client certificate refused", func(t *testing.T) {
		// The server refuses after the client's side of a TLS 1.3
		// handshake, so the client's error varies (certificate required,
		// broken pipe); what matters is that it does not get in.
		_, err := dialEnv(t, with(map[string]string{"TEMPORAL_TLS_CERT": "", "TEMPORAL_TLS_KEY": ""}))
		require.Error(t, err)
	})
	t.Run("client certificate from another CA refused", func(t *testing.T) {
		// As above, the client's error varies.
		_, err := dialEnv(t, with(map[string]string{"TEMPORAL_TLS_CERT": otherCert, "TEMPORAL_TLS_KEY": otherKey}))
		require.Error(t, err)
	})
	t.Run("frontend from another CA refused", func(t *testing.T) {
		_, err := dialEnv(t, with(map[string]string{"TEMPORAL_TLS_CA": otherCA.file}))
		require.ErrorContains(t, err, "certificate signed by unknown authority")
	})
	t.Run("plaintext refused", func(t *testing.T) {
		_, err := dialEnv(t, map[string]string{"TEMPORAL_ADDRESS": addr})
		require.Error(t, err)
	})

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	encrypted := with(map[string]string{"TEMPORAL_ENCRYPTION_KEY": hex.EncodeToString(key)})
	t.Run("strict worker refuses plaintext input", func(t *testing.T) { testStrictWorker(t, encrypted, mtls) })
	t.Run("failure messages encrypted", func(t *testing.T) { testFailuresEncrypted(t, encrypted, mtls) })
}

type accessInput struct{ Note string }

// testStrictWorker: a worker dialled with the key runs a workflow started
// through the encrypting client, and refuses one whose input a client
// without the key wrote: the workflow function never sees that input, and
// the workflow fails with the refusal.
func testStrictWorker(t *testing.T, encryptedEnv, plainEnv map[string]string) {
	keyed, err := dialEnv(t, encryptedEnv)
	require.NoError(t, err)
	plain, err := dialEnv(t, plainEnv)
	require.NoError(t, err)

	const tq = "access-strict"
	var ran atomic.Int32
	w := sdkworker.New(keyed, tq, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, in *accessInput) (string, error) {
		ran.Add(1)
		return "ran " + in.Note, nil
	}, workflow.RegisterOptions{Name: "AccessEcho"})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context) (string, error) {
		var in accessInput
		workflow.GetSignalChannel(ctx, "note").Receive(ctx, &in)
		return in.Note, nil
	}, workflow.RegisterOptions{Name: "AccessSignal"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := keyed.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: tq}, "AccessEcho", &accessInput{Note: "hello"})
	require.NoError(t, err)
	var out string
	require.NoError(t, run.Get(ctx, &out))
	require.Equal(t, "ran hello", out)
	require.EqualValues(t, 1, ran.Load())

	forged, err := plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: tq,
		WorkflowExecutionTimeout: time.Minute}, "AccessEcho", &accessInput{Note: "forged"})
	require.NoError(t, err, "the frontend takes it; the worker must not")
	t.Cleanup(func() { _ = keyed.TerminateWorkflow(context.Background(), forged.GetID(), "", "test over") })
	err = keyed.GetWorkflow(ctx, forged.GetID(), "").Get(ctx, &out)
	require.ErrorContains(t, err, "refusing an unencrypted payload")
	assert.EqualValues(t, 1, ran.Load(), "the forged input reached the workflow function")
	assert.NotEqual(t, "ran forged", out)

	// A plaintext signal to a running workflow is dropped (the SDK logs a
	// corrupt signal); the next encrypted one is the one acted on.
	waiting, err := keyed.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: tq}, "AccessSignal")
	require.NoError(t, err)
	require.NoError(t, plain.SignalWorkflow(ctx, waiting.GetID(), "", "note", &accessInput{Note: "forged"}))
	require.NoError(t, keyed.SignalWorkflow(ctx, waiting.GetID(), "", "note", &accessInput{Note: "real"}))
	require.NoError(t, waiting.Get(ctx, &out))
	assert.Equal(t, "real", out)
}

// testFailuresEncrypted: an activity's error message rests in history as
// "Encoded failure" with its text encrypted, while the keyed client reads the
// real message and error type (the API maps types such as CardDeclined).
func testFailuresEncrypted(t *testing.T, encryptedEnv, plainEnv map[string]string) {
	keyed, err := dialEnv(t, encryptedEnv)
	require.NoError(t, err)
	plain, err := dialEnv(t, plainEnv)
	require.NoError(t, err)

	const tq = "access-failures"
	const secret = "card of Ada Lovelace declined"
	w := sdkworker.New(keyed, tq, sdkworker.Options{})
	w.RegisterActivityWithOptions(func(ctx context.Context) error {
		return temporal.NewNonRetryableApplicationError(secret, "CardDeclined", nil)
	}, activity.RegisterOptions{Name: "AccessDecline"})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
		return workflow.ExecuteActivity(ctx, "AccessDecline").Get(ctx, nil)
	}, workflow.RegisterOptions{Name: "AccessDecline"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := keyed.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: tq}, "AccessDecline")
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, "CardDeclined", appErr.Type())
	assert.Equal(t, secret, appErr.Message(), "the keyed client reads the real message")

	var history strings.Builder
	var activityFailed bool
	it := plain.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		history.WriteString(protojson.Format(ev))
		if f := ev.GetActivityTaskFailedEventAttributes().GetFailure(); f != nil {
			activityFailed = true
			assert.Contains(t, []string{"", "Encoded failure"}, f.GetMessage())
			assert.Equal(t, codec.EncodingName, string(f.GetEncodedAttributes().GetMetadata()[codec.MetadataEncoding]))
			assert.Equal(t, "CardDeclined", f.GetApplicationFailureInfo().GetType(), "the type stays readable")
		}
	}
	require.True(t, activityFailed, "no ActivityTaskFailed event in history")
	assert.False(t, strings.Contains(history.String(), "Lovelace"), "the failure message rests in plaintext")
}

// Billflow dials a frontend that takes API keys with TEMPORAL_API_KEY over
// TLS; a wrong or missing key is refused.
func TestTemporalAPIKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	ca := newTestCA(t, "billflow-apikey")
	serverPair, _, _ := ca.issue(t, "frontend-apikey", true)
	const key = "bf-test-api-key-7f3a9c"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := devtemporal.Start(ctx, devtemporal.Options{APIKey: key,
		TLS: &devtemporal.TLSOptions{Certificate: serverPair, RootCAs: ca.pool}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	addr := srv.FrontendAddress()

	c, err := dialEnv(t, map[string]string{"TEMPORAL_ADDRESS": addr, "TEMPORAL_TLS_CA": ca.file, "TEMPORAL_API_KEY": key})
	require.NoError(t, err)
	_, err = c.WorkflowService().DescribeNamespace(context.Background(), &workflowservice.DescribeNamespaceRequest{Namespace: srv.Namespace()})
	require.NoError(t, err)

	_, err = dialEnv(t, map[string]string{"TEMPORAL_ADDRESS": addr, "TEMPORAL_TLS_CA": ca.file, "TEMPORAL_API_KEY": key + "x"})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "wrong key: %v", err)
	_, err = dialEnv(t, map[string]string{"TEMPORAL_ADDRESS": addr, "TEMPORAL_TLS_CA": ca.file})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no key: %v", err)

	// temporalclient refuses to send a key in plaintext beyond loopback.
	_, err = temporalclient.Dial(ctx, temporalclient.Options{Address: "temporal.test:7233", APIKey: key})
	require.ErrorContains(t, err, "needs TLS")
}
