package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/google/go-cmp/cmp"
	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"github.com/aerie-ml/aerie/internal/pins"
)

// TestDemo runs the whole loop with tiny settings: the small model for one
// epoch, two workers, promotion, and a few seconds of flight.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model for a minute or two; skipped with -short")
	}
	if _, err := os.Stat(DebianDataDir); err != nil {
		t.Skipf("Debian package dataset-fashion-mnist is not installed (%v); .ci/run installs it", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	out := t.TempDir()
	sum, err := Run(ctx, Config{
		RepoDir: filepath.Join("..", "..", "..", ".."),
		OutDir:  out,
		Arch:    "small", Epochs: 1, Workers: 2,
		MinTestAccuracy: 0.6, MinClassAccuracy: 0.1,
		Fly:    3 * time.Second,
		Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil {
		t.Fatalf("Run() = %v\nstdout:\n%s\nstderr (tail):\n%s", err, stdout.String(), tail(stderr.String(), 40))
	}
	t.Logf("stdout:\n%s", stdout.String())
	if sum.TestAccuracy < 0.6 || len(sum.ClassAccuracy) != 10 {
		t.Errorf("test accuracy %.3f with %d classes, want >= 0.6 and 10", sum.TestAccuracy, len(sum.ClassAccuracy))
	}
	if len(sum.PinCommit) != 40 {
		t.Errorf("pin commit %q, want a commit hash", sum.PinCommit)
	}
	if sum.Frames == 0 || sum.FramesPerSec <= 0 {
		t.Errorf("edge agent classified %d frames at %.1f/s, want some", sum.Frames, sum.FramesPerSec)
	}
	if sum.AgentPeakRSS == 0 {
		t.Error("agent peak RSS not measured")
	}
	if !apimeta.IsStatusConditionTrue(sum.Conditions, meta.ReadyCondition) {
		t.Errorf("device conditions %+v, want Ready=True", sum.Conditions)
	}
	if !strings.Contains(stdout.String(), "==> [7/7] summary") {
		t.Errorf("no summary in stdout:\n%s", stdout.String())
	}
	// The pin is committed in the scratch clone, the model in the store.
	b, err := os.ReadFile(filepath.Join(out, "repo", filepath.FromSlash(pins.File("demo"))))
	if err != nil || !strings.Contains(string(b), sum.ManifestDigest) {
		t.Errorf("pin file does not pin %s: %v\n%s", sum.ManifestDigest, err, b)
	}
}

// TestDemoShapes runs the loop on data that is not Fashion-MNIST: aerie
// dataset generate shapes (colour, 64–96 px, PNG and JPEG), ingested at
// 64×64×3, models/shapes-resnet.yaml (residual, batch norm) trained by two
// workers, promoted through its gates, and flown on an edge agent that
// reads an MJPEG stream of the test images and drives one simulated GPIO
// output per class, named after the generated classes.
func TestDemoShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model for a minute or two; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	out := t.TempDir()
	const minTest, minClass = 0.8, 0.5
	sum, err := Run(ctx, Config{
		RepoDir: filepath.Join("..", "..", "..", ".."),
		OutDir:  out,
		Dataset: DatasetShapes,
		Arch:    "shapes-resnet", Epochs: 12, Workers: 2, LearningRate: 3e-3, Schedule: "cosine",
		MinTestAccuracy: minTest, MinClassAccuracy: minClass,
		Fly:    3 * time.Second,
		Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil {
		t.Fatalf("Run() = %v\nstdout:\n%s\nstderr (tail):\n%s", err, stdout.String(), tail(stderr.String(), 40))
	}
	t.Logf("stdout:\n%s", stdout.String())
	// The classes are the generated tree's directories.
	dirs, err := os.ReadDir(filepath.Join(out, "shapes", "train"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range dirs {
		want = append(want, d.Name())
	}
	if len(want) < 5 {
		t.Errorf("%d generated classes %v, want at least 5", len(want), want)
	}
	if diff := cmp.Diff(want, sum.Classes); diff != "" {
		t.Errorf("model classes (-want +got):\n%s", diff)
	}
	if sum.TestAccuracy < minTest {
		t.Errorf("test accuracy %.3f, want >= %g (the gate promote enforced)", sum.TestAccuracy, minTest)
	}
	if !apimeta.IsStatusConditionTrue(sum.Conditions, meta.ReadyCondition) {
		t.Errorf("device conditions %+v, want Ready=True", sum.Conditions)
	}
	if sum.Frames == 0 {
		t.Error("edge agent classified no frames")
	}
	// Each output names one class: it switches on only when the model
	// sees that class in the stream, and the stream shows every class.
	for _, c := range want {
		if k := fmt.Sprintf("{output=%q,state=\"on\"}", c); sum.GPIOChanges[k] == 0 {
			t.Errorf("GPIO output %s never switched on; changes: %v", c, sum.GPIOChanges)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
