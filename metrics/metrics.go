// Package metrics exposes billflow's Prometheus registry and bridges the
// Temporal SDK's metrics into it (the SDK's tally bridge is not served here,
// and its tag sets vary per call, which Prometheus vectors do not allow).
package metrics

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.temporal.io/sdk/client"
)

// NewRegistry returns a registry with Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

type kind int

const (
	kCounter kind = iota
	kGauge
	kTimer
)

type series struct {
	kind  kind
	name  string
	tags  map[string]string
	value float64 // counter total or gauge value
	count uint64  // timer observations
	sum   float64 // timer seconds
}

// SDKMetrics is a client.MetricsHandler that is also a prometheus.Collector.
type SDKMetrics struct {
	mu     sync.Mutex
	series map[string]*series
}

// NewSDKMetrics makes the bridge; register it on the registry and pass it as
// client.Options.MetricsHandler.
func NewSDKMetrics() *SDKMetrics { return &SDKMetrics{series: map[string]*series{}} }

type handler struct {
	m    *SDKMetrics
	tags map[string]string
}

// Handler returns the SDK-facing handler.
func (m *SDKMetrics) Handler() client.MetricsHandler { return handler{m: m, tags: map[string]string{}} }

func (h handler) WithTags(t map[string]string) client.MetricsHandler {
	n := make(map[string]string, len(h.tags)+len(t))
	for k, v := range h.tags {
		n[k] = v
	}
	for k, v := range t {
		n[k] = v
	}
	return handler{m: h.m, tags: n}
}

func (h handler) get(k kind, name string) *series {
	keys := make([]string, 0, len(h.tags))
	for k := range h.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name)
	for _, k := range keys {
		b.WriteString("\x00" + k + "=" + h.tags[k])
	}
	id := b.String()
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	s, ok := h.m.series[id]
	if !ok {
		s = &series{kind: k, name: sanitize(name), tags: h.tags}
		h.m.series[id] = s
	}
	return s
}

type counter struct {
	m *SDKMetrics
	s *series
}

func (c counter) Inc(d int64) { c.m.mu.Lock(); c.s.value += float64(d); c.m.mu.Unlock() }

type gauge struct {
	m *SDKMetrics
	s *series
}

func (g gauge) Update(v float64) { g.m.mu.Lock(); g.s.value = v; g.m.mu.Unlock() }

type timer struct {
	m *SDKMetrics
	s *series
}

func (t timer) Record(d time.Duration) {
	t.m.mu.Lock()
	t.s.count++
	t.s.sum += d.Seconds()
	t.m.mu.Unlock()
}

func (h handler) Counter(name string) client.MetricsCounter {
	return counter{h.m, h.get(kCounter, name)}
}
func (h handler) Gauge(name string) client.MetricsGauge { return gauge{h.m, h.get(kGauge, name)} }
func (h handler) Timer(name string) client.MetricsTimer { return timer{h.m, h.get(kTimer, name)} }

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// Describe sends nothing: the collector is unchecked, as the SDK's metric
// names are only known once emitted.
func (m *SDKMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect emits every series, padding each metric's label set to the union of
// the tags seen for that name so a family's dimensions stay consistent.
func (m *SDKMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	labels := map[string]map[string]bool{}
	for _, s := range m.series {
		if labels[s.name] == nil {
			labels[s.name] = map[string]bool{}
		}
		for k := range s.tags {
			labels[s.name][sanitize(k)] = true
		}
	}
	descs := map[string]*prometheus.Desc{}
	names := map[string][]string{}
	for name, set := range labels {
		keys := make([]string, 0, len(set))
		for k := range set {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		names[name] = keys
		descs[name] = prometheus.NewDesc("temporal_"+name, "Temporal SDK metric "+name, keys, nil)
	}
	for _, s := range m.series {
		keys := names[s.name]
		vals := make([]string, len(keys))
		for i, k := range keys {
			for tk, tv := range s.tags {
				if sanitize(tk) == k {
					vals[i] = tv
				}
			}
		}
		var metric prometheus.Metric
		var err error
		switch s.kind {
		case kCounter:
			metric, err = prometheus.NewConstMetric(descs[s.name], prometheus.CounterValue, s.value, vals...)
		case kGauge:
			if math.IsNaN(s.value) {
				continue
			}
			metric, err = prometheus.NewConstMetric(descs[s.name], prometheus.GaugeValue, s.value, vals...)
		case kTimer:
			metric, err = prometheus.NewConstSummary(descs[s.name], s.count, s.sum, nil, vals...)
		}
		if err == nil {
			ch <- metric
		}
	}
}
