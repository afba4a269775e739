//go:build unix

package sysstat

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func rusage() (cpu time.Duration, maxRSS int64, err error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, err
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	// On Linux ru_maxrss also counts the memory of the parent this process
	// was forked from before it exec'd (a launcher, go test), so read this
	// image's own high-water mark instead.
	if hwm, ok := vmHWM(); ok {
		return cpu, hwm, nil
	}
	maxRSS = int64(ru.Maxrss)
	// Linux and the BSDs report kilobytes; Darwin reports bytes.
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		maxRSS *= 1024
	}
	return cpu, maxRSS, nil
}

// vmHWM reads Linux's peak resident set size from /proc/self/status.
func vmHWM() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	_, rest, ok := bytes.Cut(b, []byte("\nVmHWM:"))
	if !ok {
		return 0, false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line), []byte("kB")))), 10, 64)
	if err != nil {
		return 0, false
	}
	return kb << 10, true
}
