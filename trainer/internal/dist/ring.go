package dist

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// littleEndian says the host's memory layout is the wire's, so put and get
// of float32 are plain copies.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// f32Bytes views src's memory as bytes.
func f32Bytes(src []float32) []byte {
	if len(src) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), 4*len(src))
}

type elem interface{ float32 | float64 | int64 }

// codec turns elements into little-endian wire bytes and back; add and get
// decode straight into the caller's buffer, so no step allocates.
type codec[T elem] struct {
	size int
	kind opKind
	put  func(dst []byte, src []T)
	add  func(dst []T, src []byte)
	get  func(dst []T, src []byte)
}

var (
	f32 = codec[float32]{4, opAllReduceF32, putF32, addF32, getF32}
	f64 = codec[float64]{8, opAllReduceF64, putF64, addF64, getF64}
	i64 = codec[int64]{8, opAllReduceI64, putI64, addI64, getI64}
)

// asF32 views wire bytes as float32s when the host is little-endian and
// the bytes are aligned (frame payloads are).
func asF32(src []byte) ([]float32, bool) {
	if !littleEndian || len(src) == 0 || uintptr(unsafe.Pointer(&src[0]))%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&src[0])), len(src)/4), true
}

func putF32(dst []byte, src []float32) {
	dst = dst[:4*len(src)]
	if littleEndian {
		copy(dst, f32Bytes(src))
		return
	}
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

func addF32(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	if v, ok := asF32(src); ok {
		for i, x := range v {
			dst[i] += x
		}
		return
	}
	for i := range dst {
		dst[i] += math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func getF32(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	if littleEndian {
		copy(f32Bytes(dst), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func putF64(dst []byte, src []float64) {
	dst = dst[:8*len(src)]
	for i, v := range src {
		binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(v))
	}
}

func addF64(dst []float64, src []byte) {
	src = src[:8*len(dst)]
	for i := range dst {
		dst[i] += math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
	}
}

func getF64(dst []float64, src []byte) {
	src = src[:8*len(dst)]
	for i := range dst {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
	}
}

func putI64(dst []byte, src []int64) {
	dst = dst[:8*len(src)]
	for i, v := range src {
		binary.LittleEndian.PutUint64(dst[8*i:], uint64(v))
	}
}

func addI64(dst []int64, src []byte) {
	src = src[:8*len(dst)]
	for i := range dst {
		dst[i] += int64(binary.LittleEndian.Uint64(src[8*i:]))
	}
}

func getI64(dst []int64, src []byte) {
	src = src[:8*len(dst)]
	for i := range dst {
		dst[i] = int64(binary.LittleEndian.Uint64(src[8*i:]))
	}
}

// AllReduce replaces buf on every rank with the element-wise sum of all
// ranks' buf. Every rank ends with bit-identical values.
func (c *Comm) AllReduce(ctx context.Context, buf []float32) error {
	return allReduce(ctx, c, buf, f32)
}

// AllReduceFloat64 is AllReduce for float64 sums (metrics).
func (c *Comm) AllReduceFloat64(ctx context.Context, buf []float64) error {
	return allReduce(ctx, c, buf, f64)
}

// AllReduceInt64 is AllReduce for int64 sums (counts).
func (c *Comm) AllReduceInt64(ctx context.Context, buf []int64) error {
	return allReduce(ctx, c, buf, i64)
}

// AllReduceMean replaces buf with the mean over all ranks weighted by each
// rank's example count n: Σ n_k·buf_k / Σ n_k. With buf the mean gradient of
// a rank's n examples, the result is the mean gradient of the global batch,
// also when shards are uneven. It returns the global count.
func (c *Comm) AllReduceMean(ctx context.Context, buf []float32, n int) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("dist: all-reduce mean with a negative example count %d", n)
	}
	if c.size == 1 {
		return n, nil
	}
	c.scratch[0] = int64(n)
	if err := c.AllReduceInt64(ctx, c.scratch[:]); err != nil {
		return 0, err
	}
	total := c.scratch[0]
	if total == 0 {
		return 0, fmt.Errorf("dist: all-reduce mean over zero examples on every rank")
	}
	w := float32(n)
	for i := range buf {
		buf[i] *= w
	}
	if err := c.AllReduce(ctx, buf); err != nil {
		return 0, err
	}
	inv := 1 / float32(total)
	for i := range buf {
		buf[i] *= inv
	}
	return int(total), nil
}

// Barrier returns once every rank has called it.
func (c *Comm) Barrier(ctx context.Context) error {
	var b [1]int64
	return c.AllReduceInt64(ctx, b[:])
}

// allReduce is the ring algorithm: 2(n−1) steps, the first n−1 a
// reduce-scatter (receive a segment, add it into ours, pass the sum on), the
// last n−1 an all-gather (receive a finished segment, copy it, pass it on).
// At step t rank r sends segment r−t and receives segment r−t−1. Segments
// travel in chunks, and a sender goroutine forwards chunk j of step t as soon
// as the receiver has reduced chunk j of step t−1, so sending and receiving
// overlap on both links.
func allReduce[T elem](ctx context.Context, c *Comm, buf []T, cd codec[T]) error {
	if err := c.enter(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if c.size == 1 {
		return nil
	}
	r := ring[T]{c: c, buf: buf, cd: cd, n: c.size, chunk: max(c.chunkBytes/cd.size, 1)}
	b := begin{Op: c.op, Kind: cd.kind, Count: uint64(len(buf))}
	c.op++

	items := 0
	for t := range 2 * (r.n - 1) {
		lo, hi := r.segment(r.recvSeg(t))
		items += r.chunks(lo, hi)
	}
	// The sender's items are the receiver's shifted by one step; one extra
	// segment of room covers the difference.
	lo, hi := r.segment(r.sendSeg(0))
	if room := items + r.chunks(lo, hi); cap(c.tokens) < room {
		c.tokens = make(chan struct{}, room)
		c.sent = make(chan struct{}, room)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		r.send(ctx, b)
	}()
	err := r.receive(ctx, b)
	<-done
	for len(c.tokens) > 0 {
		<-c.tokens
	}
	for len(c.sent) > 0 {
		<-c.sent
	}
	if err == nil {
		err = c.Err()
	}
	return err
}

type ring[T elem] struct {
	c     *Comm
	buf   []T
	cd    codec[T]
	n     int
	chunk int // elements per data frame
}

func (r *ring[T]) mod(x int) int { return ((x % r.n) + r.n) % r.n }

func (r *ring[T]) sendSeg(t int) int { return r.mod(r.c.rank - t) }
func (r *ring[T]) recvSeg(t int) int { return r.mod(r.c.rank - t - 1) }

// segment i is buf[lo:hi]; lengths differ by at most one element.
func (r *ring[T]) segment(i int) (lo, hi int) {
	l := int64(len(r.buf))
	return int(int64(i) * l / int64(r.n)), int(int64(i+1) * l / int64(r.n))
}

// chunks is the number of data frames for buf[lo:hi]. An empty segment
// still sends one empty frame, so every step synchronizes the ring (Barrier
// relies on it).
func (r *ring[T]) chunks(lo, hi int) int { return max((hi-lo+r.chunk-1)/r.chunk, 1) }

func (r *ring[T]) send(ctx context.Context, b begin) {
	c := r.c
	if c.sendBegin(b) != nil {
		return
	}
	for t := range 2 * (r.n - 1) {
		lo, hi := r.segment(r.sendSeg(t))
		for j := range r.chunks(lo, hi) {
			if t > 0 {
				select {
				case <-c.tokens:
				case <-c.failed:
					return
				case <-ctx.Done():
					c.fail(ctx.Err())
					return
				}
			}
			a, e := min(lo+j*r.chunk, hi), min(lo+(j+1)*r.chunk, hi)
			frame := c.sendBuf[:headerSize+(e-a)*r.cd.size]
			r.cd.put(frame[headerSize:], r.buf[a:e])
			c.sent <- struct{}{}
			if err := c.next.write(typeData, frame); err != nil {
				c.fail(err)
				return
			}
		}
	}
}

func (r *ring[T]) receive(ctx context.Context, b begin) error {
	c := r.c
	if err := c.checkBegin(ctx, b); err != nil {
		return err
	}
	for t := range 2 * (r.n - 1) {
		lo, hi := r.segment(r.recvSeg(t))
		for j := range r.chunks(lo, hi) {
			a, e := min(lo+j*r.chunk, hi), min(lo+(j+1)*r.chunk, hi)
			f, err := c.recv(ctx, typeData, (e-a)*r.cd.size)
			if err != nil {
				return err
			}
			if t < r.n-1 {
				r.cd.add(r.buf[a:e], f.payload())
			} else {
				// This segment was last read by the sender n−1 steps ago.
				// The ring's data flow already orders the two; the channel
				// makes the order explicit (and visible to -race).
				select {
				case <-c.sent:
				case <-c.failed:
					c.prev.put(f)
					return c.err
				}
				r.cd.get(r.buf[a:e], f.payload())
			}
			c.prev.put(f)
			c.tokens <- struct{}{}
		}
	}
	return nil
}

// Broadcast copies rank 0's buf into every rank's buf (same length on every
// rank), so all ranks start or resume from identical weights. The chunks
// flow down the chain 0 → 1 → … → n−1, each rank forwarding a chunk as soon
// as it has it.
func (c *Comm) Broadcast(ctx context.Context, buf []float32) error {
	if err := c.enter(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if c.size == 1 {
		return nil
	}
	b := begin{Op: c.op, Kind: opBroadcastF32, Count: uint64(len(buf))}
	c.op++
	chunk := max(c.chunkBytes/4, 1)
	n := max((len(buf)+chunk-1)/chunk, 1)
	last := c.rank == c.size-1
	if c.rank == 0 {
		if err := c.sendBegin(b); err != nil {
			return err
		}
		for j := range n {
			a, e := min(j*chunk, len(buf)), min((j+1)*chunk, len(buf))
			frame := c.sendBuf[:headerSize+4*(e-a)]
			putF32(frame[headerSize:], buf[a:e])
			if err := c.next.write(typeData, frame); err != nil {
				c.fail(err)
				return c.err
			}
		}
		return nil
	}
	if err := c.checkBegin(ctx, b); err != nil {
		return err
	}
	if !last {
		if err := c.sendBegin(b); err != nil {
			return err
		}
	}
	for j := range n {
		a, e := min(j*chunk, len(buf)), min((j+1)*chunk, len(buf))
		f, err := c.recv(ctx, typeData, 4*(e-a))
		if err != nil {
			return err
		}
		getF32(buf[a:e], f.payload())
		if !last {
			err = c.next.write(typeData, f.buf)
		}
		c.prev.put(f)
		if err != nil {
			c.fail(err)
			return c.err
		}
	}
	return nil
}
