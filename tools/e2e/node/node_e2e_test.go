//go:build e2e

package node_test

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aerie-ml/aerie/tools/e2e/cluster"
	"github.com/aerie-ml/aerie/tools/e2e/node"
)

// TestNodeRunsPods binds pods to the node, runs each as a process of the
// test binary (NODE_TEST_HELPER, see TestMain), with a ConfigMap volume
// whose mount path reaches the process rewritten, and reports the exit codes
// as pod phases.
func TestNodeRunsPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp := cluster.Start(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(ctx, node.Config{Name: "e2e-node", Client: cp.Client, Dir: t.TempDir(),
		Images: node.Images{"e2e.local/helper": self}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	// No controller-manager: the ServiceAccount it would create.
	if _, err := cp.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "run"}, Data: map[string]string{"code": "3"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, code string
		wantPhase  corev1.PodPhase
		wantCode   int32
	}{
		{"ok", "0", corev1.PodSucceeded, 0},
		{"permanent", "3", corev1.PodFailed, 3},
		{"from-volume", "file:/etc/run/code", corev1.PodFailed, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: "default"}, Spec: corev1.PodSpec{
				AutomountServiceAccountToken: new(false),
				RestartPolicy:                corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "main", Image: "e2e.local/helper@sha256:00",
					Env:          []corev1.EnvVar{{Name: "NODE_TEST_HELPER", Value: "exit"}, {Name: "CODE", Value: tt.code}},
					VolumeMounts: []corev1.VolumeMount{{Name: "run", MountPath: "/etc/run"}}}},
				Volumes: []corev1.Volume{{Name: "run", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "run"}}}}},
			}}
			if _, err := cp.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(time.Minute)
			for {
				p, err := cp.Client.CoreV1().Pods("default").Get(ctx, tt.name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
					if p.Spec.NodeName != "e2e-node" {
						t.Errorf("pod bound to %q, want e2e-node", p.Spec.NodeName)
					}
					term := p.Status.ContainerStatuses[0].State.Terminated
					if p.Status.Phase != tt.wantPhase || term == nil || term.ExitCode != tt.wantCode {
						t.Errorf("pod %s: phase %s, terminated %+v; want %s with exit code %d", tt.name, p.Status.Phase, term, tt.wantPhase, tt.wantCode)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("pod %s still %s after 1m: %+v", tt.name, p.Status.Phase, p.Status.ContainerStatuses)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
