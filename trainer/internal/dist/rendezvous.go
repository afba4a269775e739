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
	mrand "math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

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
// Errors carry exitcode.Config for what a retry cannot fix (token or
// WORLD_SIZE mismatch) and exitcode.PeerLost otherwise.
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
	j := &joiner{cfg: &cfg, log: cfg.Logger.With("world", cfg.WorldSize)}
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
}

// mac binds a handshake to the token, both nonces, both ranks, the world
// size and the purpose; role keeps the dialer's and listener's proofs apart.
func (j *joiner) mac(role byte, p purpose, dialer, listener uint32, nd, nl []byte) [macSize]byte {
	m := hmac.New(sha256.New, []byte(j.cfg.Token))
	var b [16]byte
	b[0], b[1] = role, byte(p)
	binary.LittleEndian.PutUint32(b[2:], uint32(j.cfg.WorldSize))
	binary.LittleEndian.PutUint32(b[6:], dialer)
	binary.LittleEndian.PutUint32(b[10:], listener)
	m.Write([]byte("aerie-dist/1\x00"))
	m.Write(b[:14])
	m.Write(nd)
	m.Write(nl)
	var out [macSize]byte
	m.Sum(out[:0])
	return out
}

func errAuth(p Peer, who string) error {
	return exitcode.Wrap(exitcode.Config, &PeerError{Peer: p, Err: fmt.Errorf(
		"authentication failed: %s %s differs from this rank's (all ranks of a job must share Secret aerie-rendezvous)", who, EnvToken)})
}

// handshakeDial runs the dialer's side on a fresh connection to the rank
// wantRank.
func (j *joiner) handshakeDial(conn *net.TCPConn, p purpose, wantRank int, listenPort uint16) (*link, error) {
	l := newLink(conn, j.cfg.Rank, Peer{Rank: wantRank, Addr: conn.RemoteAddr().String()}, j.cfg)
	h := hello{Purpose: p, World: uint32(j.cfg.WorldSize), ListenPort: listenPort}
	rand.Read(h.Nonce[:])
	var b [helloSize]byte
	h.marshal(b[:])
	if err := l.writeSmall(typeHello, b[:]); err != nil {
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
	if int(ch.World) != j.cfg.WorldSize {
		return nil, exitcode.Wrap(exitcode.Config, l.errorf("it has %s=%d, this rank %d", EnvWorldSize, ch.World, j.cfg.WorldSize))
	}
	want := j.mac('L', p, uint32(j.cfg.Rank), uint32(wantRank), h.Nonce[:], ch.Nonce[:])
	if !hmac.Equal(want[:], ch.MAC[:]) {
		return nil, errAuth(l.peer, "its")
	}
	proof := j.mac('D', p, uint32(j.cfg.Rank), uint32(wantRank), h.Nonce[:], ch.Nonce[:])
	if err := l.writeSmall(typeAuth, proof[:]); err != nil {
		return nil, err
	}
	return l, nil
}

// handshakeAccept runs the listener's side. The dialer's rank is what it
// claims; the MAC makes the claim trustworthy.
func (j *joiner) handshakeAccept(conn *net.TCPConn) (*link, hello, error) {
	l := newLink(conn, j.cfg.Rank, Peer{Rank: -1, Addr: conn.RemoteAddr().String()}, j.cfg)
	hd, buf, err := l.read(nil)
	if err != nil {
		return nil, hello{}, err
	}
	if hd.Type != typeHello {
		return nil, hello{}, l.errorf("got a %s frame, want hello", hd.Type)
	}
	h, err := parseHello(buf[headerSize:])
	if err != nil {
		return nil, hello{}, l.errorf("%w", err)
	}
	if int64(hd.Sender) >= int64(j.cfg.WorldSize) || int(hd.Sender) == j.cfg.Rank {
		return nil, hello{}, l.errorf("claims rank %d, want one in [0, %d) other than %d", hd.Sender, j.cfg.WorldSize, j.cfg.Rank)
	}
	l.peer.Rank = int(hd.Sender)
	if int(h.World) != j.cfg.WorldSize {
		return nil, hello{}, exitcode.Wrap(exitcode.Config, l.errorf("it has %s=%d, this rank %d", EnvWorldSize, h.World, j.cfg.WorldSize))
	}
	ch := challenge{World: uint32(j.cfg.WorldSize)}
	rand.Read(ch.Nonce[:])
	ch.MAC = j.mac('L', h.Purpose, hd.Sender, uint32(j.cfg.Rank), h.Nonce[:], ch.Nonce[:])
	var b [chalSize]byte
	ch.marshal(b[:])
	if err := l.writeSmall(typeChallenge, b[:]); err != nil {
		return nil, hello{}, err
	}
	payload, err := l.expect(typeAuth)
	if err != nil {
		return nil, hello{}, fmt.Errorf("%w (a dialer with another token hangs up here)", err)
	}
	want := j.mac('D', h.Purpose, hd.Sender, uint32(j.cfg.Rank), h.Nonce[:], ch.Nonce[:])
	if !hmac.Equal(want[:], payload) {
		return nil, hello{}, errAuth(l.peer, "its")
	}
	return l, h, nil
}

// accepted is one finished handshake on a listener.
type accepted struct {
	l        *link
	h        hello
	err      error
	listener bool // err is the listener's, not one handshake's
}

// acceptLoop accepts and authenticates connections on ln until take has
// accepted n of them or ctx ends. take decides whether an authenticated peer
// is the one expected; rejected and unauthenticated peers are logged and
// closed, and the last rejection is reported if the wait times out.
func (j *joiner) acceptLoop(ctx context.Context, ln *net.TCPListener, n int, take func(*link, hello) error, missing func() string) ([]*link, error) {
	results := make(chan accepted)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	pending := map[*net.TCPConn]bool{}
	defer func() {
		close(quit)
		_ = ln.SetDeadline(time.Now())
		mu.Lock()
		for c := range pending {
			_ = c.SetDeadline(time.Now())
		}
		mu.Unlock()
		wg.Wait()
		_ = ln.SetDeadline(time.Time{})
	}()
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
	stop := context.AfterFunc(ctx, func() { _ = ln.SetDeadline(time.Now()) })
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
				err = fmt.Errorf("gave up after %s waiting for %s", j.cfg.RendezvousTimeout, missing())
				if lastReject != nil {
					err = fmt.Errorf("%w; the last peer turned away: %w", err, lastReject)
				}
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
	joined := make([]*link, cfg.WorldSize)
	take := func(l *link, h hello) error {
		if h.Purpose != purposeJoin {
			return l.errorf("dialed for the %s before the rendezvous finished", h.Purpose)
		}
		if joined[l.peer.Rank] != nil {
			return l.errorf("rank %d already joined from %s", l.peer.Rank, joined[l.peer.Rank].peer.Addr)
		}
		host, _, _ := net.SplitHostPort(l.conn.RemoteAddr().String())
		addrs[l.peer.Rank] = net.JoinHostPort(host, strconv.Itoa(int(h.ListenPort)))
		joined[l.peer.Rank] = l
		j.log.Info("peer joined", "peer", l.peer.String())
		return nil
	}
	missing := func() string {
		var m []int
		for r := 1; r < cfg.WorldSize; r++ {
			if joined[r] == nil {
				m = append(m, r)
			}
		}
		return fmt.Sprintf("ranks %v to join", m)
	}
	links, err := j.acceptLoop(ctx, tl, cfg.WorldSize-1, take, missing)
	if err != nil {
		return nil, nil, err
	}
	peers := append(make([]byte, headerSize), marshalPeers(addrs)...)
	for _, l := range links {
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

func (j *joiner) takePred(l *link, h hello) error {
	want := (j.cfg.Rank + j.cfg.WorldSize - 1) % j.cfg.WorldSize
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
	payload, err := l.expect(typePeers)
	_ = l.close()
	if err != nil {
		return nil, nil, err
	}
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
// succeeds, fails permanently (exitcode.Config) or ctx ends. Rank 0's pod
// may start minutes after the others, and its name may not resolve yet.
func (j *joiner) retry(ctx context.Context, addr string, attempt func(*net.TCPConn) error) error {
	backoff := 50 * time.Millisecond
	var last error
	for n := 0; ; n++ {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			tc := conn.(*net.TCPConn)
			if err = attempt(tc); err == nil {
				return nil
			}
			_ = conn.Close()
			if exitcode.Of(err) == exitcode.Config {
				return err
			}
		}
		last = err
		if n == 0 || n%20 == 0 {
			j.log.Info("peer not reachable yet; retrying", "addr", addr, "err", err)
		}
		wait := backoff/2 + mrand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up dialing %s after %s: %w", addr, j.cfg.RendezvousTimeout, last)
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
