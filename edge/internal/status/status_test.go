package status

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
)

func TestRecorderPersistsAndExposes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	r, err := NewRecorder(path, "pi-1", "quadcopters")
	if err != nil {
		t.Fatal(err)
	}
	r.Update(func(s *Status) {
		s.MarkStalled(InvalidPinsReason, "edge/fleets/q.yaml:3: fleet: bad")
		s.LastAttemptedRevision = "main@sha1:abc/sha256:def"
		s.Active = &Model{ManifestDigest: "sha256:def", Run: "r", Version: "v"}
	})
	r.Metrics.ObserveLatency(1500 * time.Microsecond)
	r.Metrics.Frames.Add(1)
	r.Metrics.Decision("footwear", true)

	again, err := NewRecorder(path, "pi-1", "quadcopters")
	if err != nil {
		t.Fatal(err)
	}
	s := again.Get()
	if c := s.Condition(meta.StalledCondition); c == nil || c.Reason != InvalidPinsReason || s.LastAttemptedRevision == "" {
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
		`aerie_edge_condition{type="Stalled",status="True",reason="InvalidPins"} 1`,
		`aerie_edge_model_info{manifest_digest="sha256:def",run="r",version="v",canary="false"} 1`,
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
	if _, err := NewRecorder(path, "pi-1", "quadcopters"); err != nil {
		t.Errorf("NewRecorder on a torn file = %v", err)
	}
}
