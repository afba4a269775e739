// Package sysstat measures what a training window cost the process: CPU
// utilization of its GOMAXPROCS cores and peak resident memory.
package sysstat

import (
	"fmt"
	"runtime"
	"time"
)

// Sample is a reading of the process's cumulative resource use.
type Sample struct {
	Wall time.Time
	// CPU is user plus system time of all the process's threads.
	CPU time.Duration
	// MaxRSS is the process's peak resident set size so far, in bytes.
	MaxRSS int64
}

// Usage is what a window between two samples cost.
type Usage struct {
	Wall time.Duration
	CPU  time.Duration
	// Cores is the GOMAXPROCS the window was measured against.
	Cores int
	// Utilization is CPU / Wall / Cores: 1 means every core was busy
	// for the whole window.
	Utilization float64
	// PeakRSSBytes is the peak resident set size at the end of the window.
	// The kernel keeps one high-water mark per process, so it includes
	// anything before the window too.
	PeakRSSBytes int64
}

// Read takes a sample now.
func Read() (Sample, error) {
	wall := time.Now()
	cpu, maxRSS, err := rusage()
	if err != nil {
		return Sample{}, fmt.Errorf("read process resource usage: %w", err)
	}
	return Sample{Wall: wall, CPU: cpu, MaxRSS: maxRSS}, nil
}

// Between computes the usage from start to end against cores (GOMAXPROCS
// when cores <= 0).
func Between(start, end Sample, cores int) Usage {
	if cores <= 0 {
		cores = runtime.GOMAXPROCS(0)
	}
	u := Usage{
		Wall:         end.Wall.Sub(start.Wall),
		CPU:          end.CPU - start.CPU,
		Cores:        cores,
		PeakRSSBytes: end.MaxRSS,
	}
	if u.Wall > 0 {
		u.Utilization = u.CPU.Seconds() / u.Wall.Seconds() / float64(cores)
	}
	return u
}

// Meter measures one window: Start it before training, Stop it after.
type Meter struct {
	start Sample
}

// Start begins a window.
func Start() (*Meter, error) {
	s, err := Read()
	if err != nil {
		return nil, err
	}
	return &Meter{start: s}, nil
}

// Stop ends the window against GOMAXPROCS cores. A Meter can be stopped
// more than once; each call measures from Start.
func (m *Meter) Stop() (Usage, error) {
	end, err := Read()
	if err != nil {
		return Usage{}, err
	}
	return Between(m.start, end, 0), nil
}

func (u Usage) String() string {
	return fmt.Sprintf("cpu %.1f%% of %d cores (%s cpu in %s wall), peak rss %.1f MiB",
		100*u.Utilization, u.Cores, u.CPU.Round(time.Millisecond), u.Wall.Round(time.Millisecond),
		float64(u.PeakRSSBytes)/(1<<20))
}
