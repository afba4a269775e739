package agent

import (
	"bytes"
	"os"
	"runtime"
	"testing"
)

// skipIfEmulated skips a test that starts child processes when this binary
// runs under user-mode emulation (the arm64 tier under qemu-aarch64-static):
// a fork from the emulated process can hang in forkExec under load. Such
// tests run natively in the amd64 tier; the emulated tier keeps the pure
// code. Emulation shows as the host's x86 /proc/cpuinfo, which qemu-user
// passes through, beneath a non-x86 GOARCH.
func skipIfEmulated(t *testing.T) {
	t.Helper()
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "386" {
		return
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil && bytes.Contains(b, []byte("\nvendor_id\t")) {
		t.Skipf("starts child processes; skipped under emulation of %s (runs natively in the amd64 tier)", runtime.GOARCH)
	}
}
