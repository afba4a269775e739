// Package e2e is the end-to-end cluster tier (build tag e2e; run it with
// make e2e-cluster): this repository served from a local git server, the
// real Flux source-controller and kustomize-controller syncing clusters/dev
// into a real kube-apiserver, and the real Kubeflow training operator
// turning the rendered PyTorchJobs into pods and services.
package e2e
