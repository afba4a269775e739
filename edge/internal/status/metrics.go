package status

import (
	"io"
	"math"
	"net/http"
	"runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Metrics are the agent's counters, safe for concurrent use. NewMetrics
// registers them in their own registry, which Recorder.Handler serves.
type Metrics struct {
	ReconcileOK, ReconcileFailed prometheus.Counter
	Frames, FrameErrors          prometheus.Counter
	Activations, Rollbacks       prometheus.Counter
	// StatusWrites and StatusWriteErrors count writes of the state file.
	StatusWrites, StatusWriteErrors prometheus.Counter

	latency     prometheus.Histogram
	predictions *prometheus.CounterVec // by the model's class name
	decisions   *prometheus.CounterVec // by GPIO output and new state

	registry *prometheus.Registry
}

// latencyBuckets are classify latencies in seconds.
var latencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1}

// NewMetrics returns the agent's counters at zero.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "aerie_edge_" + name, Help: help})
		reg.MustRegister(c)
		return c
	}
	reconcile := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aerie_edge_reconcile_total", Help: "Reconciliations by result."}, []string{"result"})
	m := &Metrics{
		ReconcileOK:       reconcile.WithLabelValues("success"),
		ReconcileFailed:   reconcile.WithLabelValues("failure"),
		Activations:       f("activations_total", "Model activations."),
		Rollbacks:         f("rollbacks_total", "Rollbacks to a previous model after a failed load."),
		StatusWrites:      f("status_writes_total", "Writes of status.json (only when it changes)."),
		StatusWriteErrors: f("status_write_errors_total", "Failed writes of status.json (e.g. a full disk); the model keeps running."),
		Frames:            f("frames_total", "Frames classified."),
		FrameErrors:       f("frame_errors_total", "Frames that could not be read, decoded or classified."),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aerie_edge_classify_seconds", Help: "Per-frame classify latency.", Buckets: latencyBuckets,
		}),
		predictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aerie_edge_predictions_total", Help: "Frames by predicted class (the model's class names).",
		}, []string{"class"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aerie_edge_gpio_changes_total", Help: "GPIO output changes by output and new state.",
		}, []string{"output", "state"}),
		registry: reg,
	}
	reg.MustRegister(reconcile, m.latency, m.predictions, m.decisions, runtimeCollector())
	return m
}

// Prediction counts one frame classified as class (a name of the active
// model's classes).
func (m *Metrics) Prediction(class string) { m.predictions.WithLabelValues(class).Inc() }

// ObserveLatency records one frame's classify latency.
func (m *Metrics) ObserveLatency(d time.Duration) { m.latency.Observe(d.Seconds()) }

// Decision counts a GPIO output change.
func (m *Metrics) Decision(output string, on bool) {
	state := "off"
	if on {
		state = "on"
	}
	m.decisions.WithLabelValues(output, state).Inc()
}

// runtimeCollector exposes three of the Go runtime's own figures under the
// agent's prefix (the full Go collector would triple the exposition).
func runtimeCollector() prometheus.Collector {
	gauge := func(name, help, sample string) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aerie_edge_" + name, Help: help}, func() float64 {
			s := []metrics.Sample{{Name: sample}}
			metrics.Read(s)
			switch s[0].Value.Kind() {
			case metrics.KindUint64:
				return float64(s[0].Value.Uint64())
			case metrics.KindFloat64:
				return math.Max(0, s[0].Value.Float64())
			}
			return 0
		})
	}
	return collectors{
		gauge("go_memory_bytes", "Memory mapped by the Go runtime.", "/memory/classes/total:bytes"),
		gauge("go_heap_live_bytes", "Live heap after the last GC.", "/gc/heap/live:bytes"),
		gauge("goroutines", "Goroutines.", "/sched/goroutines:goroutines"),
	}
}

type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

var (
	conditionDesc = prometheus.NewDesc("aerie_edge_condition",
		"Status conditions (1 for the condition's status), as Flux's gotk_reconcile_condition.", []string{"type", "status", "reason"}, nil)
	modelInfoDesc = prometheus.NewDesc("aerie_edge_model_info",
		"The active model version.", []string{"manifest_digest", "run", "version", "canary"}, nil)
	selfTestDesc = prometheus.NewDesc("aerie_edge_selftest_accuracy",
		"Golden-set accuracy of the active model on this device.", nil, nil)
	selfTestClassDesc = prometheus.NewDesc("aerie_edge_selftest_class_accuracy",
		"Self-test accuracy of each of the active model's classes.", []string{"class"}, nil)
	missionDesc = prometheus.NewDesc("aerie_edge_mission",
		"1 while the device is on a mission (activations deferred).", nil, nil)
)

// statusCollector exposes the device's status as gauges.
type statusCollector struct{ r *Recorder }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{conditionDesc, modelInfoDesc, selfTestDesc, selfTestClassDesc, missionDesc} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Get()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, cond := range s.Conditions {
		for _, st := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			gauge(conditionDesc, boolValue(cond.Status == st), cond.Type, string(st), cond.Reason)
		}
	}
	if a := s.Active; a != nil {
		canary := "false"
		if a.Canary {
			canary = "true"
		}
		gauge(modelInfoDesc, 1, a.ManifestDigest, a.Run, a.Version, canary)
		if a.SelfTest != nil {
			gauge(selfTestDesc, a.SelfTest.Accuracy)
			for _, cl := range a.SelfTest.Classes {
				gauge(selfTestClassDesc, cl.Accuracy, cl.Class)
			}
		}
	}
	gauge(missionDesc, boolValue(s.Mission))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WriteMetrics writes the Prometheus text exposition format.
func (r *Recorder) WriteMetrics(w io.Writer) error {
	families, err := r.Metrics.registry.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return nil
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.Metrics.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return mux
}
