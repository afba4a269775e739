package sysstat

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBetween(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		start, end Sample
		cores      int
		want       Usage
	}{
		{
			name:  "two busy cores",
			start: Sample{Wall: t0, CPU: time.Second, MaxRSS: 10},
			end:   Sample{Wall: t0.Add(10 * time.Second), CPU: 19 * time.Second, MaxRSS: 20},
			cores: 2,
			want:  Usage{Wall: 10 * time.Second, CPU: 18 * time.Second, Cores: 2, Utilization: 0.9, PeakRSSBytes: 20},
		},
		{
			name:  "empty window",
			start: Sample{Wall: t0},
			end:   Sample{Wall: t0},
			cores: 4,
			want:  Usage{Cores: 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Between(tt.start, tt.end, tt.cores)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Between() diff (-want +got):\n%s", diff)
			}
		})
	}
}

// spin does a fixed amount of work on every core.
func spin() {
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			x := uint64(1)
			for i := range 20_000_000 {
				x = x*6364136223846793005 + uint64(i)
			}
			if x == 42 {
				println(x)
			}
		})
	}
	wg.Wait()
}

func TestMeterCountsCPUAndMemory(t *testing.T) {
	m, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	spin()
	const grow = 64 << 20
	buf := make([]byte, grow)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1 // touch every page so it is resident
	}
	u, err := m.Stop()
	runtime.KeepAlive(buf)
	if err != nil {
		t.Fatal(err)
	}
	if u.CPU <= 0 || u.Utilization <= 0 || u.Utilization > 1.05 {
		t.Errorf("Stop() = %v, want CPU > 0 and utilization in (0, 1]", u)
	}
	if u.Cores != runtime.GOMAXPROCS(0) {
		t.Errorf("Cores = %d, want GOMAXPROCS %d", u.Cores, runtime.GOMAXPROCS(0))
	}
	// The buffer is resident now, so the high-water mark is at least its
	// size, whatever the process used before.
	if u.PeakRSSBytes < grow {
		t.Errorf("PeakRSSBytes = %d with a %d-byte buffer resident, want at least the buffer", u.PeakRSSBytes, grow)
	}
	if hwm, ok := vmHWM(t); ok {
		// Same high-water mark, read two ways: checks the unit conversion.
		if d := u.PeakRSSBytes - hwm; d < -(4<<20) || d > 4<<20 {
			t.Errorf("PeakRSSBytes = %d, /proc/self/status VmHWM = %d, want them within 4 MiB", u.PeakRSSBytes, hwm)
		}
	}
}

// vmHWM reads Linux's peak RSS from /proc/self/status.
func vmHWM(t *testing.T) (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parse VmHWM %q: %v", rest, err)
			}
			return kb * 1024, true
		}
	}
	return 0, false
}
