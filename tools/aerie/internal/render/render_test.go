package render

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/runspec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const revision = "0123456789abcdef0123456789abcdef01234567"

func parse(t *testing.T, file string) *runspec.TrainingRun {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Every test run trains on Fashion-MNIST: the repository's committed
	// copy of its manifest gives the shape and classes.
	man, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "apps", "jobs", "datasets", "fashion-mnist", fmnistDigest+".json"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := runspec.Resolve(t.Context(), file, data, runspec.Sources{
		Architecture: arch.Builtin,
		Dataset: func(context.Context, runspec.Dataset) (*dataset.Manifest, error) {
			return dataset.Check(man, fmnistDigest)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Run
}

const fmnistDigest = "b0357547c5cfd67f4249e525e277519f0fd76294d93e0a14afb0208adf693b02"

// TestOverlayGolden renders each testdata/<run>.yaml and compares every
// file of the overlay with testdata/golden/<run>/.
func TestOverlayGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			got, err := Overlay(parse(t, f), "runs/"+name+".yaml", revision)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("testdata", "golden", name)
			for _, file := range OverlayFiles {
				golden := filepath.Join(dir, file)
				if *update {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got[file], 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(want), string(got[file])); diff != "" {
					t.Errorf("%s (-want +got):\n%s", file, diff)
				}
			}
			again, err := Overlay(parse(t, f), "runs/"+name+".yaml", revision)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("a second render differs (-first +second):\n%s", diff)
			}
		})
	}
}

// TestOverlayBuilds builds each overlay with krusty, as Flux will, and
// decodes the result into the official types: the ConfigMap's hashed name
// must reach every replica's volume, and the run spec inside it must parse
// back into the same run.
func TestOverlayBuilds(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	k := krusty.MakeKustomizer(&krusty.Options{LoadRestrictions: types.LoadRestrictionsRootOnly, PluginConfig: types.DisabledPluginConfig()})
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			run := parse(t, f)
			overlay, err := Overlay(run, "runs/"+name+".yaml", revision)
			if err != nil {
				t.Fatal(err)
			}
			fsys := filesys.MakeFsInMemory()
			for file, b := range overlay {
				if err := fsys.WriteFile("/o/"+file, b); err != nil {
					t.Fatal(err)
				}
			}
			m, err := k.Run(fsys, "/o")
			if err != nil {
				t.Fatalf("kustomize build: %v", err)
			}
			var cm corev1.ConfigMap
			var job kubeflowv1.PyTorchJob
			for _, res := range m.Resources() {
				b, err := res.AsYAML()
				if err != nil {
					t.Fatal(err)
				}
				switch res.GetKind() {
				case "ConfigMap":
					err = yaml.UnmarshalStrict(b, &cm)
				case "PyTorchJob":
					err = yaml.UnmarshalStrict(b, &job)
				default:
					t.Fatalf("unexpected %s", res.GetKind())
				}
				if err != nil {
					t.Fatalf("decode %s: %v", res.GetKind(), err)
				}
			}
			ns := runspec.TeamNamespace(run.Spec.Team)
			if !strings.HasPrefix(cm.Name, name+"-run-") || cm.Namespace != ns {
				t.Errorf("ConfigMap %s/%s, want %s/%s-run-<hash>", cm.Namespace, cm.Name, ns, name)
			}
			if job.Namespace != ns {
				t.Errorf("PyTorchJob in namespace %q, want its team's %q", job.Namespace, ns)
			}
			back, err := runspec.Parse("run.yaml", []byte(cm.Data[RunFile]))
			if err != nil {
				t.Fatalf("the mounted run spec does not parse: %v", err)
			}
			if diff := cmp.Diff(run, back); diff != "" {
				t.Errorf("mounted run spec (-declared +mounted):\n%s", diff)
			}
			total := 0
			for rt, rs := range job.Spec.PyTorchReplicaSpecs {
				total += int(*rs.Replicas)
				if v := rs.Template.Spec.Volumes[0].ConfigMap.Name; v != cm.Name {
					t.Errorf("%s volume names ConfigMap %q, want %q", rt, v, cm.Name)
				}
				c := rs.Template.Spec.Containers[0]
				if !cmp.Equal(c.Resources.Requests, c.Resources.Limits) {
					t.Errorf("%s requests %v != limits %v", rt, c.Resources.Requests, c.Resources.Limits)
				}
			}
			if total != run.Spec.Workers.Count {
				t.Errorf("%d replicas, want workers.count %d", total, run.Spec.Workers.Count)
			}
		})
	}
}
