package dist

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

// Join makes this process a member of the job described by cfg.Env and
// returns once the ring is up. Rank 0 listens on MASTER_PORT and waits for
// every other rank; the others dial it, retrying with backoff, and tell it
// the port where they accept their ring predecessor. Rank 0 then sends every
// rank the table of addresses, and each rank links to its successor. Every
// connection starts with a mutual HMAC-SHA256 challenge over
// AERIE_RENDEZVOUS_TOKEN, so only holders of the token take part.
//
// Errors carry exitcode.Config for what a retry cannot fix (another token,
// WORLD_SIZE or Job, or a RANK held by two live processes) and
// exitcode.PeerLost otherwise. Rank 0 tells a rank it turns away why, and a
// mismatch it detects fails every rank within about rejectLinger; a rank that
// is merely slow to start is waited for up to RendezvousTimeout.
func Join(ctx context.Context, cfg Config) (*Comm, error) {
	cfg.setDefaults()
	if cfg.WorldSize < 1 || cfg.Rank < 0 || cfg.Rank >= cfg.WorldSize {
		return nil, exitcode.Errorf(exitcode.Config, "dist: rank %d of world size %d is out of range", cfg.Rank, cfg.WorldSize)
	}
	c := newComm(cfg.Rank, cfg.WorldSize, &cfg)
	if cfg.WorldSize == 1 {
		return c, nil
	}
	if cfg.Token == "" {
		return nil, exitcode.Errorf(exitcode.Config, "dist: %s is empty", EnvToken)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.RendezvousTimeout)
	defer cancel()
	j := &joiner{cfg: &cfg, log: cfg.Logger.With("world", cfg.WorldSize), job: sha256.Sum256([]byte(cfg.Job))}
	var next, prev *link
	var err error
	if cfg.Rank == 0 {
		next, prev, err = j.master(ctx)
	} else {
		next, prev, err = j.worker(ctx)
	}
	if err != nil {
		if exitcode.Of(err) == exitcode.Internal {
			err = exitcode.Wrap(exitcode.PeerLost, err)
		}
		return nil, fmt.Errorf("rendezvous of rank %d with %s: %w", cfg.Rank, cfg.Master(), err)
	}
	j.log.Info("ring formed", "next", next.peer.String(), "prev", prev.peer.String())
	c.start(next, prev, &cfg)
	return c, nil
}

type joiner struct {
	cfg *Config
	log *slog.Logger
	job [jobSize]byte
}

// rejectLinger is how long rank 0, having found a configuration mismatch,
// keeps telling ranks that dial it why the job cannot form, so that none
// waits out the rendezvous timeout for a master that is gone.
const rejectLinger = 10 * time.Second

// mac binds a handshake to the token, both ranks, the dialer's hello and the
// listener's challenge (purpose, world sizes, job digests, nonces); role
// keeps the dialer's and listener's proofs apart.
func (j *joiner) mac(role byte, dialer, listener uint32, hb, cb []byte) [macSize]byte {
	m := hmac.New(sha256.New, []byte(j.cfg.Token))
	var b [9]byte
	b[0] = role
	binary.LittleEndian.PutUint32(b[1:], dialer)
	binary.LittleEndian.PutUint32(b[5:], listener)
	m.Write([]byte("aerie-dist/2\x00"))
	m.Write(b[:])
	m.Write(hb)
	m.Write(cb)
	var out [macSize]byte
	m.Sum(out[:0])
	return out
}

func errAuth(p Peer, who string) error {
	return exitcode.Wrap(exitcode.Config, &PeerError{Peer: p, Err: fmt.Errorf(
		"authentication failed: %s %s differs from this rank's (all ranks of a job must share Secret aerie-rendezvous)", who, EnvToken)})
}

// handshakeDial runs the dialer's side on a fresh connection to the rank
// wantRank. A listener with another WORLD_SIZE or job is a permanent error:
// the dialer still proves itself, so the listener can trust the mismatch
// too, and reports the listener's rejection if one arrives.
func (j *joiner) handshakeDial(conn *net.TCPConn, p purpose, wantRank int, listenPort uint16) (*link, error) {
	l := newLink(conn, j.cfg.Rank, Peer{Rank: wantRank, Addr: conn.RemoteAddr().String()}, j.cfg)
	h := hello{Purpose: p, World: uint32(j.cfg.WorldSize), ListenPort: listenPort, Job: j.job}
	rand.Read(h.Nonce[:])
	var hb [helloSize]byte
	h.marshal(hb[:])
	if err := l.writeSmall(typeHello, hb[:]); err != nil {
		return nil, err
	}
	payload, err := l.expect(typeChallenge)
	if err != nil {
		return nil, err
	}
	ch, err := parseChallenge(payload)
	if err != nil {
		return nil, l.errorf("%w", err)
	}
	want := j.mac('L', uint32(j.cfg.Rank), uint32(wantRank), hb[:], payload[:macOffset])
	if !hmac.Equal(want[:], ch.MAC[:]) {
		return nil, errAuth(l.peer, "its")
	}
	proof := j.mac('D', uint32(j.cfg.Rank), uint32(wantRank), hb[:], payload[:macOffset])
	if err := l.writeSmall(typeAuth, proof[:]); err != nil {
		return nil, err
	}
	var mismatch string
	switch {
	case int(ch.World) != j.cfg.WorldSize:
		mismatch = fmt.Sprintf("it has %s=%d, this rank %d", EnvWorldSize, ch.World, j.cfg.WorldSize)
	case ch.Job != j.job:
		mismatch = fmt.Sprintf("it belongs to another run (job identity %x, this rank's %x)", ch.Job[:6], j.job[:6])
	}
	if mismatch == "" {
		return l, nil
	}
	l.timeout = 5 * time.Second
	if err := l.readReject(); err != nil && exitcode.Of(err) == exitcode.Config {
		mismatch += "; " + err.(*exitcode.Error).Err.Error()
	}
	_ = l.close()
	return nil, exitcode.Wrap(exitcode.Config, l.errorf("configuration mismatch: %s", mismatch))
}

// readReject reads the next frame and turns a rejection into a permanent
// error; any other frame or failure is returned as is.
func (l *link) readReject() error {
	h, buf, err := l.read(nil)
	if err != nil {
		return err
	}
	if h.Type != typeReject {
		return l.errorf("got a %s frame, want reject", h.Type)
	}
	k, reason, err := parseReject(buf[headerSize:])
	if err != nil {
		return l.errorf("%w", err)
	}
	return exitcode.Errorf(exitcode.Config, "it turned this rank away (%s): %s", k, reason)
}

// reject tells an authenticated peer why it is turned away, then hangs up.
func (l *link) reject(k rejectKind, reason string) {
	_ = l.writeSmall(typeReject, marshalReject(k, reason))
	_ = l.close()
}

// handshakeAccept runs the listener's side. The dialer's rank, world size
// and job are what it claims; the MAC makes the claims trustworthy, and the
// caller compares them with this rank's.
func (j *joiner) handshakeAccept(conn *net.TCPConn) (*link, hello, error) {
	l := newLink(conn, j.cfg.Rank, Peer{Rank: -1, Addr: conn.RemoteAddr().String()}, j.cfg)
	hd, buf, err := l.read(nil)
	if err != nil {
		return nil, hello{}, err
	}
	if hd.Type != typeHello {
		return nil, hello{}, l.errorf("got a %s frame, want hello", hd.Type)
	}
	hb := buf[headerSize:]
	h, err := parseHello(hb)
	if err != nil {
		return nil, hello{}, l.errorf("%w", err)
	}
	if hd.Sender >= 1<<16 || int(hd.Sender) == j.cfg.Rank {
		return nil, hello{}, l.errorf("claims rank %d, this rank's own", hd.Sender)
	}
	l.peer.Rank = int(hd.Sender)
	ch := challenge{World: uint32(j.cfg.WorldSize), Job: j.job}
	rand.Read(ch.Nonce[:])
	var cb [chalSize]byte
	ch.marshal(cb[:])
	mac := j.mac('L', hd.Sender, uint32(j.cfg.Rank), hb, cb[:macOffset])
	copy(cb[macOffset:], mac[:])
	if err := l.writeSmall(typeChallenge, cb[:]); err != nil {
		return nil, hello{}, err
	}
	payload, err := l.expect(typeAuth)
	if err != nil {
		return nil, hello{}, fmt.Errorf("%w (a dialer with another token hangs up here)", err)
	}
	want := j.mac('D', hd.Sender, uint32(j.cfg.Rank), hb, cb[:macOffset])
	if !hmac.Equal(want[:], payload) {
		return nil, hello{}, errAuth(l.peer, "its")
	}
	return l, h, nil
}

// mismatch compares an authenticated peer's claims with this rank's
// configuration; kind is 0 when they agree.
func (j *joiner) mismatch(l *link, h hello) (rejectKind, string) {
	switch {
	case int(h.World) != j.cfg.WorldSize:
		return rejectWorld, fmt.Sprintf("rank %d (%s) has %s=%d, rank %d has %s=%d: every rank of a job needs the same %s",
			l.peer.Rank, l.peer.Addr, EnvWorldSize, h.World, j.cfg.Rank, EnvWorldSize, j.cfg.WorldSize, EnvWorldSize)
	case l.peer.Rank >= j.cfg.WorldSize:
		return rejectWorld, fmt.Sprintf("rank %d (%s) claims %s=%d, out of range for %s=%d",
			l.peer.Rank, l.peer.Addr, EnvRank, l.peer.Rank, EnvWorldSize, j.cfg.WorldSize)
	case h.Job != j.job:
		return rejectJob, fmt.Sprintf("rank %d (%s) belongs to another run (job identity %x, rank %d's %x)",
			l.peer.Rank, l.peer.Addr, h.Job[:6], j.cfg.Rank, j.job[:6])
	}
	return 0, ""
}

// accepted is one finished handshake on a listener.
type accepted struct {
	l        *link
	h        hello
	err      error
	listener bool // err is the listener's, not one handshake's
}

// accept accepts and authenticates connections on ln until stop is called
// or ctx ends (then the listener reports an error). Unauthenticated peers
// come out with err set and their connection closed.
func (j *joiner) accept(ctx context.Context, ln *net.TCPListener) (<-chan accepted, func()) {
	results := make(chan accepted)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	pending := map[*net.TCPConn]bool{}
	wg.Go(func() {
		for {
			conn, err := ln.AcceptTCP()
			if err != nil {
				select {
				case results <- accepted{err: err, listener: true}:
				case <-quit:
				}
				return
			}
			mu.Lock()
			pending[conn] = true
			mu.Unlock()
			wg.Go(func() {
				l, h, err := j.handshakeAccept(conn)
				mu.Lock()
				delete(pending, conn)
				mu.Unlock()
				if err != nil {
					_ = conn.Close()
				}
				select {
				case results <- accepted{l: l, h: h, err: err}:
				case <-quit:
					if l != nil {
						_ = l.close()
					}
				}
			})
		}
	})
	stopCtx := context.AfterFunc(ctx, func() { _ = ln.SetDeadline(time.Now()) })
	stop := func() {
		stopCtx()
		close(quit)
		_ = ln.SetDeadline(time.Now())
		mu.Lock()
		for c := range pending {
			_ = c.SetDeadline(time.Now())
		}
		mu.Unlock()
		wg.Wait()
		_ = ln.SetDeadline(time.Time{})
	}
	return results, stop
}

// timedOut explains a rendezvous that ran out of time.
func (j *joiner) timedOut(missing string, lastReject error) error {
	err := fmt.Errorf("gave up after %s waiting for %s", j.cfg.RendezvousTimeout, missing)
	if lastReject != nil {
		err = fmt.Errorf("%w; the last peer turned away: %w", err, lastReject)
	}
	return err
}

// acceptLoop accepts n peers that take agrees to. Peers take refuses and
// unauthenticated peers are logged and closed, and the last refusal is
// reported if the wait times out.
func (j *joiner) acceptLoop(ctx context.Context, ln *net.TCPListener, n int, take func(*link, hello) error, missing func() string) ([]*link, error) {
	results, stop := j.accept(ctx, ln)
	defer stop()
	var links []*link
	var lastReject error
	for len(links) < n {
		a := <-results
		if a.err == nil {
			if a.err = take(a.l, a.h); a.err != nil {
				_ = a.l.close()
			}
		}
		switch {
		case a.err == nil:
			links = append(links, a.l)
		case a.listener:
			err := fmt.Errorf("accept on %s: %w", ln.Addr(), a.err)
			if ctx.Err() != nil {
				err = j.timedOut(missing(), lastReject)
			}
			for _, l := range links {
				_ = l.close()
			}
			return nil, err
		default:
			lastReject = a.err
			j.log.Warn("turned a peer away", "err", a.err)
		}
	}
	return links, nil
}

// alive reports whether a joined worker still holds its connection. It sends
// nothing while it waits for the peers frame, so a read that times out means
// alive; end of file or a reset means the process is gone.
func (l *link) alive() bool {
	_ = l.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := l.br.Peek(1)
	var ne net.Error
	return err == nil || errors.As(err, &ne) && ne.Timeout()
}

func (j *joiner) master(ctx context.Context) (next, prev *link, err error) {
	cfg := j.cfg
	addr := cfg.ListenAddr
	if addr == "" {
		addr = net.JoinHostPort("", strconv.Itoa(cfg.MasterPort))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for the rendezvous: %w", err)
	}
	defer ln.Close()
	tl := ln.(*net.TCPListener)
	j.log.Info("waiting for peers", "listen", ln.Addr().String())

	addrs := make([]string, cfg.WorldSize)
	addrs[0] = cfg.Master()
	joined, err := j.gather(ctx, tl, addrs)
	if err != nil {
		return nil, nil, err
	}
	peers := append(make([]byte, headerSize), marshalPeers(addrs)...)
	for _, l := range joined[1:] {
		err = errors.Join(err, l.write(typePeers, peers))
		_ = l.close()
	}
	if err != nil {
		return nil, nil, err
	}

	var wg sync.WaitGroup
	var nerr error
	wg.Go(func() { next, nerr = j.dialRing(ctx, addrs[1], 1) })
	ring, perr := j.acceptLoop(ctx, tl, 1, j.takePred, func() string {
		return fmt.Sprintf("rank %d to link the ring", cfg.WorldSize-1)
	})
	wg.Wait()
	return j.ringResult(next, ring, nerr, perr)
}

// gather is rank 0's side of the rendezvous: it waits for every other rank
// and fills in their ring addresses. A mismatch it detects in an
// authenticated peer (another WORLD_SIZE, a RANK held by two live
// processes) means the job cannot form: every rank that joined or dials
// within rejectLinger is told why, and all of them, rank 0 included, fail
// with exitcode.Config. A peer of another run is turned away alone.
func (j *joiner) gather(ctx context.Context, ln *net.TCPListener, addrs []string) ([]*link, error) {
	cfg := j.cfg
	results, stop := j.accept(ctx, ln)
	defer stop()
	joined := make([]*link, cfg.WorldSize)
	closeAll := func() {
		for _, l := range joined {
			if l != nil {
				_ = l.close()
			}
		}
	}
	var lastReject error
	// After a fatal mismatch: why, and which ranks have been told.
	var fatal string
	var fatalKind rejectKind
	told := map[int]bool{}
	tellUpTo := cfg.WorldSize
	var linger <-chan time.Time
	fail := func(kind rejectKind, why string) {
		fatal, fatalKind = why, kind
		j.log.Error("configuration mismatch: the job cannot form; telling every rank", "err", why)
		for r, l := range joined {
			if l != nil {
				l.reject(kind, "rank 0 gives up the rendezvous: "+why)
				told[r] = true
				joined[r] = nil
			}
		}
		linger = time.After(rejectLinger)
	}
	allTold := func() bool {
		for r := 1; r < tellUpTo; r++ {
			if !told[r] {
				return false
			}
		}
		return true
	}
	for {
		if fatal == "" && !slices.Contains(joined[1:], nil) {
			return joined, nil
		}
		if fatal != "" && allTold() {
			break
		}
		var a accepted
		select {
		case a = <-results:
		case <-linger:
		}
		if a.l == nil && a.err == nil || a.listener {
			if fatal != "" {
				break
			}
			closeAll()
			if a.listener && ctx.Err() == nil {
				return nil, fmt.Errorf("accept on %s: %w", ln.Addr(), a.err)
			}
			var m []int
			for r := 1; r < cfg.WorldSize; r++ {
				if joined[r] == nil {
					m = append(m, r)
				}
			}
			return nil, j.timedOut(fmt.Sprintf("ranks %v to join", m), lastReject)
		}
		if a.err != nil {
			lastReject = a.err
			j.log.Warn("turned a peer away", "err", a.err)
			continue
		}
		l, h := a.l, a.h
		r := l.peer.Rank
		if fatal != "" {
			l.reject(fatalKind, "rank 0 gives up the rendezvous: "+fatal)
			told[r] = true
			tellUpTo = max(tellUpTo, int(h.World))
			continue
		}
		if h.Purpose != purposeJoin {
			lastReject = l.errorf("dialed for the %s before the rendezvous finished", h.Purpose)
			j.log.Warn("turned a peer away", "err", lastReject)
			_ = l.close()
			continue
		}
		if kind, why := j.mismatch(l, h); kind != 0 {
			l.reject(kind, why)
			if kind == rejectJob {
				lastReject = l.errorf("%s", why)
				j.log.Warn("turned a peer of another run away", "err", lastReject)
				continue
			}
			told[r] = true
			tellUpTo = max(tellUpTo, int(h.World))
			fail(kind, why)
			continue
		}
		if old := joined[r]; old != nil {
			if old.alive() {
				why := fmt.Sprintf("two live processes have %s=%d: %s and %s", EnvRank, r, old.peer.Addr, l.peer.Addr)
				l.reject(rejectDuplicate, why)
				told[r] = true
				fail(rejectDuplicate, why)
				continue
			}
			// It died while waiting (a restarted pod): take its successor.
			j.log.Info("rank rejoined; its earlier connection is gone", "peer", l.peer.String(), "earlier", old.peer.Addr)
			_ = old.close()
		}
		_ = l.conn.SetReadDeadline(time.Time{})
		host, _, _ := net.SplitHostPort(l.conn.RemoteAddr().String())
		addrs[r] = net.JoinHostPort(host, strconv.Itoa(int(h.ListenPort)))
		joined[r] = l
		j.log.Info("peer joined", "peer", l.peer.String())
	}
	closeAll()
	var ranks []int
	for r := range told {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	return nil, exitcode.Errorf(exitcode.Config, "configuration mismatch: %s (told ranks %v)", fatal, ranks)
}

func (j *joiner) takePred(l *link, h hello) error {
	want := (j.cfg.Rank + j.cfg.WorldSize - 1) % j.cfg.WorldSize
	if kind, why := j.mismatch(l, h); kind != 0 {
		l.reject(kind, why)
		return exitcode.Wrap(exitcode.Config, l.errorf("%s", why))
	}
	if h.Purpose != purposeRing || l.peer.Rank != want {
		return l.errorf("unexpected %s connection: this rank accepts only its ring predecessor, rank %d", h.Purpose, want)
	}
	return nil
}

func (j *joiner) ringResult(next *link, prev []*link, nerr, perr error) (*link, *link, error) {
	if err := errors.Join(nerr, perr); err != nil {
		if next != nil {
			_ = next.close()
		}
		for _, l := range prev {
			_ = l.close()
		}
		return nil, nil, err
	}
	return next, prev[0], nil
}

func (j *joiner) worker(ctx context.Context) (next, prev *link, err error) {
	cfg := j.cfg
	var ln *net.TCPListener
	defer func() {
		if ln != nil {
			_ = ln.Close()
		}
	}()
	var l *link
	err = j.retry(ctx, cfg.Master(), func(conn *net.TCPConn) error {
		if ln == nil {
			// Listen where rank 0 reaches us: the local end of this connection.
			addr := cfg.ListenAddr
			if addr == "" {
				host, _, _ := net.SplitHostPort(conn.LocalAddr().String())
				addr = net.JoinHostPort(host, "0")
			}
			nl, err := net.Listen("tcp", addr)
			if err != nil {
				return exitcode.Errorf(exitcode.Config, "listen for the ring predecessor on %s: %w", addr, err)
			}
			ln = nl.(*net.TCPListener)
		}
		var err error
		l, err = j.handshakeDial(conn, purposeJoin, 0, uint16(ln.Addr().(*net.TCPAddr).Port))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	// Rank 0 answers once every rank has joined, which may take minutes.
	if dl, ok := ctx.Deadline(); ok {
		l.timeout = time.Until(dl)
	}
	j.log.Info("joined; waiting for the other ranks", "master", l.peer.String())
	hd, buf, err := l.read(nil)
	_ = l.close()
	if err != nil {
		return nil, nil, err
	}
	if hd.Type == typeReject {
		k, reason, err := parseReject(buf[headerSize:])
		if err != nil {
			return nil, nil, l.errorf("%w", err)
		}
		return nil, nil, exitcode.Wrap(exitcode.Config, l.errorf("it turned this rank away (%s): %s", k, reason))
	}
	if hd.Type != typePeers {
		return nil, nil, l.errorf("got a %s frame, want peers", hd.Type)
	}
	payload := buf[headerSize:]
	addrs, err := parsePeers(payload, cfg.WorldSize)
	if err != nil {
		return nil, nil, l.errorf("%w", err)
	}
	succ := (cfg.Rank + 1) % cfg.WorldSize
	saddr := addrs[succ]
	if succ == 0 {
		saddr = cfg.Master()
	}
	var wg sync.WaitGroup
	var nerr error
	wg.Go(func() { next, nerr = j.dialRing(ctx, saddr, succ) })
	ring, perr := j.acceptLoop(ctx, ln, 1, j.takePred, func() string {
		return fmt.Sprintf("rank %d to link the ring", cfg.Rank-1)
	})
	wg.Wait()
	return j.ringResult(next, ring, nerr, perr)
}

func (j *joiner) dialRing(ctx context.Context, addr string, rank int) (*link, error) {
	var l *link
	err := j.retry(ctx, addr, func(conn *net.TCPConn) error {
		var err error
		l, err = j.handshakeDial(conn, purposeRing, rank, 0)
		return err
	})
	return l, err
}

// retry dials addr and runs attempt on the connection until attempt
// succeeds, fails permanently (exitcode.Config) or ctx ends, waiting from
// 25 ms doubling to 2 s between tries (jittered). Rank 0's pod may start
// minutes after the others, and its name may not resolve yet.
func (j *joiner) retry(ctx context.Context, addr string, attempt func(*net.TCPConn) error) error {
	var last error
	n := 0
	backoff := wait.Backoff{Duration: 25 * time.Millisecond, Factor: 2, Jitter: 1, Steps: math.MaxInt32, Cap: time.Second}
	err := backoff.DelayFunc().Until(ctx, true, true, func(ctx context.Context) (bool, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			if err = attempt(conn.(*net.TCPConn)); err == nil {
				return true, nil
			}
			_ = conn.Close()
			if exitcode.Of(err) == exitcode.Config {
				return false, err
			}
		}
		last = err
		if n%20 == 0 {
			j.log.Info("peer not reachable yet; retrying", "addr", addr, "err", err)
		}
		n++
		return false, nil
	})
	if err != nil && ctx.Err() != nil && last != nil {
		return fmt.Errorf("gave up dialing %s after %s: %w", addr, j.cfg.RendezvousTimeout, last)
	}
	return err
}
