package runspec

import (
	"slices"
	"strconv"
)

// Architecture is what runspec knows of a model architecture: enough to
// validate a name and size a replica, without importing the model code.
type Architecture struct {
	// Params is the number of trainable parameters (float32).
	Params int64
	// ActivationBytes is the training memory per image of a batch: the
	// forward values kept for the backward pass, their gradients and the
	// backend's temporaries.
	ActivationBytes int64
}

// Architectures is the registry of architecture names the trainer builds
// (internal/model). Keep the parameter counts in sync with it.
var Architectures = map[string]Architecture{
	// The prototype's CNN: conv 3×3 1→32, ReLU, max-pool, dropout, conv
	// 3×3 32→64, ReLU, max-pool, dropout, dense 3136→128, ReLU, dropout,
	// dense 128→10. Per image it holds 158,762 float32 forward values (the
	// input, both im2col matrices and every layer's output); ×4 bytes ×3
	// (values, gradients, temporaries).
	"cnn": {Params: 421_642, ActivationBytes: 158_762 * 4 * 3},
	// A tiny model for tests and quick runs: conv 3×3 1→4, ReLU, max-pool,
	// dropout, max-pool, dense 196→10; 15,886 forward values per image.
	"small": {Params: 2_010, ActivationBytes: 15_886 * 4 * 3},
}

// ArchitectureNames returns the registered names, sorted.
func ArchitectureNames() []string {
	names := make([]string, 0, len(Architectures))
	for n := range Architectures {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// The memory formula's terms; apps/jobs/README.md explains them.
const (
	// RuntimeBytes is the Go runtime, the gomlx backend with its compiled
	// train and eval graphs, and the store client.
	RuntimeBytes = 256 << 20
	// DatasetBytes is Fashion-MNIST held twice (the compressed download
	// and the decoded images and labels of all 70,000 examples, 785 bytes
	// each): every replica decodes the files, then keeps its shard.
	DatasetBytes = 2 * 70_000 * 785
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

// WorkingSet estimates a replica's peak live memory in bytes for the run's
// architecture, per-worker batch and parameter count.
func (s *Spec) WorkingSet() int64 {
	a := Architectures[s.Model.Architecture]
	perWorker := int64(s.Model.BatchSize / max(s.Workers.Count, 1))
	return RuntimeBytes + DatasetBytes + a.Params*4*ParamCopies + perWorker*a.ActivationBytes
}

// autoCPU is one core per imagesPerCore images of the per-worker batch,
// between 1 and maxAutoCPU.
func (s *Spec) autoCPU() int {
	perWorker := s.Model.BatchSize / max(s.Workers.Count, 1)
	return min(max((perWorker+imagesPerCore-1)/imagesPerCore, 1), maxAutoCPU)
}

// autoMemory sizes the request so the working set is TargetUse of it,
// rounded up to 64Mi, and not below Autopilot's floor for cpu cores.
func (s *Spec) autoMemory(cpu int) Bytes {
	need := int64(float64(s.WorkingSet()) / TargetUse)
	need = (need + memoryStep - 1) / memoryStep * memoryStep
	return Bytes(max(need, int64(cpu)*MinBytesPerCPU))
}

// MemoryLimitEnv is the GOMEMLIMIT for a replica with memory bytes: 90%
// of the limit, so the collector works harder before the kernel kills.
func MemoryLimitEnv(memory Bytes) string {
	return strconv.FormatInt(int64(memory)*9/10>>20, 10) + "MiB"
}
