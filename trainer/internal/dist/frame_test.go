package dist

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeaderRoundTrip(t *testing.T) {
	want := header{Type: typeData, Sender: 3, Seq: 1<<40 + 7, Len: 4096}
	var b [headerSize]byte
	want.put(b[:])
	got, err := parseHeader(b[:], 1<<20)
	if err != nil {
		t.Fatalf("parseHeader: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("header round trip (-want +got):\n%s", diff)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := func() []byte {
		var b [headerSize]byte
		header{Type: typeData, Sender: 1, Seq: 1, Len: 16}.put(b[:])
		return b[:]
	}
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		want   string
	}{
		{"short", func(b []byte) []byte { return b[:10] }, "short frame header"},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, "bad frame magic"},
		{"version", func(b []byte) []byte { b[4] = 9; return b }, "version mismatch"},
		{"type zero", func(b []byte) []byte { b[5] = 0; return b }, "unknown frame type 0"},
		{"type high", func(b []byte) []byte { b[5] = byte(typeMax); return b }, "unknown frame type"},
		{"reserved", func(b []byte) []byte { b[6] = 1; return b }, "reserved bytes"},
		{"oversized", func(b []byte) []byte { b[22] = 0x10; return b }, "exceeds the limit of 65536"},
		{"heartbeat with payload", func(b []byte) []byte { b[5] = byte(typeHeartbeat); return b }, "heartbeat frame of 16 bytes, want 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseHeader(tt.mutate(good()), 64<<10)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseHeader() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPeersRoundTrip(t *testing.T) {
	want := []string{"master-0:23456", "10.0.0.7:40001", "[fd00::1]:40002"}
	got, err := parsePeers(marshalPeers(want), 3)
	if err != nil {
		t.Fatalf("parsePeers: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("peers round trip (-want +got):\n%s", diff)
	}
	if _, err := parsePeers(marshalPeers(want), 4); err == nil || !strings.Contains(err.Error(), "WORLD_SIZE=4") {
		t.Errorf("parsePeers with the wrong world size: error = %v", err)
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	h := hello{Purpose: purposeRing, World: 4, ListenPort: 4321, Nonce: [nonceSize]byte{1, 2, 3}, Job: [jobSize]byte{7}}
	var hb [helloSize]byte
	h.marshal(hb[:])
	gh, err := parseHello(hb[:])
	if err != nil || gh != h {
		t.Errorf("parseHello = %+v, %v; want %+v", gh, err, h)
	}
	c := challenge{World: 3, Nonce: [nonceSize]byte{9}, Job: [jobSize]byte{6}, MAC: [macSize]byte{8}}
	var cb [chalSize]byte
	c.marshal(cb[:])
	gc, err := parseChallenge(cb[:])
	if err != nil || gc != c {
		t.Errorf("parseChallenge = %+v, %v; want %+v", gc, err, c)
	}
	b := begin{Op: 77, Kind: opAllReduceF64, Count: 421642}
	var bb [beginSize]byte
	b.marshal(bb[:])
	gb, err := parseBegin(bb[:])
	if err != nil || gb != b {
		t.Errorf("parseBegin = %+v, %v; want %+v", gb, err, b)
	}
}

// FuzzParseHeader feeds the frame decoder arbitrary bytes: it must never
// panic, never accept a payload over the limit, and re-encode what it
// accepts to the same bytes.
func FuzzParseHeader(f *testing.F) {
	var b [headerSize]byte
	header{Type: typeData, Sender: 1, Seq: 1, Len: 16}.put(b[:])
	f.Add(b[:])
	header{Type: typeHeartbeat, Sender: 0, Seq: 9}.put(b[:])
	f.Add(b[:])
	f.Add([]byte("AERI\x01\x07"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		h, err := parseHeader(data, limit)
		if err != nil {
			return
		}
		if h.Len > limit {
			t.Fatalf("accepted a %d-byte payload over the limit %d", h.Len, limit)
		}
		var out [headerSize]byte
		h.put(out[:])
		if string(out[:]) != string(data[:headerSize]) {
			t.Fatalf("re-encoded header %x differs from input %x", out, data[:headerSize])
		}
	})
}

// FuzzParsePayloads covers the decoders of every payload a peer can send
// before authentication or during a collective.
func FuzzParsePayloads(f *testing.F) {
	f.Add(marshalPeers([]string{"a:1", "b:2"}))
	f.Add(make([]byte, helloSize))
	f.Add(make([]byte, chalSize))
	f.Add(make([]byte, beginSize))
	f.Add(marshalReject(rejectWorld, "it has WORLD_SIZE=3"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if addrs, err := parsePeers(data, 2); err == nil {
			if got := marshalPeers(addrs); string(got) != string(data) {
				t.Fatalf("peers %q re-encode to %x, input %x", addrs, got, data)
			}
		}
		_, _ = parseHello(data)
		_, _ = parseChallenge(data)
		_, _ = parseBegin(data)
		if _, reason, err := parseReject(data); err == nil && strings.ContainsFunc(reason, func(r rune) bool { return r < ' ' }) {
			t.Fatalf("reject reason %q keeps control characters", reason)
		}
	})
}

// TestF32WireBytes: the copying fast path of putF32 and getF32 writes and
// reads the same little-endian bytes as the per-element encoding, also for
// signed zeros, infinities, NaN payloads and subnormals.
func TestF32WireBytes(t *testing.T) {
	vals := []float32{0, float32(math.Copysign(0, -1)), 1, -2.5, float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00001), math.Float32frombits(0xffa5a5a5), math.Float32frombits(1), math.MaxFloat32}
	want := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(want[4*i:], math.Float32bits(v))
	}
	got := make([]byte, len(want))
	putF32(got, vals)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("putF32 bytes (-want +got):\n%s", diff)
	}
	back := make([]float32, len(vals))
	getF32(back, want)
	for i := range vals {
		if math.Float32bits(back[i]) != math.Float32bits(vals[i]) {
			t.Errorf("getF32[%d] = %#x, want %#x", i, math.Float32bits(back[i]), math.Float32bits(vals[i]))
		}
	}
	getF32(nil, nil)
	putF32(nil, nil)
}

// TestAddF32Alignment: addF32 sums the same values from aligned wire bytes
// (the fast path) and from misaligned ones (the per-element path).
func TestAddF32Alignment(t *testing.T) {
	src := []float32{1.5, -2, 3.25, float32(math.Inf(1)), 1e-40}
	raw := make([]byte, 4*len(src)+1)
	for _, off := range []int{0, 1} {
		wire := raw[off : off+4*len(src)]
		for i, v := range src {
			binary.LittleEndian.PutUint32(wire[4*i:], math.Float32bits(v))
		}
		dst := []float32{1, 1, 1, 1, 1}
		addF32(dst, wire)
		want := []float32{2.5, -1, 4.25, float32(math.Inf(1)), 1 + 1e-40}
		if diff := cmp.Diff(want, dst); diff != "" {
			t.Errorf("offset %d: addF32 (-want +got):\n%s", off, diff)
		}
	}
}
