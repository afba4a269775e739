//go:build e2e

package status

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/aerie-ml/aerie/tools/e2e/cluster"
)

// TestPrintAgainstAPIServer runs List and Print against a real
// kube-apiserver with the training operator's PyTorchJob CRD, with job
// statuses written as the operator writes them (status subresource): the
// teams' jobs in their own namespaces, and a job aerie did not render
// (no team label) that the listing leaves out.
func TestPrintAgainstAPIServer(t *testing.T) {
	ctx := context.Background()
	cp := cluster.Start(t)

	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/kubeflow/training-operator").Output()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "manifests", "base", "crds", "kubeflow.org_pytorchjobs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	create(t, ctx, cp, schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}, string(data))
	for _, ns := range []string{"team-platform", "team-research", "other"} {
		create(t, ctx, cp, schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+ns+"}\n")
	}

	// The CRD serves a moment after it is created.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := cp.Dynamic.Resource(pytorchJobs).List(ctx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pytorchjobs not served: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	for _, j := range []struct{ name, team, workers, status string }{
		{"fmnist-cnn", "platform", "3", `{"conditions":[{"type":"Created","status":"True"},{"type":"Running","status":"True"}],"replicaStatuses":{"Master":{"active":1},"Worker":{"active":2,"failed":1}}}`},
		{"quick", "research", "0", `{"conditions":[{"type":"Created","status":"True"},{"type":"Succeeded","status":"True"}],"replicaStatuses":{"Master":{"succeeded":1}}}`},
		{"not-aerie", "", "0", `{"conditions":[{"type":"Created","status":"True"}]}`},
	} {
		meta := "{name: " + j.name + ", namespace: other}"
		if j.team != "" {
			meta = "{name: " + j.name + ", namespace: team-" + j.team + ", labels: {aerie.dev/team: " + j.team + "}}"
		}
		doc := `
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: ` + meta + `
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      template: {spec: {containers: [{name: pytorch, image: trainer}]}}
`
		if j.workers != "0" {
			doc += "    Worker:\n      replicas: " + j.workers + "\n      template: {spec: {containers: [{name: pytorch, image: trainer}]}}\n"
		}
		u := create(t, ctx, cp, pytorchJobs, doc)
		var st map[string]any
		if err := yaml.Unmarshal([]byte(j.status), &st); err != nil {
			t.Fatal(err)
		}
		// Conditions need timestamps to pass the CRD's schema.
		for _, c := range st["conditions"].([]any) {
			c.(map[string]any)["lastTransitionTime"] = time.Now().UTC().Format(time.RFC3339)
		}
		u.Object["status"] = st
		if _, err := cp.Dynamic.Resource(pytorchJobs).Namespace(u.GetNamespace()).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update status of %s: %v", j.name, err)
		}
	}

	// Ages are measured from the server's creation timestamps; report as of
	// an hour later so the column is stable.
	for _, tt := range []struct {
		name string
		o    Options
		want string
	}{
		{"every team", Options{}, `NAME         TEAM       PHASE       REPLICAS                            AGE
fmnist-cnn   platform   Running     Master 1/1, Worker 2/3 (1 failed)   60m
quick        research   Succeeded   Master 0/1 (1 succeeded)            60m
`},
		{"one team", Options{Team: "research"}, `NAME    TEAM       PHASE       REPLICAS                   AGE
quick   research   Succeeded   Master 0/1 (1 succeeded)   60m
`},
		{"one namespace", Options{Namespace: "other"}, `NAME        TEAM   PHASE     REPLICAS     AGE
not-aerie          Created   Master 0/1   60m
`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Kubeconfig = cp.Kubeconfig
			var b bytes.Buffer
			if runs, err := Get(ctx, tt.o, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			} else if err := Write(&b, runs); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("Print diff (-want +got):\n%s", diff)
			}
		})
	}
}

func create(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, gvr schema.GroupVersionResource, doc string) *unstructured.Unstructured {
	t.Helper()
	var u unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	ri := cp.Dynamic.Resource(gvr)
	var (
		got *unstructured.Unstructured
		err error
	)
	if ns := u.GetNamespace(); ns != "" {
		got, err = ri.Namespace(ns).Create(ctx, &u, metav1.CreateOptions{})
	} else {
		got, err = ri.Create(ctx, &u, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return got
}
