package manifests

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name string
		yaml string
		want string // substring of the error; "" for valid
	}{
		{
			name: "deployment",
			yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: ns}
spec:
  replicas: 2
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers: [{name: c, image: i}]
`,
		},
		{
			name: "deployment unknown field",
			yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicaz: 2
`,
			want: `unknown field "spec.replicaz"`,
		},
		{
			name: "deployment wrong type",
			yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: two
`,
			want: "cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
		},
		{
			name: "flux kustomization",
			yaml: `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: k, namespace: flux-system}
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
`,
		},
		{
			name: "flux kustomization unknown field",
			yaml: `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: k}
spec:
  prnue: true
`,
			want: `unknown field "spec.prnue"`,
		},
		{
			name: "flux kustomization wrong type",
			yaml: `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: k}
spec:
  prune: "yes"
`,
			want: "cannot unmarshal string into Go struct field KustomizationSpec.spec.prune of type bool",
		},
		{
			name: "flux gitrepository wrong type",
			yaml: `
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: r}
spec:
  url: https://example.com/r
  ref: {tag: [v1]}
`,
			want: "GitRepositoryRef.spec.ref.tag of type string",
		},
		{
			name: "pytorchjob",
			yaml: pytorchJob(""),
		},
		{
			name: "pytorchjob unknown field",
			yaml: pytorchJob("      replicaz: 1\n"),
			want: `unknown field "spec.pytorchReplicaSpecs.Master.replicaz"`,
		},
		{
			name: "pytorchjob wrong type",
			yaml: strings.Replace(pytorchJob(""), "replicas: 1", "replicas: one", 1),
			want: `spec.pytorchReplicaSpecs.Master.replicas: Invalid value: "string": spec.pytorchReplicaSpecs.Master.replicas in body must be of type integer`,
		},
		{
			name: "pytorchjob unknown metadata field",
			yaml: strings.Replace(pytorchJob(""), "namespace: training", "namespace: training\n  labelz: {}", 1),
			want: `metadata: json: unknown field "labelz"`,
		},
		{
			name: "unknown kind",
			yaml: "apiVersion: aerie.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: r}\n",
			want: "TrainingRun r: no schema for aerie.dev/v1alpha1, Kind=TrainingRun",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate([]byte(tt.yaml))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// pytorchJob returns a minimal valid PyTorchJob with extra indented into the
// Master replica spec.
func pytorchJob(extra string) string {
	return `
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: j
  namespace: training
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
` + extra + `      restartPolicy: ExitCode
      template:
        spec:
          containers:
            - name: pytorch
              image: example.com/trainer@sha256:0000000000000000000000000000000000000000000000000000000000000000
`
}
