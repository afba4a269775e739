package status

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"runtime/metrics"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Metrics are the agent's counters. Fields are safe for concurrent use.
type Metrics struct {
	ReconcileOK, ReconcileFailed atomic.Int64
	Frames, FrameErrors          atomic.Int64
	Activations, Rollbacks       atomic.Int64
	// StatusWrites and StatusWriteErrors count writes of the state file.
	StatusWrites, StatusWriteErrors atomic.Int64

	mu        sync.Mutex
	latency   histogram
	decisions map[[2]string]int64 // output, state → count
	// predictions counts frames by predicted class, named by the model.
	predictions map[string]int64
}

// Prediction counts one frame classified as class (a name of the active
// model's classes).
func (m *Metrics) Prediction(class string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.predictions == nil {
		m.predictions = map[string]int64{}
	}
	m.predictions[class]++
}

// latencyBuckets are classify latencies in seconds.
var latencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1}

type histogram struct {
	counts []int64
	sum    float64
	n      int64
}

// ObserveLatency records one frame's classify latency.
func (m *Metrics) ObserveLatency(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.latency.counts == nil {
		m.latency.counts = make([]int64, len(latencyBuckets))
	}
	s := d.Seconds()
	for i, b := range latencyBuckets {
		if s <= b {
			m.latency.counts[i]++
		}
	}
	m.latency.sum += s
	m.latency.n++
}

// Decision counts a GPIO output change.
func (m *Metrics) Decision(output string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.decisions == nil {
		m.decisions = map[[2]string]int64{}
	}
	st := "off"
	if on {
		st = "on"
	}
	m.decisions[[2]string{output, st}]++
}

// WriteMetrics writes the Prometheus text exposition format (version 0.0.4).
func (r *Recorder) WriteMetrics(w io.Writer) {
	s := r.Get()
	m := &r.Metrics
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	lbl := func(v string) string { return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) }

	p("# HELP aerie_edge_condition Status conditions (1 for the condition's status), as Flux's gotk_reconcile_condition.")
	p("# TYPE aerie_edge_condition gauge")
	for _, c := range s.Conditions {
		for _, st := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			v := 0
			if c.Status == st {
				v = 1
			}
			p(`aerie_edge_condition{type="%s",status="%s",reason="%s"} %d`, lbl(c.Type), st, lbl(c.Reason), v)
		}
	}
	p("# HELP aerie_edge_model_info The active model version.")
	p("# TYPE aerie_edge_model_info gauge")
	if s.Active != nil {
		p(`aerie_edge_model_info{manifest_digest="%s",run="%s",version="%s",canary="%t"} 1`, lbl(s.Active.ManifestDigest), lbl(s.Active.Run), lbl(s.Active.Version), s.Active.Canary)
		if s.Active.SelfTest != nil {
			p("# HELP aerie_edge_selftest_accuracy Golden-set accuracy of the active model on this device.")
			p("# TYPE aerie_edge_selftest_accuracy gauge")
			p("aerie_edge_selftest_accuracy %g", s.Active.SelfTest.Accuracy)
			p("# HELP aerie_edge_selftest_class_accuracy Self-test accuracy of each of the active model's classes.")
			p("# TYPE aerie_edge_selftest_class_accuracy gauge")
			for _, c := range s.Active.SelfTest.Classes {
				p(`aerie_edge_selftest_class_accuracy{class="%s"} %g`, lbl(c.Class), c.Accuracy)
			}
		}
	}
	mission := 0
	if s.Mission {
		mission = 1
	}
	p("# HELP aerie_edge_mission 1 while the device is on a mission (activations deferred).")
	p("# TYPE aerie_edge_mission gauge")
	p("aerie_edge_mission %d", mission)
	p("# HELP aerie_edge_reconcile_total Reconciliations by result.")
	p("# TYPE aerie_edge_reconcile_total counter")
	p(`aerie_edge_reconcile_total{result="success"} %d`, m.ReconcileOK.Load())
	p(`aerie_edge_reconcile_total{result="failure"} %d`, m.ReconcileFailed.Load())
	p("# HELP aerie_edge_activations_total Model activations.")
	p("# TYPE aerie_edge_activations_total counter")
	p("aerie_edge_activations_total %d", m.Activations.Load())
	p("# HELP aerie_edge_rollbacks_total Rollbacks to a previous model after a failed load.")
	p("# TYPE aerie_edge_rollbacks_total counter")
	p("aerie_edge_rollbacks_total %d", m.Rollbacks.Load())
	p("# HELP aerie_edge_status_writes_total Writes of status.json (only when it changes).")
	p("# TYPE aerie_edge_status_writes_total counter")
	p("aerie_edge_status_writes_total %d", m.StatusWrites.Load())
	p("# HELP aerie_edge_status_write_errors_total Failed writes of status.json (e.g. a full disk); the model keeps running.")
	p("# TYPE aerie_edge_status_write_errors_total counter")
	p("aerie_edge_status_write_errors_total %d", m.StatusWriteErrors.Load())
	p("# HELP aerie_edge_frames_total Frames classified.")
	p("# TYPE aerie_edge_frames_total counter")
	p("aerie_edge_frames_total %d", m.Frames.Load())
	p("# HELP aerie_edge_frame_errors_total Frames that could not be read, decoded or classified.")
	p("# TYPE aerie_edge_frame_errors_total counter")
	p("aerie_edge_frame_errors_total %d", m.FrameErrors.Load())

	m.mu.Lock()
	h := m.latency
	counts := append([]int64(nil), h.counts...)
	type dec struct {
		k [2]string
		v int64
	}
	var decs []dec
	for k, v := range m.decisions {
		decs = append(decs, dec{k, v})
	}
	preds := make(map[string]int64, len(m.predictions))
	for k, v := range m.predictions {
		preds[k] = v
	}
	m.mu.Unlock()
	p("# HELP aerie_edge_predictions_total Frames by predicted class (the model's class names).")
	p("# TYPE aerie_edge_predictions_total counter")
	for _, c := range slices.Sorted(maps.Keys(preds)) {
		p(`aerie_edge_predictions_total{class="%s"} %d`, lbl(c), preds[c])
	}
	p("# HELP aerie_edge_classify_seconds Per-frame classify latency.")
	p("# TYPE aerie_edge_classify_seconds histogram")
	for i, b := range latencyBuckets {
		var c int64
		if counts != nil {
			c = counts[i]
		}
		p(`aerie_edge_classify_seconds_bucket{le="%g"} %d`, b, c)
	}
	p(`aerie_edge_classify_seconds_bucket{le="+Inf"} %d`, h.n)
	p("aerie_edge_classify_seconds_sum %g", h.sum)
	p("aerie_edge_classify_seconds_count %d", h.n)
	sort.Slice(decs, func(i, j int) bool { return decs[i].k[0]+decs[i].k[1] < decs[j].k[0]+decs[j].k[1] })
	p("# HELP aerie_edge_gpio_changes_total GPIO output changes by output and new state.")
	p("# TYPE aerie_edge_gpio_changes_total counter")
	for _, d := range decs {
		p(`aerie_edge_gpio_changes_total{output="%s",state="%s"} %d`, lbl(d.k[0]), d.k[1], d.v)
	}

	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/gc/heap/live:bytes"}, {Name: "/sched/goroutines:goroutines"}}
	metrics.Read(samples)
	p("# HELP aerie_edge_go_memory_bytes Memory mapped by the Go runtime.")
	p("# TYPE aerie_edge_go_memory_bytes gauge")
	p("aerie_edge_go_memory_bytes %d", value(samples[0]))
	p("# HELP aerie_edge_go_heap_live_bytes Live heap after the last GC.")
	p("# TYPE aerie_edge_go_heap_live_bytes gauge")
	p("aerie_edge_go_heap_live_bytes %d", value(samples[1]))
	p("# HELP aerie_edge_goroutines Goroutines.")
	p("# TYPE aerie_edge_goroutines gauge")
	p("aerie_edge_goroutines %d", value(samples[2]))
}

func value(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	if s.Value.Kind() == metrics.KindFloat64 {
		return uint64(math.Max(0, s.Value.Float64()))
	}
	return 0
}

// Handler serves GET /status and GET /metrics.
func (r *Recorder) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		b, err := r.JSON()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteMetrics(w)
	})
	return mux
}
