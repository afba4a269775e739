package dist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

// Config tunes Join. Its zero value (plus an Env) works.
type Config struct {
	Env

	// Job identifies the run (its name, say): ranks whose Jobs differ refuse
	// each other, so a replica of another run that shares the rendezvous
	// address and token is turned away instead of joining.
	Job string
	// ListenAddr is where this rank accepts its ring predecessor. Rank 0
	// defaults to ":MASTER_PORT"; the others to an ephemeral port on the
	// local address of their connection to rank 0.
	ListenAddr string
	// RendezvousTimeout bounds the whole rendezvous: waiting for rank 0 to
	// come up, for every rank to join, and for the ring to form. Default 10m:
	// pods of one job can start minutes apart.
	RendezvousTimeout time.Duration
	// Timeout bounds every read and write once the ring is up. A link that
	// carries nothing, not even a heartbeat, for this long is declared dead.
	// Default 10s, so with the cascade around the ring every rank gives up
	// well inside 30s.
	Timeout time.Duration
	// HeartbeatInterval is how often an idle link sends a heartbeat.
	// Default Timeout/8.
	HeartbeatInterval time.Duration
	// ChunkBytes is the payload of one data frame: the unit of pipelining.
	// Default 256 KiB.
	ChunkBytes int
	// MaxFrameBytes is the largest payload accepted from a peer. Default 1 MiB
	// (at least ChunkBytes).
	MaxFrameBytes int
	// SocketBuffer sets SO_SNDBUF and SO_RCVBUF when positive; zero leaves
	// the kernel's autotuning alone.
	SocketBuffer int
	// Logger receives rendezvous progress; nil discards it.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.RendezvousTimeout <= 0 {
		c.RendezvousTimeout = 10 * time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = c.Timeout / 8
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 256 << 10
	}
	c.ChunkBytes = max(c.ChunkBytes/8*8, 8) // whole elements of every type
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 1 << 20
	}
	c.MaxFrameBytes = max(c.MaxFrameBytes, c.ChunkBytes, 64<<10)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Comm is this rank's membership in the ring. Collectives must be called by
// every rank in the same order with the same lengths; a mismatch fails the
// job with an error naming the peer. Collectives are not safe for concurrent
// use with each other or with Close.
type Comm struct {
	rank, size int
	chunkBytes int
	log        *slog.Logger

	next *link  // to rank+1; nil in a job of one
	prev *inbox // from rank-1

	mu      sync.Mutex // serializes collectives
	op      uint64
	sendBuf []byte
	tokens  chan struct{} // receiver → sender: chunk reduced, may be forwarded
	sent    chan struct{} // sender → receiver: chunk encoded, may be overwritten
	scratch [1]int64

	bg       sync.WaitGroup // heartbeat and reader goroutines
	closing  atomic.Bool
	failOnce sync.Once
	failed   chan struct{}
	err      error         // set before failed is closed
	stop     chan struct{} // closed by Close
}

// Rank is this process's rank, 0 ≤ Rank < Size.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of ranks (WORLD_SIZE).
func (c *Comm) Size() int { return c.size }

// Failed is closed when the ring broke: a peer died, stalled, closed or
// misbehaved. Err then says why. A trainer selects on it to stop computing
// as soon as a peer is lost rather than at its next collective.
func (c *Comm) Failed() <-chan struct{} { return c.failed }

// Err is nil while the ring is healthy, else why it broke. Errors from peer
// loss carry exitcode.PeerLost.
func (c *Comm) Err() error {
	select {
	case <-c.failed:
		return c.err
	default:
		return nil
	}
}

func newComm(rank, size int, cfg *Config) *Comm {
	return &Comm{
		rank:       rank,
		size:       size,
		chunkBytes: cfg.ChunkBytes,
		log:        cfg.Logger,
		failed:     make(chan struct{}),
		stop:       make(chan struct{}),
	}
}

// fail breaks the ring once: it records err and closes every connection, so
// both neighbours notice at once and the failure cascades around the ring.
func (c *Comm) fail(err error) {
	c.failOnce.Do(func() {
		if exitcode.Of(err) == exitcode.Internal && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = exitcode.Wrap(exitcode.PeerLost, err)
		}
		c.err = fmt.Errorf("rank %d: ring broken: %w", c.rank, err)
		close(c.failed)
		if c.next != nil {
			if !c.closing.Load() && !errors.Is(err, context.Canceled) {
				c.next.abort(c.err.Error())
			}
			_ = c.next.close()
		}
		if c.prev != nil {
			_ = c.prev.l.close()
		}
	})
}

// start runs the goroutines that keep the ring links alive.
func (c *Comm) start(next, prev *link, cfg *Config) {
	c.next = next
	c.prev = newInbox(prev, cfg.ChunkBytes)
	c.sendBuf = make([]byte, headerSize+cfg.ChunkBytes)
	c.bg.Add(2)
	go func() {
		defer c.bg.Done()
		c.prev.run(c.failed, c.fail, c.closing.Load)
	}()
	go func() {
		defer c.bg.Done()
		t := time.NewTicker(cfg.HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-c.failed:
				return
			case <-c.stop:
				return
			case <-t.C:
			}
			if c.closing.Load() {
				return
			}
			if err := c.next.heartbeat(cfg.HeartbeatInterval); err != nil {
				if !c.closing.Load() {
					c.fail(err)
				}
				return
			}
		}
	}()
}

// Close leaves the ring. It is collective: it returns once every rank has
// called it (or the ring broke), so rank 0 may write the artifact while the
// others wait in Close, and no rank sees another leave early. It then tells
// the successor that this is on purpose, closes the links and waits for its
// goroutines. The error is the barrier's.
func (c *Comm) Close(ctx context.Context) error {
	if c.next == nil {
		return nil
	}
	err := c.Barrier(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing.Swap(true) {
		return nil
	}
	close(c.stop)
	if err == nil {
		_ = c.next.writeSmall(typeBye, nil)
	}
	_ = c.next.close()
	_ = c.prev.l.close()
	c.bg.Wait()
	return err
}

// enter starts a collective: collectives run one at a time, and none runs on
// a broken ring.
func (c *Comm) enter(ctx context.Context) error {
	c.mu.Lock()
	if err := c.Err(); err != nil {
		c.mu.Unlock()
		return err
	}
	if c.closing.Load() {
		c.mu.Unlock()
		return errors.New("dist: collective on a closed Comm")
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return err
	}
	return nil
}

// recv waits for the next frame from the predecessor.
func (c *Comm) recv(ctx context.Context, want frameType, size int) (inFrame, error) {
	select {
	case f, ok := <-c.prev.q:
		if !ok {
			if err := c.Err(); err != nil {
				return inFrame{}, err
			}
			err := c.prev.l.errorf("left the job (said bye) while this rank still runs collectives")
			c.fail(err)
			return inFrame{}, c.err
		}
		if f.typ != want || (size >= 0 && len(f.payload()) != size) {
			err := c.prev.l.errorf("got a %s frame of %d bytes, want %s of %d: the ranks disagree on the sequence of collectives", f.typ, len(f.payload()), want, size)
			c.prev.put(f)
			c.fail(err)
			return inFrame{}, c.err
		}
		return f, nil
	case <-c.failed:
		return inFrame{}, c.err
	case <-ctx.Done():
		c.fail(ctx.Err())
		return inFrame{}, c.err
	}
}

// checkBegin receives the predecessor's begin frame and compares it with
// ours.
func (c *Comm) checkBegin(ctx context.Context, want begin) error {
	f, err := c.recv(ctx, typeBegin, beginSize)
	if err != nil {
		return err
	}
	got, err := parseBegin(f.payload())
	c.prev.put(f)
	if err == nil && got != want {
		err = fmt.Errorf("it started %s, this rank started %s: the ranks disagree on the sequence of collectives", got, want)
	}
	if err != nil {
		err = &PeerError{Peer: c.prev.l.peer, Err: err}
		c.fail(err)
		return c.err
	}
	return nil
}

func (c *Comm) sendBegin(b begin) error {
	var p [beginSize]byte
	b.marshal(p[:])
	if err := c.next.writeSmall(typeBegin, p[:]); err != nil {
		c.fail(err)
		return c.err
	}
	return nil
}
