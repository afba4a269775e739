package agent

import (
	"testing"
	"time"
)

// TestRetryBackoff: the n-th failure in a row waits in [d/2, d), d
// doubling from the base up to the limit.
func TestRetryBackoff(t *testing.T) {
	base, limit := time.Second, time.Minute
	for range 20 {
		next := retryBackoff(base, limit).DelayFunc()
		for n := 1; n <= 12; n++ {
			d := min(base<<(n-1), limit)
			if got := next(); got < d/2 || got >= d {
				t.Errorf("delay after failure %d = %v, want in [%v, %v)", n, got, d/2, d)
			}
		}
	}
}
