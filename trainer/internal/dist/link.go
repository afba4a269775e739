package dist

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Peer names the other end of a link in errors.
type Peer struct {
	Rank int
	Addr string
}

func (p Peer) String() string {
	if p.Rank < 0 {
		return p.Addr
	}
	return fmt.Sprintf("rank %d (%s)", p.Rank, p.Addr)
}

// PeerError is a failure attributed to one peer.
type PeerError struct {
	Peer Peer
	Err  error
}

func (e *PeerError) Error() string { return "peer " + e.Peer.String() + ": " + e.Err.Error() }
func (e *PeerError) Unwrap() error { return e.Err }

// link is one TCP connection to one peer with the frame protocol on top. Its
// write side may be used by several goroutines (data and heartbeats); its
// read side by one.
type link struct {
	conn    *net.TCPConn
	br      *bufio.Reader
	peer    Peer
	self    uint32
	timeout time.Duration
	maxLen  uint32

	wmu   sync.Mutex
	wseq  uint64
	wlast time.Time
	wsmal [headerSize + maxReason]byte // header-only and small frames

	rseq uint64
	rhdr [headerSize]byte
}

func newLink(conn *net.TCPConn, self int, peer Peer, cfg *Config) *link {
	_ = conn.SetNoDelay(true)
	if cfg.SocketBuffer > 0 {
		_ = conn.SetReadBuffer(cfg.SocketBuffer)
		_ = conn.SetWriteBuffer(cfg.SocketBuffer)
	}
	return &link{
		conn:    conn,
		br:      bufio.NewReaderSize(conn, 64<<10),
		peer:    peer,
		self:    uint32(self),
		timeout: cfg.Timeout,
		maxLen:  uint32(cfg.MaxFrameBytes),
	}
}

func (l *link) errorf(format string, args ...any) error {
	return &PeerError{Peer: l.peer, Err: fmt.Errorf(format, args...)}
}

// ioError explains a network error in the terms an operator needs.
func (l *link) ioError(op string, err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return l.errorf("%s: nothing for %s: the peer stalled or the network between us is down: %w", op, l.timeout, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return l.errorf("%s: connection closed by the peer (it exited or was killed): %w", op, err)
	}
	return l.errorf("%s: %w", op, err)
}

// write sends one frame. buf holds headerSize bytes of room for the header
// followed by the payload, so header and payload leave in one write.
func (l *link) write(t frameType, buf []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.writeLocked(t, buf)
}

func (l *link) writeLocked(t frameType, buf []byte) error {
	l.wseq++
	header{Type: t, Sender: l.self, Seq: l.wseq, Len: uint32(len(buf) - headerSize)}.put(buf)
	now := time.Now()
	_ = l.conn.SetWriteDeadline(now.Add(l.timeout))
	if _, err := l.conn.Write(buf); err != nil {
		return l.ioError("send "+t.String()+" frame", err)
	}
	l.wlast = now
	return nil
}

// writeSmall sends a frame whose payload fits the link's scratch buffer.
func (l *link) writeSmall(t frameType, payload []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	n := copy(l.wsmal[headerSize:], payload)
	if n != len(payload) {
		return fmt.Errorf("internal: %s payload of %d bytes is too large for the scratch buffer", t, len(payload))
	}
	return l.writeLocked(t, l.wsmal[:headerSize+n])
}

// heartbeat sends an empty frame unless the link carried something recently.
func (l *link) heartbeat(interval time.Duration) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if time.Since(l.wlast) < interval/2 {
		return nil
	}
	return l.writeLocked(typeHeartbeat, l.wsmal[:headerSize])
}

// read receives the next frame. Its payload goes to buf[headerSize:], grown
// when needed; the returned slice is buf[:headerSize+Len] so the frame can be
// forwarded as is. Every read has a deadline: heartbeats keep a healthy idle
// link inside it.
func (l *link) read(buf []byte) (header, []byte, error) {
	_ = l.conn.SetReadDeadline(time.Now().Add(l.timeout))
	if _, err := io.ReadFull(l.br, l.rhdr[:]); err != nil {
		return header{}, nil, l.ioError("receive", err)
	}
	h, err := parseHeader(l.rhdr[:], l.maxLen)
	if err != nil {
		return header{}, nil, l.errorf("frame %d: %w", l.rseq+1, err)
	}
	if int(h.Sender) != l.peer.Rank && l.peer.Rank >= 0 {
		return header{}, nil, l.errorf("frame %d claims sender rank %d on this link", l.rseq+1, h.Sender)
	}
	if h.Seq != l.rseq+1 {
		return header{}, nil, l.errorf("%s frame out of sequence: number %d, want %d", h.Type, h.Seq, l.rseq+1)
	}
	l.rseq++
	n := headerSize + int(h.Len)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	copy(buf, l.rhdr[:])
	if _, err := io.ReadFull(l.br, buf[headerSize:]); err != nil {
		return header{}, nil, l.ioError("receive "+h.Type.String()+" payload", err)
	}
	return h, buf, nil
}

// expect reads one frame and insists on its type.
func (l *link) expect(t frameType) ([]byte, error) {
	h, buf, err := l.read(nil)
	if err != nil {
		return nil, err
	}
	if h.Type != t {
		return nil, l.errorf("got a %s frame, want %s", h.Type, t)
	}
	return buf[headerSize:], nil
}

func (l *link) close() error { return l.conn.Close() }

// abort tells the peer why this rank gives up, if the link is free right
// now: a writer stuck on a stalled peer must not delay the failure.
func (l *link) abort(reason string) {
	if !l.wmu.TryLock() {
		return
	}
	defer l.wmu.Unlock()
	n := copy(l.wsmal[headerSize:], reason)
	_ = l.conn.SetWriteDeadline(time.Now().Add(time.Second))
	l.wseq++
	header{Type: typeBye, Sender: l.self, Seq: l.wseq, Len: uint32(n)}.put(l.wsmal[:])
	_, _ = l.conn.Write(l.wsmal[:headerSize+n])
}

// sanitize keeps a peer's text printable.
func sanitize(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, string(b))
}

// inbox owns the read side of the link from the ring predecessor: a
// goroutine reads every frame as it arrives, so heartbeats are consumed and a
// dead or stalled predecessor is noticed even while this rank computes.
type inbox struct {
	l *link
	q chan inFrame

	mu   sync.Mutex
	free [][]byte
	size int // payload capacity of pooled buffers
}

type inFrame struct {
	typ frameType
	buf []byte // header + payload
}

func (f inFrame) payload() []byte { return f.buf[headerSize:] }

func newInbox(l *link, chunkBytes int) *inbox {
	return &inbox{l: l, q: make(chan inFrame, 4096), size: chunkBytes}
}

func (in *inbox) get() []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	if n := len(in.free); n > 0 {
		b := in.free[n-1]
		in.free = in.free[:n-1]
		return b
	}
	// The pool grows only while the predecessor runs ahead of this rank,
	// which the ring bounds to about one collective.
	return make([]byte, headerSize+in.size)
}

func (in *inbox) put(f inFrame) {
	in.mu.Lock()
	in.free = append(in.free, f.buf)
	in.mu.Unlock()
}

// run reads until the link fails or the peer says bye. It reports a failure
// through fail and closes q when it returns.
func (in *inbox) run(done <-chan struct{}, fail func(error), closing func() bool) {
	defer close(in.q)
	for {
		h, buf, err := in.l.read(in.get())
		if err != nil {
			if !closing() {
				fail(err)
			}
			return
		}
		switch h.Type {
		case typeHeartbeat:
			in.put(inFrame{buf: buf})
			continue
		case typeBye:
			if len(buf) > headerSize {
				fail(in.l.errorf("aborted: %s", sanitize(buf[headerSize:])))
			}
			return
		case typeBegin, typeData:
		default:
			fail(in.l.errorf("unexpected %s frame during training", h.Type))
			return
		}
		select {
		case in.q <- inFrame{typ: h.Type, buf: buf}:
		case <-done:
			return
		}
	}
}
