package status

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/aerie-ml/aerie/internal/devicestatus"
)

func TestRecorderPersistsAndExposes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	r := NewRecorder(path, "pi-1", "quadcopters", nil)
	r.Update(func(s *devicestatus.Status) {
		s.MarkStalled(devicestatus.InvalidPinsReason, "fleets/q.yaml:3: fleet: bad")
		s.LastAttemptedRevision = "main@sha1:abc/sha256:def"
		s.Active = &devicestatus.Model{ManifestDigest: "sha256:def", Run: "r", Version: "v"}
	})
	r.Metrics.ObserveLatency(1500 * time.Microsecond)
	r.Metrics.Frames.Add(1)
	r.Metrics.Decision("footwear", true)

	s := NewRecorder(path, "pi-1", "quadcopters", nil).Get()
	if c := s.Condition(meta.StalledCondition); c == nil || c.Reason != devicestatus.InvalidPinsReason || s.LastAttemptedRevision == "" {
		t.Errorf("reloaded status = %+v", s)
	}
	if c := s.Condition(meta.ReadyCondition); c == nil || c.Status != "False" {
		t.Errorf("Ready = %+v, want False with Stalled", c)
	}
	s.MarkReady(meta.SucceededReason, "ok")
	if s.Condition(meta.StalledCondition) != nil {
		t.Error("MarkReady left Stalled")
	}

	var b bytes.Buffer
	r.WriteMetrics(&b)
	for _, want := range []string{
		`aerie_edge_condition{reason="InvalidPins",status="True",type="Stalled"} 1`,
		`aerie_edge_model_info{canary="false",manifest_digest="sha256:def",run="r",version="v"} 1`,
		`aerie_edge_classify_seconds_bucket{le="0.001"} 0`,
		`aerie_edge_classify_seconds_bucket{le="0.002"} 1`,
		`aerie_edge_classify_seconds_count 1`,
		`aerie_edge_frames_total 1`,
		`aerie_edge_gpio_changes_total{output="footwear",state="on"} 1`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}

	// A torn state file does not keep the agent down.
	os.WriteFile(path, []byte("{not json"), 0o644)
	if s := NewRecorder(path, "pi-1", "quadcopters", nil).Get(); s.DeviceID != "pi-1" || s.Active != nil {
		t.Errorf("NewRecorder on a torn file = %+v, want an empty status", s)
	}
}

// TestRecorderWritesOnlyChanges: passes that change nothing but the time
// of the pass and the Reconciling condition do not write the state file.
func TestRecorderWritesOnlyChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	r := NewRecorder(path, "pi-1", "quadcopters", nil)
	pass := func(msg string) {
		r.Update(func(s *devicestatus.Status) { s.MarkReconciling(meta.ProgressingReason, "reconciliation in progress") })
		r.Update(func(s *devicestatus.Status) {
			now := time.Now()
			s.LastReconcileTime = &now
			s.MarkReady(meta.SucceededReason, "%s", msg)
		})
	}
	pass("applied revision a")
	first := testutil.ToFloat64(r.Metrics.StatusWrites)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		pass("applied revision a")
	}
	if n := testutil.ToFloat64(r.Metrics.StatusWrites); n != first {
		t.Errorf("writes after 10 unchanged passes = %g, want still %g", n, first)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("status.json was replaced by passes that changed nothing")
	}
	if s := r.Get(); s.LastReconcileTime == nil {
		t.Error("in-memory status lost lastReconcileTime")
	}
	pass("applied revision b")
	if n := testutil.ToFloat64(r.Metrics.StatusWrites); n != first+1 {
		t.Errorf("writes after a change = %g, want %g", n, first+1)
	}

	// A restart over an unchanged file writes nothing either.
	again := NewRecorder(path, "pi-1", "quadcopters", nil)
	again.Update(func(s *devicestatus.Status) { s.MarkReady(meta.SucceededReason, "applied revision b") })
	if n := testutil.ToFloat64(again.Metrics.StatusWrites); n != 0 {
		t.Errorf("writes after a restart with nothing new = %g, want 0", n)
	}
}

// TestRecorderConcurrent updates from many goroutines: the state file ends
// up holding the latest status, whole.
func TestRecorderConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	r := NewRecorder(path, "pi-1", "quadcopters", nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				r.Update(func(s *devicestatus.Status) {
					s.LastAttemptedRevision = fmt.Sprintf("main@sha1:%d-%d", g, i)
				})
				r.Get()
				r.JSON()
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var disk devicestatus.Status
	if err := json.Unmarshal(b, &disk); err != nil {
		t.Fatalf("status.json after concurrent updates: %v\n%s", err, b)
	}
	if want := r.Get().LastAttemptedRevision; disk.LastAttemptedRevision != want {
		t.Errorf("status.json holds %q, the recorder %q", disk.LastAttemptedRevision, want)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".status.json*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestRecorderWriteFails: a state file that cannot be replaced (here a
// non-empty directory is in its place) is counted, leaves no temporary
// file, and the in-memory status goes on.
func TestRecorderWriteFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "status.json")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(path, "pi-1", "quadcopters", nil)
	r.Update(func(s *devicestatus.Status) { s.MarkReady(meta.SucceededReason, "ok") })
	if n := testutil.ToFloat64(r.Metrics.StatusWriteErrors); n != 1 {
		t.Errorf("write errors = %g, want 1", n)
	}
	if s := r.Get(); s.Condition(meta.ReadyCondition) == nil || s.Condition(meta.ReadyCondition).Reason != meta.SucceededReason {
		c := s.Condition(meta.ReadyCondition)
		t.Errorf("in-memory Ready = %+v", c)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%s holds %v, want only status.json (no temporary file)", dir, entries)
	}
	var b bytes.Buffer
	r.WriteMetrics(&b)
	if !strings.Contains(b.String(), "aerie_edge_status_write_errors_total 1\n") {
		t.Errorf("metrics lack aerie_edge_status_write_errors_total 1:\n%s", b.String())
	}
}
