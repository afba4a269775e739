// Package node is the e2e tier's node: it runs a pod's containers as local
// processes, each from a locally built binary that the container's image
// reference maps to (Images), and reports how they ended the way a kubelet
// does (exit code 128+n for a signal, OOMKilled), so the Kubeflow training
// operator's restartPolicy ExitCode acts as it would on GKE.
//
// What a container runtime would isolate, a process cannot, so the node
// spells it out:
//   - mounts: a volume is a per-pod directory, and every argument or
//     environment value that starts with a mount path is rewritten onto it;
//   - limits: GOMAXPROCS from the CPU limit and GOMEMLIMIT at 90% of the
//     memory limit (unless the pod sets them), and the node's own OOM
//     killer, which SIGKILLs the process group once its resident set passes
//     the memory limit. These machines have no writable memory cgroup
//     (cgroup v1, and cgroup2 with only hugetlb), and RLIMIT_AS would count
//     the Go runtime's address-space reservations, far above what is
//     resident;
//   - usage: peak RSS from the kernel's rusage of the child, against the
//     memory request.
//
// It is test infrastructure for the e2e tier, not product code.
package node
