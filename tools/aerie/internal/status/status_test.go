package status

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func job(name string, master, workers int32, conds []kubeflowv1.JobConditionType, statuses map[kubeflowv1.ReplicaType]*kubeflowv1.ReplicaStatus) *kubeflowv1.PyTorchJob {
	j := &kubeflowv1.PyTorchJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-platform", Labels: map[string]string{"aerie.dev/team": "platform"}, CreationTimestamp: metav1.NewTime(t0)},
		Spec: kubeflowv1.PyTorchJobSpec{PyTorchReplicaSpecs: map[kubeflowv1.ReplicaType]*kubeflowv1.ReplicaSpec{
			kubeflowv1.PyTorchJobReplicaTypeMaster: {Replicas: &master},
		}},
		Status: kubeflowv1.JobStatus{ReplicaStatuses: statuses},
	}
	if workers > 0 {
		j.Spec.PyTorchReplicaSpecs[kubeflowv1.PyTorchJobReplicaTypeWorker] = &kubeflowv1.ReplicaSpec{Replicas: &workers}
	}
	for _, c := range conds {
		j.Status.Conditions = append(j.Status.Conditions, kubeflowv1.JobCondition{Type: c, Status: "True"})
	}
	return j
}

func TestFromJob(t *testing.T) {
	tests := []struct {
		name string
		job  *kubeflowv1.PyTorchJob
		now  time.Time
		want Run
	}{
		{
			name: "new",
			job:  job("a", 1, 3, nil, nil),
			now:  t0.Add(90 * time.Second),
			want: Run{Team: "platform", Name: "a", Phase: "Pending", Age: 90 * time.Second, Replicas: []Replicas{{Type: "Master", Desired: 1}, {Type: "Worker", Desired: 3}}},
		},
		{
			name: "running",
			job: job("b", 1, 3, []kubeflowv1.JobConditionType{kubeflowv1.JobCreated, kubeflowv1.JobRunning}, map[kubeflowv1.ReplicaType]*kubeflowv1.ReplicaStatus{
				kubeflowv1.PyTorchJobReplicaTypeMaster: {Active: 1},
				kubeflowv1.PyTorchJobReplicaTypeWorker: {Active: 2, Failed: 1},
			}),
			now:  t0.Add(time.Hour),
			want: Run{Team: "platform", Name: "b", Phase: "Running", Age: time.Hour, Replicas: []Replicas{{Type: "Master", Desired: 1, Active: 1}, {Type: "Worker", Desired: 3, Active: 2, Failed: 1}}},
		},
		{
			name: "succeeded wins over running",
			job: job("c", 1, 0, []kubeflowv1.JobConditionType{kubeflowv1.JobCreated, kubeflowv1.JobRunning, kubeflowv1.JobSucceeded}, map[kubeflowv1.ReplicaType]*kubeflowv1.ReplicaStatus{
				kubeflowv1.PyTorchJobReplicaTypeMaster: {Succeeded: 1},
			}),
			now:  t0.Add(time.Minute),
			want: Run{Team: "platform", Name: "c", Phase: "Succeeded", Age: time.Minute, Replicas: []Replicas{{Type: "Master", Desired: 1, Succeeded: 1}}},
		},
		{
			name: "clock behind creation",
			job:  job("d", 1, 0, []kubeflowv1.JobConditionType{kubeflowv1.JobCreated}, nil),
			now:  t0.Add(-time.Second),
			want: Run{Team: "platform", Name: "d", Phase: "Created", Replicas: []Replicas{{Type: "Master", Desired: 1}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, FromJob(tt.job, tt.now)); diff != "" {
				t.Errorf("FromJob diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	runs := []Run{
		{Name: "fmnist-cnn", Team: "platform", Phase: "Running", Age: 3 * time.Hour, Replicas: []Replicas{{Type: "Master", Desired: 1, Active: 1}, {Type: "Worker", Desired: 3, Active: 2, Failed: 1}}},
		{Name: "quick", Team: "research", Phase: "Succeeded", Age: 2 * time.Minute, Replicas: []Replicas{{Type: "Master", Desired: 1, Succeeded: 1}}},
	}
	var b bytes.Buffer
	if err := Write(&b, runs); err != nil {
		t.Fatal(err)
	}
	want := `NAME         TEAM       PHASE       REPLICAS                            AGE
fmnist-cnn   platform   Running     Master 1/1, Worker 2/3 (1 failed)   3h
quick        research   Succeeded   Master 0/1 (1 succeeded)            2m
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("Write diff (-want +got):\n%s", diff)
	}
}
