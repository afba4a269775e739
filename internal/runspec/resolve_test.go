package runspec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
)

// fmnistManifest is the part of Fashion-MNIST's manifest Resolve uses.
var fmnistManifest = &dataset.Manifest{
	Schema:  dataset.Schema,
	Classes: strings.Split("T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot", ","),
	Shape:   dataset.Shape{Height: 28, Width: 28, Channels: 1},
}

// testSources reads architectures built into the binary and gives every
// dataset Fashion-MNIST's shape.
func testSources(t *testing.T) Sources {
	return Sources{
		Architecture: arch.Builtin,
		Dataset: func(_ context.Context, d Dataset) (*dataset.Manifest, error) {
			if d.SHA256 == "" {
				t.Fatal("Dataset called without a digest")
			}
			return fmnistManifest, nil
		},
	}
}

// TestResolveGolden resolves each testdata/*.yaml, compares the run as
// aerie run render renders it (architecture inline, memory sized) with
// testdata/<name>.resolved, and checks that it parses back to itself.
func TestResolveGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Resolve(t.Context(), f, data, testSources(t))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(res.Run)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".resolved"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Marshal(Resolve(%s)) (-want +got):\n%s", f, diff)
			}
			again, err := Parse(golden, got)
			if err != nil {
				t.Fatalf("the resolved run does not parse: %v", err)
			}
			if diff := cmp.Diff(res.Run, again); diff != "" {
				t.Errorf("Parse(Marshal(r)) differs from r (-want +got):\n%s", diff)
			}
			// Resolving the rendered run again changes nothing.
			twice, err := Resolve(t.Context(), golden, got, testSources(t))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(res.Run, twice.Run); diff != "" {
				t.Errorf("Resolve(Marshal(Resolve(r))) differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	// A models file whose second conv does not fit 28×28 after the pools.
	const bad = `apiVersion: aerie.dev/v1alpha1
kind: Architecture
metadata:
  name: big
layers:
  - maxpool: {size: 8}
  - maxpool: {size: 2}
  - conv: {filters: 8, kernel: 3, padding: valid}
  - flatten
  - dense: {units: classes}
`
	src := testSources(t)
	src.Architecture = func(name string) (*arch.Spec, error) {
		if name == "big" {
			return arch.Parse("models/big.yaml", []byte(bad))
		}
		return arch.Builtin(name)
	}
	tests := []struct {
		name  string
		edits []string
		src   func(*Sources)
		want  string
	}{
		{"no such architecture", []string{"architecture: cnn", "architecture: vgg"}, nil,
			file + ":9: spec.model.architecture: architecture vgg: no file models/vgg.yaml (built in: cnn, resnet-small, shapes-resnet, small)"},
		{"shape mismatch in the file", []string{"architecture: cnn", "architecture: big"}, nil,
			"models/big.yaml:8: layers[2].conv: input 1×1×1 is smaller than the 3×3 kernel with padding 0 (on the dataset's 28x28x1 images and 10 classes)"},
		{"shape mismatch inline", []string{"architecture: cnn", "architecture:\n      metadata: {name: tiny}\n      layers:\n        - maxpool: {size: 4}\n        - globalavgpool\n        - conv: {filters: 3}"}, nil,
			file + ":14: spec.model.architecture.layers[2].conv: input is 1, flat: conv works on feature maps, put it before flatten, globalavgpool or dense (on the dataset's 28x28x1 images and 10 classes)"},
		{"output not the classes", []string{"architecture: cnn", "architecture:\n      metadata: {name: tiny}\n      layers:\n        - flatten\n        - dense: {units: 7}"}, nil,
			file + ":13: spec.model.architecture.layers[1].dense: the network's output is 7, want 10 (the dataset's classes): end with dense units: classes (on the dataset's 28x28x1 images and 10 classes)"},
		{"no dataset", nil, func(s *Sources) {
			s.Dataset = func(context.Context, Dataset) (*dataset.Manifest, error) { return nil, errors.New("no manifest") }
		}, file + ":16: spec.dataset: no manifest"},
		{"auto memory too big", []string{"count: 4", "count: 1", "batchSize: 128", "batchSize: 4096", "cpu: auto", "cpu: 1"}, nil,
			file + ":19: spec.resources.memory: auto needs 10432Mi for this model and per-worker batch, above 6656Mi for 1 cpu (GKE Autopilot's 6.5Gi per core): lower spec.model.batchSize, or raise spec.workers.count or spec.resources.cpu"},
		{"memory below the working set", []string{"count: 4", "count: 1", "batchSize: 128", "batchSize: 2048", "cpu: auto", "cpu: 1", "memory: auto", "memory: 3Gi"}, nil,
			file + `:21: spec.resources.memory: must be auto or a quantity between 4092Mi and 6656Mi for 1 cpu and this model and batch (see apps/jobs/README.md), got "3Gi"`},
		{"ghost batch not dividing the batch", []string{"architecture: cnn", "architecture: resnet-small", "learningRate: 0.001", "learningRate: 0.001\n    ghostBatch: 48"}, nil,
			file + ":12: spec.model.ghostBatch: must divide spec.model.batchSize (128): batch norm computes its statistics over whole ghost batches, got 48"},
		{"default ghost batch, too few for the workers", []string{"architecture: cnn", "architecture: resnet-small", "batchSize: 128", "batchSize: 96"}, nil,
			file + ":8: spec.model.ghostBatch: must leave spec.model.batchSize (96) at least one ghost batch per worker (up to spec.workers.max = 4), got 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := src
			if tt.src != nil {
				tt.src(&s)
			}
			_, err := Resolve(t.Context(), file, []byte(edit(t, tt.edits...)), s)
			if err == nil {
				t.Fatalf("Resolve succeeded, want %s", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("Resolve error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestArchitectureMarshal: a named architecture not yet resolved stays a
// name; memory auto stays auto.
func TestArchitectureMarshal(t *testing.T) {
	r, err := Parse(file, []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"    architecture: cnn\n", "    memory: auto\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Marshal lacks %q:\n%s", want, out)
		}
	}
	again, err := Parse(file, out)
	if diff := cmp.Diff(r, again); err != nil || diff != "" {
		t.Errorf("Parse(Marshal(r)) = %v (-want +got):\n%s", err, diff)
	}
}

// TestWorkingSetKeepsFormerFigures: the per-image term from the plans
// equals the constants runspec kept by hand before architectures were
// data (forward values per image, counted by hand, ×4 bytes ×3 copies),
// so the committed runs keep their memory requests.
func TestWorkingSetKeepsFormerFigures(t *testing.T) {
	for name, values := range map[string]int64{"cnn": 158_762, "small": 15_886} {
		s, err := arch.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Plan(arch.Input{H: 28, W: 28, C: 1}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ActivationCopies*p.ActivationBytes, values*4*3; got != want {
			t.Errorf("%s: ActivationCopies × plan.ActivationBytes = %d, the former constant %d", name, got, want)
		}
	}
}
