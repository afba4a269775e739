package runspec

import (
	"strconv"

	"github.com/aerie-ml/aerie/internal/arch"
)

// The memory formula's terms; apps/jobs/README.md explains them.
const (
	// RuntimeBytes is the Go runtime, the gomlx backend with its compiled
	// train and eval graphs, and the store client.
	RuntimeBytes = 256 << 20
	// DataBytes is the training data a replica holds besides the batch:
	// Fashion-MNIST held twice (the compressed download and the decoded
	// images and labels of all 70,000 examples, 785 bytes each).
	DataBytes = 2 * 70_000 * 785
	// ActivationCopies is how many times an image's activation bytes
	// (arch.Plan.ActivationBytes: the forward values kept for the backward
	// pass) a replica holds at its peak: the values, their gradients and
	// the backend's temporaries.
	ActivationCopies = 3
	// ParamCopies is how many float32 copies of the parameters a replica
	// holds: weights, gradients, Adam's two moments, the host copy of the
	// gradients for the all-reduce and the checkpoint buffer.
	ParamCopies = 6
	// TargetUse is the share of the memory request the estimated working
	// set may fill; the rest is headroom for the garbage collector.
	TargetUse = 0.75
	// MinBytesPerCPU and MaxBytesPerCPU are GKE Autopilot's
	// memory-per-vCPU range for general-purpose pods; Autopilot raises a
	// request below it anyway.
	MinBytesPerCPU = 1 << 30
	MaxBytesPerCPU = 6656 << 20 // 6.5Gi
	// memoryStep rounds memory requests up.
	memoryStep = 64 << 20
	// imagesPerCore is the per-replica batch one core keeps busy.
	imagesPerCore = 64
	maxAutoCPU    = 4
)

// WorkingSet estimates a replica's peak live memory in bytes when it
// trains plan with the run's per-replica batch:
//
//	RuntimeBytes + DataBytes
//	  + 4 × (ParamCopies × parameters + state values)
//	  + per-replica batch × ActivationCopies × plan.ActivationBytes
//
// apps/jobs/README.md explains the terms and how they were measured.
func (s *Spec) WorkingSet(plan *arch.Plan) int64 {
	perReplica := int64(s.Model.BatchSize / max(s.Workers.Count, 1))
	var state int64
	for _, p := range plan.State {
		state += arch.Shape(p.Shape).Size()
	}
	return RuntimeBytes + DataBytes + 4*(ParamCopies*plan.NumParams+state) + perReplica*ActivationCopies*plan.ActivationBytes
}

// autoCPU is one core per imagesPerCore images of the per-worker batch,
// between 1 and maxAutoCPU.
func (s *Spec) autoCPU() int {
	perWorker := s.Model.BatchSize / max(s.Workers.Count, 1)
	return min(max((perWorker+imagesPerCore-1)/imagesPerCore, 1), maxAutoCPU)
}

// autoMemory sizes the request so the working set is TargetUse of it,
// rounded up to 64Mi, and not below Autopilot's floor for cpu cores.
func (s *Spec) autoMemory(cpu int, plan *arch.Plan) Bytes {
	need := int64(float64(s.WorkingSet(plan)) / TargetUse)
	need = (need + memoryStep - 1) / memoryStep * memoryStep
	return Bytes(max(need, int64(cpu)*MinBytesPerCPU))
}

// MemoryLimitEnv is the GOMEMLIMIT for a replica with memory bytes: 90%
// of the limit, so the collector works harder before the kernel kills.
func MemoryLimitEnv(memory Bytes) string {
	return strconv.FormatInt(int64(memory)*9/10>>20, 10) + "MiB"
}
