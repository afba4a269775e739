package kernels

import (
	"fmt"
	"math"
	"unsafe"
)

// AddRows sets out[o·n+i] = x[o·n+i] + b[o] for n = len(x)/len(b): a
// per-channel bias on a channel-first feature map.
func AddRows(out, x, b []float32) {
	n := len(x) / len(b)
	for o, v := range b {
		dst, src := out[o*n:][:n], x[o*n:][:n]
		for i, s := range src {
			dst[i] = s + v
		}
	}
}

// AddColumns sets out[o·n+i] = x[o·n+i] + b[i] for n = len(b): a bias on
// each row of a [batch, n] matrix.
func AddColumns(out, x, b []float32) {
	n := len(b)
	for o := 0; o < len(x); o += n {
		dst, src := out[o:][:n], x[o:][:n]
		for i, s := range src {
			dst[i] = s + b[i]
		}
	}
}

// SumRows sets out[o] to the sum of x[o·n:(o+1)·n] for n = len(x)/len(out).
func SumRows(out, x []float32) {
	n := len(x) / len(out)
	for o := range out {
		var s0, s1, s2, s3 float32
		row := x[o*n:][:n]
		i := 0
		for ; i+4 <= n; i += 4 {
			s0, s1, s2, s3 = s0+row[i], s1+row[i+1], s2+row[i+2], s3+row[i+3]
		}
		for ; i < n; i++ {
			s0 += row[i]
		}
		out[o] = (s0 + s1) + (s2 + s3)
	}
}

// SumColumns sets out[i] to the sum over rows o of x[o·n+i] for n = len(out).
func SumColumns(out, x []float32) {
	n := len(out)
	clear(out)
	for o := 0; o < len(x); o += n {
		for i, v := range x[o:][:n] {
			out[i] += v
		}
	}
}

// Select sets out[i] to onTrue[i] where cond[i] and to onFalse[i]
// elsewhere; an operand of one element stands for every element.
func Select(out []float32, cond []bool, onTrue, onFalse []float32) {
	if len(cond) != len(out) || (len(onTrue) != 1 && len(onTrue) != len(out)) || (len(onFalse) != 1 && len(onFalse) != len(out)) {
		panic(fmt.Sprintf("select: %d elements from %d conditions and operands of %d and %d", len(out), len(cond), len(onTrue), len(onFalse)))
	}
	selectSpan(out, unsafe.Slice((*uint8)(unsafe.Pointer(unsafe.SliceData(cond))), len(cond)), onTrue, onFalse)
}

// selectPortable is Select on conditions as bytes 0 or 1, without
// branches: a random condition (ReLU's) mispredicts half of them.
func selectPortable(out []float32, cond []uint8, onTrue, onFalse []float32) {
	st, sf := 1, 1 // operand steps: 0 for a scalar
	if len(onTrue) == 1 {
		st = 0
	}
	if len(onFalse) == 1 {
		sf = 0
	}
	for i, c := range cond {
		m := -uint32(c) // all ones where true
		t, f := math.Float32bits(onTrue[i*st]), math.Float32bits(onFalse[i*sf])
		out[i] = math.Float32frombits(t&m | f&^m)
	}
}

// Greater sets out[i] to x[i] > y[i]; a y of one element stands for every
// element (ReLU's condition against zero). NaN compares false, as in Go.
func Greater(out []bool, x, y []float32) {
	if len(out) != len(x) || (len(y) != 1 && len(y) != len(x)) {
		panic(fmt.Sprintf("greater: %d results from operands of %d and %d", len(out), len(x), len(y)))
	}
	greaterSpan(unsafe.Slice((*uint8)(unsafe.Pointer(unsafe.SliceData(out))), len(out)), x, y)
}

// greaterPortable is Greater writing bytes 0 or 1.
func greaterPortable(out []uint8, x, y []float32) {
	sy := 1 // y's step: 0 for a scalar
	if len(y) == 1 {
		sy = 0
	}
	for i, v := range x {
		var c uint8
		if v > y[i*sy] {
			c = 1
		}
		out[i] = c
	}
}
