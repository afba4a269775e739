//go:build unix

package sysstat

import (
	"runtime"
	"syscall"
	"time"
)

func rusage() (cpu time.Duration, maxRSS int64, err error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, err
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	maxRSS = int64(ru.Maxrss)
	// Linux and the BSDs report kilobytes; Darwin reports bytes.
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		maxRSS *= 1024
	}
	return cpu, maxRSS, nil
}
