package sysstat

import (
	"runtime"
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
	if hwm, ok := vmHWM(); ok {
		// The high-water mark of this process image, not of the parent it
		// was forked from.
		if d := u.PeakRSSBytes - hwm; d < -(4<<20) || d > 4<<20 {
			t.Errorf("PeakRSSBytes = %d, /proc/self/status VmHWM = %d, want them within 4 MiB", u.PeakRSSBytes, hwm)
		}
	}
}
