package workflows_test

import (
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/workflows"
)

// e2eKey is the end-to-end tests' payload key (a test fixture, not a secret):
// the recorded histories' payloads are encrypted with it.
const e2eKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// TestReplayRecordedHistories replays histories recorded from real runs
// (e2e TestLifecycleHistories with BILLFLOW_RECORD_HISTORIES=1) against the
// current workflow code: a change that breaks determinism fails here. It
// replays with the strict converter the worker uses, so everything billflow
// writes into a history must also be something a keyed worker accepts.
func TestReplayRecordedHistories(t *testing.T) {
	key, err := hex.DecodeString(e2eKey)
	require.NoError(t, err)
	c, err := codec.New(key)
	require.NoError(t, err)
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "recorded histories are missing")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: c.StrictDataConverter()})
			require.NoError(t, err)
			r.RegisterWorkflow(workflows.InvoiceWorkflow)
			r.RegisterWorkflow(workflows.BalancePaymentWorkflow)
			r.RegisterWorkflow(workflows.ReminderRunWorkflow)
			r.RegisterWorkflow(workflows.RefundAfterCloseWorkflow)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
