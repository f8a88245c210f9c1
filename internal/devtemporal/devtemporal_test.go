package devtemporal_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/devtemporal"
	"github.com/billflow/billflow/tenancy"
)

const (
	taskQueue      = "devtemporal-test"
	markPaidUpdate = "markPaid"
	// writeDBEnv makes the test binary act as a separate process that writes a
	// workflow into the given database file and exits (see TestMain).
	writeDBEnv = "DEVTEMPORAL_TEST_WRITE_DB"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(writeDBEnv); path != "" {
		if err := writeFileDB(path); err != nil {
			fmt.Fprintln(os.Stderr, "write db:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// invoiceWorkflow is a miniature invoice: open until a markPaid Update pays it,
// which upserts the search attributes the way billflow's real workflow does.
func invoiceWorkflow(ctx workflow.Context) (string, error) {
	status := "open"
	err := workflow.SetUpdateHandlerWithOptions(ctx, markPaidUpdate,
		func(ctx workflow.Context, amount int64) (string, error) {
			if err := workflow.UpsertTypedSearchAttributes(ctx, contract.InvoiceStatusKey.ValueSet("paid"), contract.AmountDueKey.ValueSet(0)); err != nil {
				return "", err
			}
			status = "paid"
			return fmt.Sprintf("paid %d", amount), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, amount int64) error {
			if amount <= 0 {
				return errors.New("amount must be positive")
			}
			return nil
		}},
	)
	if err != nil {
		return "", err
	}
	if err := workflow.Await(ctx, func() bool { return status == "paid" && workflow.AllHandlersFinished(ctx) }); err != nil {
		return "", err
	}
	return status, nil
}

func quietSDKLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
}

// serverLogger shows the server's warnings on stderr, where a failing run
// explains itself, without tying log calls to a *testing.T that may have ended.
func serverLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func dial(t testing.TB, srv *devtemporal.Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  srv.FrontendAddress(),
		Namespace: srv.Namespace(),
		Logger:    quietSDKLogger(),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func startWorker(t testing.TB, c client.Client) {
	t.Helper()
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflow(invoiceWorkflow)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
}

const summary = "Invoice INV-0001 · $90.00 due 2030-01-31"

// payInvoice starts invoiceWorkflow as workflowID, rejects a bad Update, pays it
// with a good one and waits for the workflow to finish.
func payInvoice(ctx context.Context, c client.Client, workflowID string) error {
	due := time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:            workflowID,
		TaskQueue:     taskQueue,
		StaticSummary: summary,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.InvoiceStatusKey.ValueSet("open"),
			contract.PracticeIDKey.ValueSet("prac_1"),
			contract.ClientIDKey.ValueSet("cli_1"),
			contract.AmountDueKey.ValueSet(9000),
			contract.DueDateKey.ValueSet(due),
		),
	}, invoiceWorkflow)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}

	rejected, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: markPaidUpdate, Args: []any{int64(0)},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = rejected.Get(ctx, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "amount must be positive") {
		return fmt.Errorf("update with amount 0: want the validator's rejection, got %v", err)
	}

	handle, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		UpdateID:   "pay-1",
		WorkflowID: workflowID, UpdateName: markPaidUpdate, Args: []any{int64(9000)},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	var updateResult string
	if err := handle.Get(ctx, &updateResult); err != nil {
		return fmt.Errorf("update result: %w", err)
	}
	if updateResult != "paid 9000" {
		return fmt.Errorf("update result %q, want %q", updateResult, "paid 9000")
	}

	var result string
	if err := run.Get(ctx, &result); err != nil {
		return fmt.Errorf("workflow result: %w", err)
	}
	if result != "paid" {
		return fmt.Errorf("workflow result %q, want paid", result)
	}
	return nil
}

// requirePaidInvoiceVisible checks what a practitioner would see in the UI: the
// static summary and the upserted search attributes, and that a visibility
// query on them finds the workflow.
func requirePaidInvoiceVisible(t *testing.T, c client.Client, workflowID string) {
	t.Helper()
	ctx := t.Context()
	desc, err := c.DescribeWorkflow(ctx, workflowID, "")
	require.NoError(t, err)
	gotSummary, err := desc.GetStaticSummary()
	require.NoError(t, err)
	assert.Equal(t, summary, gotSummary)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.Status)
	status, ok := desc.TypedSearchAttributes.GetKeyword(contract.InvoiceStatusKey)
	assert.True(t, ok)
	assert.Equal(t, "paid", status)
	due, ok := desc.TypedSearchAttributes.GetTime(contract.DueDateKey)
	assert.True(t, ok)
	assert.True(t, due.Equal(time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC)), "DueDate %v", due)

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: `InvoiceStatus = "paid" AND PracticeId = "prac_1" AND AmountDue = 0`,
		})
		require.NoError(ct, err)
		var ids []string
		for _, e := range resp.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		assert.Contains(ct, ids, workflowID)
	}, 20*time.Second, 100*time.Millisecond)

	// The query must also be able to miss, or the check above proves nothing.
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: `InvoiceStatus = "void"`})
	require.NoError(t, err)
	assert.Empty(t, resp.GetExecutions())
}

func TestInMemory(t *testing.T) {
	ctx := t.Context()
	uiPort, err := devtemporal.FreePort("")
	require.NoError(t, err)
	const codec = "http://127.0.0.1:8080/codec"

	began := time.Now()
	srv, err := devtemporal.Start(ctx, devtemporal.Options{UIPort: uiPort, UICodecEndpoint: codec, Logger: serverLogger()})
	require.NoError(t, err)
	t.Logf("in-memory Start with UI took %v (frontend %s)", time.Since(began).Round(time.Millisecond), srv.FrontendAddress())
	t.Cleanup(func() {
		began := time.Now()
		require.NoError(t, srv.Stop())
		t.Logf("Stop with UI took %v", time.Since(began).Round(time.Millisecond))
	})

	assert.Equal(t, "default", srv.Namespace())
	assert.True(t, strings.HasPrefix(srv.FrontendAddress(), "127.0.0.1:"), srv.FrontendAddress())
	assert.Equal(t, fmt.Sprintf("http://127.0.0.1:%d", uiPort), srv.UIURL())

	c := dial(t, srv)
	attrs, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: srv.Namespace()})
	require.NoError(t, err)
	for name, typ := range tenancy.SearchAttributes {
		assert.Equal(t, typ, attrs.GetCustomAttributes()[name], "search attribute %s", name)
	}
	// Registering again changes nothing and does not fail.
	require.NoError(t, tenancy.RegisterSearchAttributes(ctx, c, srv.Namespace()))

	startWorker(t, c)
	require.NoError(t, payInvoice(ctx, c, "invoice-mem-1"))
	requirePaidInvoiceVisible(t, c, "invoice-mem-1")

	t.Run("ui", func(t *testing.T) {
		// The UI's API proxies to the frontend, so this proves it is wired to it.
		var ns struct {
			NamespaceInfo struct{ Name string }
			Config        struct{ CustomSearchAttributeAliases map[string]string }
		}
		require.NoError(t, json.Unmarshal([]byte(httpGet(t, srv.UIURL()+"/api/v1/namespaces/default")), &ns))
		assert.Equal(t, "default", ns.NamespaceInfo.Name)
		assert.Len(t, ns.Config.CustomSearchAttributeAliases, len(tenancy.SearchAttributes))
		var settings struct{ Codec struct{ Endpoint string } }
		require.NoError(t, json.Unmarshal([]byte(httpGet(t, srv.UIURL()+"/api/v1/settings")), &settings))
		assert.Equal(t, codec, settings.Codec.Endpoint)
	})
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

func TestSecondServerInSameProcess(t *testing.T) {
	ctx := t.Context()
	a, err := devtemporal.Start(ctx, devtemporal.Options{Namespace: "first"})
	require.NoError(t, err)
	require.NoError(t, a.Stop())
	require.NoError(t, a.Stop(), "second Stop")

	began := time.Now()
	b, err := devtemporal.Start(ctx, devtemporal.Options{Namespace: "second"})
	require.NoError(t, err)
	t.Logf("second in-memory Start took %v", time.Since(began).Round(time.Millisecond))
	defer func() { require.NoError(t, b.Stop()) }()
	assert.NotEqual(t, a.FrontendAddress(), b.FrontendAddress())
	assert.Empty(t, b.UIURL())

	c := dial(t, b)
	startWorker(t, c)
	require.NoError(t, payInvoice(ctx, c, "invoice-second-1"))
}

func TestUIPortTaken(t *testing.T) {
	// Start must report a taken UI port instead of letting the UI server exit
	// the process.
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = devtemporal.Start(t.Context(), devtemporal.Options{UIPort: port})
	require.ErrorContains(t, err, fmt.Sprintf("temporal UI port %d", port))
}

// writeFileDB runs in a child process: it starts a server on path, pays one
// invoice and stops, so the parent reads data that only the file can hold.
func writeFileDB(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	srv, err := devtemporal.Start(ctx, devtemporal.Options{DBFile: path, Logger: serverLogger()})
	if err != nil {
		return err
	}
	fmt.Printf("fresh file Start took %v\n", time.Since(began).Round(time.Millisecond))
	c, err := client.Dial(client.Options{HostPort: srv.FrontendAddress(), Namespace: srv.Namespace(), Logger: quietSDKLogger()})
	if err != nil {
		return errors.Join(err, srv.Stop())
	}
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflow(invoiceWorkflow)
	if err := w.Start(); err != nil {
		c.Close()
		return errors.Join(err, srv.Stop())
	}
	err = payInvoice(ctx, c, "invoice-file-1")
	w.Stop()
	c.Close()
	return errors.Join(err, srv.Stop())
}

func TestFileBacked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "temporal.db")

	// First boot in a child process, so nothing but the file carries the
	// workflow over (the SQLite plugin keeps connections open per process).
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writeDBEnv+"="+path)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	t.Logf("child: %s", strings.TrimSpace(string(out)))
	require.FileExists(t, path)
	// journal_mode is stored in the file, so a fresh connection shows whether
	// the server really ran in WAL mode. ("sqlite" is the modernc driver the
	// server's SQLite plugin registers.)
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	var journalMode string
	require.NoError(t, db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&journalMode))
	require.NoError(t, db.Close())
	assert.Equal(t, "wal", journalMode)

	for boot := 2; boot <= 3; boot++ {
		began := time.Now()
		srv, err := devtemporal.Start(t.Context(), devtemporal.Options{DBFile: path, Logger: serverLogger()})
		require.NoError(t, err, "boot %d", boot)
		t.Logf("boot %d on existing file: Start took %v", boot, time.Since(began).Round(time.Millisecond))

		c := dial(t, srv)
		requirePaidInvoiceVisible(t, c, "invoice-file-1")
		ns, err := c.WorkflowService().DescribeNamespace(t.Context(), &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
		require.NoError(t, err)
		assert.Equal(t, 7*24*time.Hour, ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration())
		c.Close()
		require.NoError(t, srv.Stop())
	}
}

// Options that cannot work together fail Start at once, before a server runs.
func TestStartRefusesAPIKeyWithoutTLSAndUIWithTLS(t *testing.T) {
	ctx := context.Background()
	_, err := devtemporal.Start(ctx, devtemporal.Options{APIKey: "k"})
	require.ErrorContains(t, err, "APIKey needs TLS")
	_, err = devtemporal.Start(ctx, devtemporal.Options{UIPort: 1, TLS: &devtemporal.TLSOptions{}})
	require.ErrorContains(t, err, "UI is not supported with TLS")
}
