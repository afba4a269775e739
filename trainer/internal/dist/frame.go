package dist

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Every message between ranks is a frame: a fixed 24-byte header followed by
// Len bytes of payload. All integers are little-endian.
//
//	offset size field
//	0      4    magic "AERI"
//	4      1    version (2)
//	5      1    type
//	6      2    reserved, must be 0
//	8      4    sender rank
//	12     8    sequence number: 1 for the first frame on a connection, +1 for each next
//	20     4    payload length
const (
	headerSize        = 24
	frameMagic uint32 = 'A' | 'E'<<8 | 'R'<<16 | 'I'<<24
	frameVer   byte   = 2
)

type frameType uint8

const (
	typeHello     frameType = 1 + iota // dialer → listener: purpose, world size, listen port, nonce
	typeChallenge                      // listener → dialer: world size, nonce, MAC
	typeAuth                           // dialer → listener: MAC
	typePeers                          // rank 0 → worker: every rank's ring address
	typeHeartbeat                      // empty; keeps an idle connection provably alive
	typeBegin                          // first frame of a collective: op number, kind, element count
	typeData                           // one chunk of a collective's elements
	typeBye                            // the sender leaves; a payload says why it aborts
	typeReject                         // listener → authenticated dialer: why it is turned away
	typeMax
)

func (t frameType) String() string {
	switch t {
	case typeHello:
		return "hello"
	case typeChallenge:
		return "challenge"
	case typeAuth:
		return "auth"
	case typePeers:
		return "peers"
	case typeHeartbeat:
		return "heartbeat"
	case typeBegin:
		return "begin"
	case typeData:
		return "data"
	case typeBye:
		return "bye"
	case typeReject:
		return "reject"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

type header struct {
	Type   frameType
	Sender uint32
	Seq    uint64
	Len    uint32
}

func (h header) put(b []byte) {
	_ = b[headerSize-1]
	binary.LittleEndian.PutUint32(b[0:], frameMagic)
	b[4] = frameVer
	b[5] = byte(h.Type)
	b[6], b[7] = 0, 0
	binary.LittleEndian.PutUint32(b[8:], h.Sender)
	binary.LittleEndian.PutUint64(b[12:], h.Seq)
	binary.LittleEndian.PutUint32(b[20:], h.Len)
}

// errVersion marks a frame from a peer that speaks another protocol
// version: retrying cannot help.
var errVersion = errors.New("protocol version mismatch")

// parseHeader decodes and checks a header; maxLen bounds the payload so a
// hostile or corrupt length never makes us allocate.
func parseHeader(b []byte, maxLen uint32) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("short frame header: %d bytes, want %d", len(b), headerSize)
	}
	if m := binary.LittleEndian.Uint32(b[0:]); m != frameMagic {
		return header{}, fmt.Errorf("bad frame magic %#08x, want %#08x (not an aerie peer?)", m, frameMagic)
	}
	if v := b[4]; v != frameVer {
		return header{}, fmt.Errorf("%w: frame version %d, this trainer speaks %d", errVersion, v, frameVer)
	}
	h := header{
		Type:   frameType(b[5]),
		Sender: binary.LittleEndian.Uint32(b[8:]),
		Seq:    binary.LittleEndian.Uint64(b[12:]),
		Len:    binary.LittleEndian.Uint32(b[20:]),
	}
	if h.Type == 0 || h.Type >= typeMax {
		return header{}, fmt.Errorf("unknown frame type %d", uint8(h.Type))
	}
	if b[6] != 0 || b[7] != 0 {
		return header{}, fmt.Errorf("%s frame: reserved bytes %#x %#x are not zero", h.Type, b[6], b[7])
	}
	if h.Len > maxLen {
		return header{}, fmt.Errorf("%s frame of %d bytes exceeds the limit of %d", h.Type, h.Len, maxLen)
	}
	if want, ok := fixedLen[h.Type]; ok && h.Len != want {
		return header{}, fmt.Errorf("%s frame of %d bytes, want %d", h.Type, h.Len, want)
	}
	return h, nil
}

const (
	nonceSize = 32
	macSize   = 32
	jobSize   = sha256.Size
	helloSize = 1 + 4 + 2 + nonceSize + jobSize
	chalSize  = 4 + nonceSize + jobSize + macSize
	beginSize = 8 + 1 + 8
)

var fixedLen = map[frameType]uint32{
	typeHello:     helloSize,
	typeChallenge: chalSize,
	typeAuth:      macSize,
	typeHeartbeat: 0,
	typeBegin:     beginSize,
}

// maxReason bounds the reason text of an aborting bye.
const maxReason = 1024

// purpose says why a dialer connects: to join at rank 0 or to be a ring link.
type purpose uint8

const (
	purposeJoin purpose = 1
	purposeRing purpose = 2
)

func (p purpose) String() string {
	switch p {
	case purposeJoin:
		return "rendezvous"
	case purposeRing:
		return "ring"
	}
	return fmt.Sprintf("purpose %d", uint8(p))
}

// hello and challenge carry each side's WORLD_SIZE and job digest, and the
// MACs cover both messages whole, so a mismatch is known to come from a
// holder of the token before anyone acts on it.
type hello struct {
	Purpose    purpose
	World      uint32
	ListenPort uint16
	Nonce      [nonceSize]byte
	Job        [jobSize]byte
}

func (m *hello) marshal(b []byte) {
	b[0] = byte(m.Purpose)
	binary.LittleEndian.PutUint32(b[1:], m.World)
	binary.LittleEndian.PutUint16(b[5:], m.ListenPort)
	copy(b[7:], m.Nonce[:])
	copy(b[7+nonceSize:], m.Job[:])
}

func parseHello(b []byte) (hello, error) {
	if len(b) != helloSize {
		return hello{}, fmt.Errorf("hello of %d bytes, want %d", len(b), helloSize)
	}
	m := hello{
		Purpose:    purpose(b[0]),
		World:      binary.LittleEndian.Uint32(b[1:]),
		ListenPort: binary.LittleEndian.Uint16(b[5:]),
	}
	copy(m.Nonce[:], b[7:])
	copy(m.Job[:], b[7+nonceSize:])
	if m.Purpose != purposeJoin && m.Purpose != purposeRing {
		return hello{}, fmt.Errorf("hello with unknown purpose %d", b[0])
	}
	return m, nil
}

type challenge struct {
	World uint32
	Nonce [nonceSize]byte
	Job   [jobSize]byte
	MAC   [macSize]byte // over the hello and the bytes above
}

// macOffset is where the MAC starts in a marshalled challenge.
const macOffset = chalSize - macSize

func (m *challenge) marshal(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], m.World)
	copy(b[4:], m.Nonce[:])
	copy(b[4+nonceSize:], m.Job[:])
	copy(b[macOffset:], m.MAC[:])
}

func parseChallenge(b []byte) (challenge, error) {
	if len(b) != chalSize {
		return challenge{}, fmt.Errorf("challenge of %d bytes, want %d", len(b), chalSize)
	}
	var m challenge
	m.World = binary.LittleEndian.Uint32(b[0:])
	copy(m.Nonce[:], b[4:])
	copy(m.Job[:], b[4+nonceSize:])
	copy(m.MAC[:], b[macOffset:])
	return m, nil
}

// rejectKind says which part of a dialer's configuration rank 0 refused.
type rejectKind uint8

const (
	rejectWorld     rejectKind = 1 + iota // WORLD_SIZE differs
	rejectJob                             // another run (job identity)
	rejectDuplicate                       // its RANK is held by another live process
)

func (k rejectKind) String() string {
	switch k {
	case rejectWorld:
		return EnvWorldSize + " mismatch"
	case rejectJob:
		return "run identity mismatch"
	case rejectDuplicate:
		return "duplicate " + EnvRank
	}
	return fmt.Sprintf("rejection kind %d", uint8(k))
}

// marshalReject renders a reject payload: kind, then reason text.
func marshalReject(k rejectKind, reason string) []byte {
	if len(reason) > maxReason-1 {
		reason = reason[:maxReason-1]
	}
	return append([]byte{byte(k)}, reason...)
}

func parseReject(b []byte) (rejectKind, string, error) {
	if len(b) < 1 || len(b) > maxReason {
		return 0, "", fmt.Errorf("reject of %d bytes, want 1 to %d", len(b), maxReason)
	}
	k := rejectKind(b[0])
	if k < rejectWorld || k > rejectDuplicate {
		return 0, "", fmt.Errorf("reject of unknown kind %d", b[0])
	}
	return k, sanitize(b[1:]), nil
}

// opKind names what a collective does, so ranks that disagree on the call
// sequence fail with a clear error instead of mixing unrelated buffers.
type opKind uint8

const (
	opAllReduceF32 opKind = 1 + iota
	opAllReduceF64
	opAllReduceI64
	opBroadcastF32
)

func (k opKind) String() string {
	switch k {
	case opAllReduceF32:
		return "all-reduce of float32"
	case opAllReduceF64:
		return "all-reduce of float64"
	case opAllReduceI64:
		return "all-reduce of int64"
	case opBroadcastF32:
		return "broadcast of float32"
	}
	return fmt.Sprintf("op kind %d", uint8(k))
}

type begin struct {
	Op    uint64 // collectives this Comm ran before this one
	Kind  opKind
	Count uint64 // elements
}

func (m *begin) marshal(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], m.Op)
	b[8] = byte(m.Kind)
	binary.LittleEndian.PutUint64(b[9:], m.Count)
}

func parseBegin(b []byte) (begin, error) {
	if len(b) != beginSize {
		return begin{}, fmt.Errorf("begin of %d bytes, want %d", len(b), beginSize)
	}
	return begin{
		Op:    binary.LittleEndian.Uint64(b[0:]),
		Kind:  opKind(b[8]),
		Count: binary.LittleEndian.Uint64(b[9:]),
	}, nil
}

func (m begin) String() string { return fmt.Sprintf("collective #%d, %s × %d", m.Op, m.Kind, m.Count) }

// maxAddrLen bounds one peer address in a peers frame (host:port).
const maxAddrLen = 512

func marshalPeers(addrs []string) []byte {
	n := 4
	for _, a := range addrs {
		n += 2 + len(a)
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, uint32(len(addrs)))
	off := 4
	for _, a := range addrs {
		binary.LittleEndian.PutUint16(b[off:], uint16(len(a)))
		off += 2
		off += copy(b[off:], a)
	}
	return b
}

// parsePeers decodes rank 0's address table; world is the size this rank
// expects.
func parsePeers(b []byte, world int) ([]string, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("peers frame of %d bytes is too short", len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if int64(n) != int64(world) {
		return nil, fmt.Errorf("peers frame lists %d ranks, want WORLD_SIZE=%d", n, world)
	}
	b = b[4:]
	addrs := make([]string, 0, n)
	for i := range int(n) {
		if len(b) < 2 {
			return nil, fmt.Errorf("peers frame truncated at rank %d", i)
		}
		l := int(binary.LittleEndian.Uint16(b))
		b = b[2:]
		if l == 0 || l > maxAddrLen || l > len(b) {
			return nil, fmt.Errorf("peers frame: rank %d address of %d bytes (have %d, limit %d)", i, l, len(b), maxAddrLen)
		}
		addrs = append(addrs, string(b[:l]))
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("peers frame has %d trailing bytes", len(b))
	}
	return addrs, nil
}
