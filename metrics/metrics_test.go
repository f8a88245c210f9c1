package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSDKMetricsBridge(t *testing.T) {
	reg := NewRegistry()
	m := NewSDKMetrics()
	reg.MustRegister(m)
	h := m.Handler()
	h.WithTags(map[string]string{"task_queue": "billing"}).Counter("temporal_request").Inc(2)
	h.WithTags(map[string]string{"task_queue": "billing", "operation": "Poll"}).Counter("temporal_request").Inc(1)
	h.Timer("workflow_task_latency").Record(250 * time.Millisecond)
	h.Gauge("sticky_cache_size").Update(7)
	n, err := testutil.GatherAndCount(reg, "temporal_temporal_request", "temporal_workflow_task_latency", "temporal_sticky_cache_size")
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("want 4 series, got %d", n)
	}
	want := `
# HELP temporal_sticky_cache_size Temporal SDK metric sticky_cache_size
# TYPE temporal_sticky_cache_size gauge
temporal_sticky_cache_size 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "temporal_sticky_cache_size"); err != nil {
		t.Fatal(err)
	}
}
