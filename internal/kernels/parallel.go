package kernels

import (
	"runtime"
	"sync"
)

// minParallelElements is the least work, in elements, worth a goroutine
// of an elementwise kernel: below it starting one costs more.
const minParallelElements = 1 << 14

// splitWork runs work over [0, items) in contiguous ranges of at least
// grain items, one per goroutine up to GOMAXPROCS; with one core or too
// few items, on the calling goroutine.
func splitWork(items, grain int, work func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), items/max(1, grain))
	if workers <= 1 {
		work(0, items)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { work(items*w/workers, items*(w+1)/workers) })
	}
	wg.Wait()
}
