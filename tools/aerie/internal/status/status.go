// Package status reports the training runs a cluster is running: each
// PyTorchJob's team, phase, replicas and age, read with client-go.
package status

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/tools/aerie/internal/render"
)

var pytorchJobs = schema.GroupVersionResource{Group: kubeflowv1.GroupVersion.Group, Version: kubeflowv1.GroupVersion.Version, Resource: "pytorchjobs"}

// Run is one training run as the cluster reports it.
type Run struct {
	Name string `json:"name"`
	// Team is the job's render.LabelTeam.
	Team     string        `json:"team"`
	Phase    string        `json:"phase"`
	Replicas []Replicas    `json:"replicas"`
	Age      time.Duration `json:"age"`
}

// Replicas counts the replicas of one type (Master, Worker).
type Replicas struct {
	Type      string `json:"type"`
	Desired   int32  `json:"desired"`
	Active    int32  `json:"active"`
	Succeeded int32  `json:"succeeded"`
	Failed    int32  `json:"failed"`
}

// phases in precedence order: the operator keeps earlier conditions True
// (Created stays True while Running), so the latest stage wins.
var phases = []kubeflowv1.JobConditionType{
	kubeflowv1.JobSucceeded,
	kubeflowv1.JobFailed,
	kubeflowv1.JobSuspended,
	kubeflowv1.JobRestarting,
	kubeflowv1.JobRunning,
	kubeflowv1.JobCreated,
}

// FromJob summarizes job as of now.
func FromJob(job *kubeflowv1.PyTorchJob, now time.Time) Run {
	r := Run{Name: job.Name, Team: job.Labels[render.LabelTeam], Phase: "Pending", Age: now.Sub(job.CreationTimestamp.Time)}
	if r.Age < 0 {
		r.Age = 0
	}
phase:
	for _, p := range phases {
		for _, c := range job.Status.Conditions {
			if c.Type == p && c.Status == "True" {
				r.Phase = string(p)
				break phase
			}
		}
	}
	types := make([]string, 0, len(job.Spec.PyTorchReplicaSpecs))
	for t := range job.Spec.PyTorchReplicaSpecs {
		types = append(types, string(t))
	}
	// Master first, then the rest by name.
	sort.Slice(types, func(i, j int) bool {
		if (types[i] == string(kubeflowv1.PyTorchJobReplicaTypeMaster)) != (types[j] == string(kubeflowv1.PyTorchJobReplicaTypeMaster)) {
			return types[i] == string(kubeflowv1.PyTorchJobReplicaTypeMaster)
		}
		return types[i] < types[j]
	})
	for _, t := range types {
		spec := job.Spec.PyTorchReplicaSpecs[kubeflowv1.ReplicaType(t)]
		rep := Replicas{Type: t, Desired: 1}
		if spec != nil && spec.Replicas != nil {
			rep.Desired = *spec.Replicas
		}
		if s := job.Status.ReplicaStatuses[kubeflowv1.ReplicaType(t)]; s != nil {
			rep.Active, rep.Succeeded, rep.Failed = s.Active, s.Succeeded, s.Failed
		}
		r.Replicas = append(r.Replicas, rep)
	}
	return r
}

// List returns the PyTorchJobs in namespace, by name; namespace "" means
// aerie's jobs (those labelled with a team) in every namespace.
func List(ctx context.Context, client dynamic.Interface, namespace string, now time.Time) ([]Run, error) {
	var opts metav1.ListOptions
	where := "namespace " + namespace
	if namespace == "" {
		opts.LabelSelector = render.LabelTeam
		where = "every namespace"
	}
	list, err := client.Resource(pytorchJobs).Namespace(namespace).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list pytorchjobs in %s: %w", where, err)
	}
	runs := make([]Run, 0, len(list.Items))
	for _, u := range list.Items {
		var job kubeflowv1.PyTorchJob
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &job); err != nil {
			return nil, fmt.Errorf("pytorchjob %s/%s: %w", u.GetNamespace(), u.GetName(), err)
		}
		runs = append(runs, FromJob(&job, now))
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Name < runs[j].Name })
	return runs, nil
}

// Write prints runs as a table: NAME TEAM PHASE REPLICAS AGE, where REPLICAS is
// active/desired per type, with succeeded and failed counts when non-zero.
func Write(w io.Writer, runs []Run) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTEAM\tPHASE\tREPLICAS\tAGE")
	for _, r := range runs {
		var reps []string
		for _, rep := range r.Replicas {
			s := fmt.Sprintf("%s %d/%d", rep.Type, rep.Active, rep.Desired)
			if rep.Succeeded > 0 {
				s += fmt.Sprintf(" (%d succeeded)", rep.Succeeded)
			}
			if rep.Failed > 0 {
				s += fmt.Sprintf(" (%d failed)", rep.Failed)
			}
			reps = append(reps, s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Team, r.Phase, strings.Join(reps, ", "), duration.HumanDuration(r.Age))
	}
	return tw.Flush()
}

// Options say which cluster and namespace to report on.
type Options struct {
	// Kubeconfig is a kubeconfig path; empty means $KUBECONFIG or
	// ~/.kube/config, as kubectl.
	Kubeconfig string
	// Namespace of the runs; empty means every team's (Team, or all).
	Namespace string
	// Team limits the runs to the team's namespace (runspec.TeamNamespace).
	Team string
}

// Get lists the runs of the cluster o names.
func Get(ctx context.Context, o Options, now time.Time) ([]Run, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ns := o.Namespace
	if o.Team != "" {
		if ns != "" {
			return nil, fmt.Errorf("name a team or a namespace, not both")
		}
		ns = runspec.TeamNamespace(o.Team)
	}
	return List(ctx, client, ns, now)
}
