// Package e2e is the end-to-end cluster tier (build tag e2e; run it with
// make e2e-cluster): this repository served from a local git server, the
// real Flux source-controller and kustomize-controller syncing clusters/dev
// into a real kube-apiserver, Kueue's real controller manager admitting the
// rendered (suspended) PyTorchJobs through the teams' queues, and the real
// Kubeflow training operator turning them into pods and services.
//
// Package node (tools/e2e/node) is the tier's node: a virtual-kubelet node
// that binds pods to itself and runs their containers as local processes
// from binaries their images map to, with ConfigMap/emptyDir volumes as
// per-pod directories, MASTER_ADDR/MASTER_PORT mapped onto loopback, CPU and
// memory limits enforced, and exit codes reported as a kubelet would. Its
// own e2e test, TestNodeRunsPods, runs it against the real API server.
//
// TestLifecycle runs a declared run through all of it with real trainer
// processes (built once per test run): Flux applies the rendered job, the
// operator creates the pods, the node runs them against a gs:// bucket in
// fake-gcs-server, a SIGKILLed replica is restarted and resumes from its
// checkpoint, a dataset digest mismatch fails its job without a restart,
// and the TTL removes the finished job.
//
// TestKueueSharesCapacity runs four one-CPU jobs of two teams through
// queues of one CPU each: one job per team is admitted while the others
// wait suspended, a team borrows the other's idle CPU, and a waiting job
// starts when capacity frees.
package e2e
