// Package emulation tells tests whether they run under user-mode emulation:
// the arm64 edge tier runs its test binaries under qemu-aarch64-static.
package emulation

import (
	"bytes"
	"os"
	"runtime"
	"testing"
)

// Active reports whether this non-x86 binary runs under user-mode
// emulation: qemu-user passes the host's x86 /proc/cpuinfo through.
func Active() bool {
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "386" {
		return false
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	return err == nil && bytes.Contains(b, []byte("\nvendor_id\t"))
}

// SkipChildProcesses skips a test that starts child processes under
// emulation: the emulated binary cannot re-execute itself without the
// emulator (binfmt_misc is not always set up), and a fork from it can hang
// in forkExec under load. Such tests run natively in the amd64 tier.
func SkipChildProcesses(t testing.TB) {
	t.Helper()
	if Active() {
		t.Skipf("starts child processes; skipped under emulation of %s (runs natively in the amd64 tier)", runtime.GOARCH)
	}
}
