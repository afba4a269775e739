package dist

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// joinAll forms a ring of n ranks inside this process (real TCP on
// 127.0.0.1) and closes it when the test ends.
func joinAll(t testing.TB, n int, mod func(*Config)) []*Comm {
	t.Helper()
	port := freePort(t)
	comms := make([]*Comm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() {
			cfg := Config{Env: Env{MasterAddr: "127.0.0.1", MasterPort: port, WorldSize: n, Rank: r, Token: "test-token"}, RendezvousTimeout: 20 * time.Second}
			if mod != nil {
				mod(&cfg)
			}
			comms[r], errs[r] = Join(context.Background(), cfg)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, c := range comms {
			wg.Go(func() { _ = c.Close(context.Background()) })
		}
		wg.Wait()
	})
	return comms
}

// each runs f on every rank concurrently and returns the errors by rank.
func each(comms []*Comm, f func(r int, c *Comm) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { errs[r] = f(r, c) })
	}
	wg.Wait()
	return errs
}

// rankData is exactly representable, so sums are exact whatever the order.
func rankData(r, n int) []float32 {
	b := make([]float32, n)
	for i := range b {
		b[i] = float32(r*1000 + i%1000)
	}
	return b
}

func checkSum(buf []float32, world int) error {
	for i, v := range buf {
		want := float32(1000*world*(world-1)/2 + world*(i%1000))
		if v != want {
			return fmt.Errorf("element %d of %d = %v, want %v", i, len(buf), v, want)
		}
	}
	return nil
}

var testLengths = []int{0, 1, 2, 3, 5, 7, 64, 1000, 4099, 65537}

func TestAllReduceInProcess(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("world=%d", n), func(t *testing.T) {
			// Small chunks: many frames per segment exercise the pipelining.
			comms := joinAll(t, n, func(c *Config) { c.ChunkBytes = 1024 })
			errs := each(comms, func(r int, c *Comm) error {
				for _, l := range testLengths {
					buf := rankData(r, l)
					if err := c.AllReduce(context.Background(), buf); err != nil {
						return err
					}
					if err := checkSum(buf, n); err != nil {
						return err
					}
				}
				return nil
			})
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCollectives(t *testing.T) {
	const n = 3
	comms := joinAll(t, n, func(c *Config) { c.ChunkBytes = 512 })
	errs := each(comms, func(r int, c *Comm) error {
		ctx := context.Background()
		f := []float64{float64(r) + 0.5, 1}
		if err := c.AllReduceFloat64(ctx, f); err != nil {
			return err
		}
		if f[0] != 4.5 || f[1] != 3 {
			return fmt.Errorf("AllReduceFloat64 = %v, want [4.5 3]", f)
		}
		i := []int64{int64(r), 1 << 40}
		if err := c.AllReduceInt64(ctx, i); err != nil {
			return err
		}
		if i[0] != 3 || i[1] != 3<<40 {
			return fmt.Errorf("AllReduceInt64 = %v, want [3 %d]", i, int64(3<<40))
		}
		w := make([]float32, 3001)
		for k := range w {
			w[k] = float32(r*10000 + k)
		}
		if err := c.Broadcast(ctx, w); err != nil {
			return err
		}
		for k, v := range w {
			if v != float32(k) {
				return fmt.Errorf("Broadcast: element %d = %v, want rank 0's %v", k, v, float32(k))
			}
		}
		// Rank r holds the mean gradient of r+1 examples, each equal to r.
		g := []float32{float32(r), float32(2 * r)}
		total, err := c.AllReduceMean(ctx, g, r+1)
		if err != nil {
			return err
		}
		wantMean := float32(0*1+1*2+2*3) / 6
		if total != 6 || math.Abs(float64(g[0]-wantMean)) > 1e-6 || math.Abs(float64(g[1]-2*wantMean)) > 1e-6 {
			return fmt.Errorf("AllReduceMean = %v over %d, want [%v %v] over 6", g, total, wantMean, 2*wantMean)
		}
		return c.Barrier(ctx)
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func TestMismatchedCollectives(t *testing.T) {
	comms := joinAll(t, 2, nil)
	errs := each(comms, func(r int, c *Comm) error {
		return c.AllReduce(context.Background(), make([]float32, 10+r))
	})
	// The rank that notices reports the disagreement and closes its links;
	// the other may see that close before the reason (a close with unread
	// data resets the connection), so only one is sure to name it.
	named := false
	for r, err := range errs {
		if err == nil {
			t.Fatalf("rank %d: no error, want the job to fail", r)
		}
		named = named || strings.Contains(err.Error(), "disagree on the sequence of collectives")
		if got := exitcode.Of(err); got != exitcode.PeerLost {
			t.Errorf("rank %d: exit code %d, want %d (%v)", r, got, exitcode.PeerLost, err)
		}
	}
	if !named {
		t.Errorf("errors %v, want one to name the sequence disagreement", errs)
	}
}

func TestTokenMismatchInProcess(t *testing.T) {
	port := freePort(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r := range 2 {
		wg.Go(func() {
			tok := "right"
			if r == 1 {
				tok = "wrong"
			}
			_, errs[r] = Join(context.Background(), Config{
				Env:               Env{MasterAddr: "127.0.0.1", MasterPort: port, WorldSize: 2, Rank: r, Token: tok},
				RendezvousTimeout: 2 * time.Second,
			})
		})
	}
	wg.Wait()
	if err := errs[1]; err == nil || !strings.Contains(err.Error(), "authentication failed") || exitcode.Of(err) != exitcode.Config {
		t.Errorf("rank 1: Join error = %v (code %d), want an authentication failure with code %d", err, exitcode.Of(err), exitcode.Config)
	}
	if err := errs[0]; err == nil || !strings.Contains(err.Error(), "turned away") {
		t.Errorf("rank 0: Join error = %v, want a timeout naming the peer it turned away", err)
	}
}

func BenchmarkAllReduce(b *testing.B) {
	for _, n := range []int{2, 3} {
		b.Run(fmt.Sprintf("world=%d/floats=421642", n), func(b *testing.B) {
			comms := joinAll(b, n, nil)
			bufs := make([][]float32, n)
			for r := range bufs {
				bufs[r] = rankData(r, 421642)
			}
			b.SetBytes(4 * 421642)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				errs := each(comms, func(r int, c *Comm) error { return c.AllReduce(context.Background(), bufs[r]) })
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeF32(b *testing.B) {
	src := rankData(1, 65536)
	dst := make([]byte, 4*len(src))
	b.SetBytes(int64(len(dst)))
	for range b.N {
		putF32(dst, src)
	}
}

func BenchmarkAddF32(b *testing.B) {
	dst := rankData(1, 65536)
	src := make([]byte, 4*len(dst))
	b.SetBytes(int64(len(src)))
	for range b.N {
		addF32(dst, src)
	}
}

// TestJobMismatchInProcess: a rank of another run that shares rank 0's
// address and token is told so and fails permanently; rank 0 keeps waiting
// for its own ranks (here until the short rendezvous timeout).
func TestJobMismatchInProcess(t *testing.T) {
	port := freePort(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r := range 2 {
		wg.Go(func() {
			_, errs[r] = Join(context.Background(), Config{
				Env:               Env{MasterAddr: "127.0.0.1", MasterPort: port, WorldSize: 2, Rank: r, Token: "t"},
				Job:               fmt.Sprintf("run-%d", r),
				RendezvousTimeout: 2 * time.Second,
			})
		})
	}
	wg.Wait()
	if err := errs[1]; err == nil || !strings.Contains(err.Error(), "another run") || exitcode.Of(err) != exitcode.Config {
		t.Errorf("rank 1: Join error = %v (code %d), want a run identity mismatch with code %d", err, exitcode.Of(err), exitcode.Config)
	}
	if err := errs[0]; err == nil || !strings.Contains(err.Error(), "another run") || exitcode.Of(err) != exitcode.PeerLost {
		t.Errorf("rank 0: Join error = %v (code %d), want a retryable timeout naming the peer of another run", err, exitcode.Of(err))
	}
}

// TestRejoinAfterDeath: a rank that joined and then died while rank 0 waits
// for the others (a pod restarted before the job formed) is replaced by its
// restart, not mistaken for a second process with its RANK.
func TestRejoinAfterDeath(t *testing.T) {
	port := freePort(t)
	var logs syncLog
	env := func(r int) Env {
		return Env{MasterAddr: "127.0.0.1", MasterPort: port, WorldSize: 3, Rank: r, Token: "test-token"}
	}
	comms := make([]*Comm, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		comms[0], errs[0] = Join(context.Background(), Config{Env: env(0), RendezvousTimeout: 20 * time.Second,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	})

	// The first incarnation of rank 1 joins, then dies.
	cfg := Config{Env: env(1)}
	cfg.setDefaults()
	j := &joiner{cfg: &cfg, log: cfg.Logger, job: sha256.Sum256(nil)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := j.retry(ctx, cfg.Master(), func(conn *net.TCPConn) error {
		l, err := j.handshakeDial(conn, purposeJoin, 0, 1)
		if err == nil {
			_ = l.close()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(logs.String(), "peer joined") {
		select {
		case <-ctx.Done():
			t.Fatalf("rank 0 did not log the first join:\n%s", logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}

	// The restart must reach rank 0 before rank 2 completes the world, or
	// rank 0 rightly forms the ring with the dead incarnation: under load
	// rank 2 may well be first, so it starts only after the rejoin.
	join := func(r int) {
		wg.Go(func() {
			comms[r], errs[r] = Join(context.Background(), Config{Env: env(r), RendezvousTimeout: 20 * time.Second})
		})
	}
	join(1)
	for !strings.Contains(logs.String(), "rank rejoined") {
		select {
		case <-ctx.Done():
			t.Fatalf("rank 0 did not take the restarted rank 1:\n%s", logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	join(2)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("join after rank 1 restarted: %v\nrank 0's log:\n%s", err, logs.String())
	}
	errs = each(comms, func(r int, c *Comm) error {
		buf := rankData(r, 1000)
		if err := c.AllReduce(context.Background(), buf); err != nil {
			return err
		}
		if err := checkSum(buf, 3); err != nil {
			return err
		}
		return c.Close(context.Background())
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "earlier connection is gone") {
		t.Errorf("rank 0 did not log the replacement:\n%s", logs.String())
	}
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
