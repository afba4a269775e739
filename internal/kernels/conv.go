package kernels

import (
	"fmt"
	"runtime"
	"sync"
)

// ConvSpec describes a float32 convolution the way compute.ConvGeneral
// does (XLA semantics): operand axes by role, strides, low/high paddings
// per spatial axis, input (lhs) and kernel (rhs) dilations, and channel
// groups. Empty Strides, Paddings or dilations mean 1, 0 and 1.
type ConvSpec struct {
	In, Kernel, Out []int // dimensions, row-major

	InBatch, InChannels int
	InSpatial           []int
	KernelIn, KernelOut int
	KernelSpatial       []int
	OutBatch            int
	OutChannels         int
	OutSpatial          []int

	Strides         []int
	Paddings        [][2]int
	InputDilations  []int
	KernelDilations []int
	Groups          int
}

// Conv is a planned convolution: NewConv checks a spec once, Run computes
// it as a matrix product in cache-sized blocks, with no allocation in
// steady state: on an im2col copy of the input, or for most 2-d
// convolutions on the input in place (implicit.go).
type Conv struct {
	spec ConvSpec
	// Per spatial axis (S of them).
	inSize, kSize, stride, pad, idil, kdil []int
	xs, ws, ys                             []int // strides of In, Kernel, Out per spatial axis
	xsB, xsC, wsI, wsO, ysB, ysC           int
	batch, groups, cg, og, m, ks, k, np    int
	// cMajor orders the inner dimension channel-major, kk = ci*ks + kpos,
	// when channels are not contiguous in In (channel-first layouts, and
	// the weight gradient, whose "channels" are the batch): then a row of A
	// reads runs along the spatial axes instead of one element per channel.
	cMajor bool
	// outSpatialFirst writes each output channel's run of positions when
	// output channels are not contiguous.
	outSpatialFirst bool
	// kpMajor orders the inner dimension kernel-position-major, kk =
	// kpos*cg + ci: without cMajor, and on the implicit path.
	kpMajor bool
	// im or iw, when set, reads the input in place instead of an im2col
	// copy: im for many output positions, iw for many kernel positions
	// (weight gradients).
	im *implicitConv
	iw *implicitWeights
	// runs gathers A's columns as copies of contiguous input runs: the
	// last spatial axis is contiguous and unstrided, and each kernel
	// position's runs serve several channels.
	runs bool
	// kOff[kpos*S+d]: kernel position kpos's offset along axis d, dilated.
	kOff   []int
	wOff   []int // kernel position kpos's offset in Kernel
	outPos []int // output position m's coordinate along axis d: outPos[m*S+d]
	// rowRel[m*ks+kp] is output position m's input offset at kernel
	// position kp from its (batch, group) base, -1 for padding: kept
	// without runs, up to maxKeptOffsets elements.
	rowRel  []int
	scratch *freeList[*convScratch]
	packed  *freeList[[]float32]
}

// maxKeptOffsets bounds Conv.rowRel.
const maxKeptOffsets = 1 << 20

// Blocking: kBlock inner-dimension elements of A and B per pass (B's
// block, kBlock×np floats, stays in L2), mBlock rows of A per tile.
const (
	kBlock = 512
	mBlock = 64
)

// NewConv validates spec and plans it.
func NewConv(spec ConvSpec) (*Conv, error) {
	s := len(spec.InSpatial)
	if len(spec.KernelSpatial) != s || len(spec.OutSpatial) != s || len(spec.In) != s+2 || len(spec.Kernel) != s+2 || len(spec.Out) != s+2 {
		return nil, fmt.Errorf("convolution: ranks in %v, kernel %v, out %v do not match %d spatial axes", spec.In, spec.Kernel, spec.Out, s)
	}
	opt := func(v []int, i, def int) int {
		if len(v) == 0 {
			return def
		}
		return v[i]
	}
	if (len(spec.Strides) != 0 && len(spec.Strides) != s) || (len(spec.Paddings) != 0 && len(spec.Paddings) != s) ||
		(len(spec.InputDilations) != 0 && len(spec.InputDilations) != s) || (len(spec.KernelDilations) != 0 && len(spec.KernelDilations) != s) {
		return nil, fmt.Errorf("convolution: strides %v, paddings %v or dilations %v %v are not per each of %d spatial axes",
			spec.Strides, spec.Paddings, spec.InputDilations, spec.KernelDilations, s)
	}
	c := &Conv{spec: spec, groups: max(1, spec.Groups)}
	xst, wst, yst := rowMajor(spec.In), rowMajor(spec.Kernel), rowMajor(spec.Out)
	c.xsB, c.xsC = xst[spec.InBatch], xst[spec.InChannels]
	c.wsI, c.wsO = wst[spec.KernelIn], wst[spec.KernelOut]
	c.ysB, c.ysC = yst[spec.OutBatch], yst[spec.OutChannels]
	c.batch = spec.In[spec.InBatch]
	cin, cout := spec.In[spec.InChannels], spec.Kernel[spec.KernelOut]
	if cin%c.groups != 0 || cout%c.groups != 0 {
		return nil, fmt.Errorf("convolution: %d input and %d output channels do not split into %d groups", cin, cout, c.groups)
	}
	c.cg, c.og = cin/c.groups, cout/c.groups
	if spec.Kernel[spec.KernelIn] != c.cg {
		return nil, fmt.Errorf("convolution: kernel takes %d input channels, want %d (%d channels in %d groups)", spec.Kernel[spec.KernelIn], c.cg, cin, c.groups)
	}
	if spec.Out[spec.OutBatch] != c.batch || spec.Out[spec.OutChannels] != cout {
		return nil, fmt.Errorf("convolution: output %v lacks batch %d or channels %d", spec.Out, c.batch, cout)
	}
	c.m, c.ks = 1, 1
	for d := range s {
		c.inSize = append(c.inSize, spec.In[spec.InSpatial[d]])
		c.kSize = append(c.kSize, spec.Kernel[spec.KernelSpatial[d]])
		c.stride = append(c.stride, opt(spec.Strides, d, 1))
		p := 0
		if len(spec.Paddings) > 0 {
			p = spec.Paddings[d][0]
		}
		c.pad = append(c.pad, p)
		c.idil = append(c.idil, opt(spec.InputDilations, d, 1))
		c.kdil = append(c.kdil, opt(spec.KernelDilations, d, 1))
		c.xs = append(c.xs, xst[spec.InSpatial[d]])
		c.ws = append(c.ws, wst[spec.KernelSpatial[d]])
		c.ys = append(c.ys, yst[spec.OutSpatial[d]])
		if c.stride[d] < 1 || c.idil[d] < 1 || c.kdil[d] < 1 {
			return nil, fmt.Errorf("convolution: axis %d: stride %d and dilations %d, %d must be at least 1", d, c.stride[d], c.idil[d], c.kdil[d])
		}
		c.m *= spec.Out[spec.OutSpatial[d]]
		c.ks *= c.kSize[d]
	}
	c.k = c.ks * c.cg
	c.cMajor = c.xsC != 1
	c.outSpatialFirst = c.ysC != 1 && s > 0 && c.ys[s-1] == 1
	c.np = (c.og + vecWidth - 1) / vecWidth * vecWidth
	c.runs = c.cMajor && s > 0 && c.xs[s-1] == 1 && c.stride[s-1] == 1 && c.idil[s-1] == 1 && c.cg >= 4
	// Kernel positions, last spatial axis fastest.
	c.kOff = make([]int, c.ks*s)
	c.wOff = make([]int, c.ks)
	for kp := range c.ks {
		r, off := kp, 0
		for d := s - 1; d >= 0; d-- {
			kd := r % c.kSize[d]
			r /= c.kSize[d]
			c.kOff[kp*s+d] = kd * c.kdil[d]
			off += kd * c.ws[d]
		}
		c.wOff[kp] = off
	}
	c.outPos = make([]int, c.m*s)
	for m := range c.m {
		r := m
		for d := s - 1; d >= 0; d-- {
			od := spec.Out[spec.OutSpatial[d]]
			c.outPos[m*s+d] = r % od
			r /= od
		}
	}
	c.planImplicit()
	c.kpMajor = !c.cMajor || c.im != nil
	// Every tile's input offsets are the same for each batch element and
	// group. Without runs (few input channels: a first layer's nine
	// products per row) walking the axes for them cost more than the
	// products, so they are worked out once; with runs, a table measured
	// slower than the walk.
	if c.im == nil && c.iw == nil && !c.runs && c.m*c.ks <= maxKeptOffsets {
		c.rowRel = make([]int, c.m*c.ks)
		for m := range c.m {
			for kp := range c.ks {
				c.rowRel[m*c.ks+kp] = c.inputOffset(m, kp)
			}
		}
	}
	c.scratch = newFreeList(func() *convScratch { return newConvScratch(c) })
	if c.iw == nil {
		c.packed = newFreeList(func() []float32 { return make([]float32, c.groups*c.k*c.np) })
	}
	return c, nil
}

// inputOffset is output position m's input offset at kernel position kp
// from its (batch, group) base, -1 when it reads padding.
func (c *Conv) inputOffset(m, kp int) int {
	s := len(c.inSize)
	op, ko := c.outPos[m*s:][:s], c.kOff[kp*s:][:s]
	off := 0
	for d := range s {
		p := op[d]*c.stride[d] + ko[d] - c.pad[d]
		if p < 0 {
			return -1
		}
		if id := c.idil[d]; id != 1 {
			if p%id != 0 {
				return -1
			}
			p /= id
		}
		if p >= c.inSize[d] {
			return -1
		}
		off += p * c.xs[d]
	}
	return off
}

func rowMajor(dims []int) []int {
	st := make([]int, len(dims))
	n := 1
	for i := len(dims) - 1; i >= 0; i-- {
		st[i] = n
		n *= dims[i]
	}
	return st
}

// convScratch is one worker's memory.
type convScratch struct {
	a       []float32 // [mBlock][kBlock]
	acc     []float32 // [mBlock][np]
	rowBase []int     // [ks][mBlock]: input offset of (kernel position, row), -1 for padding
	outOff  []int     // [mBlock]: output offset of each row
	// runs[runAt[kp]:runAt[kp+1]] are kernel position kp's rows as runs
	// of consecutive input offsets (or of padding), when Conv.runs.
	runs    []inputRun
	runAt   []int
	useRuns bool // this tile's runs are long enough to copy
}

// inputRun is rows [row, row+n) of a tile reading input offsets
// [off, off+n), or padding when off < 0.
type inputRun struct{ row, n, off int }

func newConvScratch(c *Conv) *convScratch {
	if c.im != nil {
		return &convScratch{acc: make([]float32, mBlock*c.np)}
	}
	return &convScratch{
		a:       make([]float32, mBlock*min(kBlock, c.k)),
		acc:     make([]float32, mBlock*c.np),
		rowBase: make([]int, mBlock*c.ks),
		outOff:  make([]int, mBlock),
		runs:    make([]inputRun, 0, mBlock*c.ks),
		runAt:   make([]int, c.ks+1),
	}
}

// Run computes out (Out's shape) from in (In's) and kernel (Kernel's).
// It writes every element of out.
func (c *Conv) Run(out, in, kernel []float32) {
	if c.iw != nil {
		c.iw.run(c, out, in, kernel)
		return
	}
	b := c.packed.get()
	defer c.packed.put(b)
	c.pack(b, kernel)
	tiles, tile := (c.m+mBlock-1)/mBlock, func(sc *convScratch, bi, g, t int) {
		c.tile(sc, out, in, b, bi, g, t*mBlock, min(mBlock, c.m-t*mBlock))
	}
	if c.im != nil {
		p := c.im.get()
		defer c.im.put(p)
		c.im.fill(c, p, in)
		tiles, tile = len(c.im.tiles), func(sc *convScratch, bi, g, t int) { c.implicitTile(sc, out, p, b, bi, g, t) }
	}
	items := c.batch * c.groups * tiles
	workers := min(runtime.GOMAXPROCS(0), items)
	run := func(sc *convScratch, lo, hi int) {
		for it := lo; it < hi; it++ {
			bg := it / tiles
			tile(sc, bg/c.groups, bg%c.groups, it%tiles)
		}
	}
	if workers <= 1 {
		sc := c.scratch.get()
		run(sc, 0, items)
		c.scratch.put(sc)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := items*w/workers, items*(w+1)/workers
		wg.Go(func() {
			sc := c.scratch.get()
			run(sc, lo, hi)
			c.scratch.put(sc)
		})
	}
	wg.Wait()
}

// tile computes rows [m0, m0+mt) of batch element bi, group g.
func (c *Conv) tile(sc *convScratch, out, in, b []float32, bi, g, m0, mt int) {
	s := len(c.inSize)
	// Input offsets of every (row, kernel position).
	base := bi*c.xsB + g*c.cg*c.xsC
	if c.rowRel != nil {
		rel := c.rowRel[m0*c.ks:][:mt*c.ks]
		for kp := range c.ks {
			dst := sc.rowBase[kp*mBlock:][:mt]
			for r := range dst {
				if v := rel[r*c.ks+kp]; v >= 0 {
					dst[r] = base + v
				} else {
					dst[r] = -1
				}
			}
		}
	} else {
		// inputOffset inline: a call per offset measured 10–20% slower on
		// the cnn's second convolution.
		for r := range mt {
			op := c.outPos[(m0+r)*s:][:s]
			for kp := range c.ks {
				off, ok := base, true
				ko := c.kOff[kp*s:][:s]
				for d := range s {
					p := op[d]*c.stride[d] + ko[d] - c.pad[d]
					if p < 0 {
						ok = false
						break
					}
					if id := c.idil[d]; id != 1 {
						if p%id != 0 {
							ok = false
							break
						}
						p /= id
					}
					if p >= c.inSize[d] {
						ok = false
						break
					}
					off += p * c.xs[d]
				}
				if !ok {
					off = -1
				}
				sc.rowBase[kp*mBlock+r] = off
			}
		}
	}
	if c.runs {
		sc.runs = sc.runs[:0]
		for kp := range c.ks {
			sc.runAt[kp] = len(sc.runs)
			rb := sc.rowBase[kp*mBlock:][:mt]
			for r := 0; r < mt; {
				off, n := rb[r], 1
				for r+n < mt && ((off < 0 && rb[r+n] < 0) || (off >= 0 && rb[r+n] == off+n)) {
					n++
				}
				sc.runs = append(sc.runs, inputRun{row: r, n: n, off: off})
				r += n
			}
		}
		sc.runAt[c.ks] = len(sc.runs)
	}
	sc.useRuns = c.runs && len(sc.runs)*8 <= c.ks*mt
	acc := sc.acc[:mt*c.np]
	clear(acc)
	gb := b[g*c.k*c.np:][:c.k*c.np]
	for k0 := 0; k0 < c.k; k0 += kBlock {
		kc := min(kBlock, c.k-k0)
		a := sc.a[:mt*kc]
		// im2col of this block, k-major: A[kk-k0][r].
		c.gather(a, sc, in, k0, kc, mt)
		gemm(acc, a, nil, gb[k0*c.np:][:kc*c.np], mt, kc, c.np, mt, c.np)
	}
	// Scatter the tile into out.
	ob := bi*c.ysB + g*c.og*c.ysC
	for r := range mt {
		op := c.outPos[(m0+r)*s:][:s]
		off := ob
		for d := range s {
			off += op[d] * c.ys[d]
		}
		src := acc[r*c.np:][:c.og]
		if c.ysC == 1 {
			copy(out[off:off+c.og], src)
		} else if !c.outSpatialFirst {
			for o, v := range src {
				out[off+o*c.ysC] = v
			}
		} else {
			sc.outOff[r] = off
		}
	}
	if c.outSpatialFirst {
		for o := range c.og {
			for r := range mt {
				out[sc.outOff[r]+o*c.ysC] = acc[r*c.np+o]
			}
		}
	}
}

// pack writes B[g][kk][o] from kernel, zero columns past og. With output
// channels strided in kernel (weight gradients, whose "kernel" is the
// output gradient), it reads 16 rows at a time so that each read is a
// short contiguous run instead of one element per cache line.
func (c *Conv) pack(b, kernel []float32) {
	var src [16]int
	for g := range c.groups {
		gb := b[g*c.k*c.np:][:c.k*c.np]
		base := g * c.og * c.wsO
		for k0 := 0; k0 < c.k; k0 += len(src) {
			n := min(len(src), c.k-k0)
			for j := range n {
				kp, ci := (k0+j)%c.ks, (k0+j)/c.ks
				if c.kpMajor {
					kp, ci = (k0+j)/c.cg, (k0+j)%c.cg
				}
				src[j] = base + c.wOff[kp] + ci*c.wsI
				clear(gb[(k0+j)*c.np+c.og : (k0+j+1)*c.np])
			}
			if c.wsO == 1 {
				for j := range n {
					copy(gb[(k0+j)*c.np:][:c.og], kernel[src[j]:src[j]+c.og])
				}
				continue
			}
			for o := range c.og {
				off := o * c.wsO
				for j, s := range src[:n] {
					gb[(k0+j)*c.np+o] = kernel[s+off]
				}
			}
		}
	}
}

// gather fills a, k-major [kc][mt], with columns [k0, k0+kc) of rows
// [0, mt) of A from in: sc.rowBase[kp*mBlock+r] is row r's input offset
// at kernel position kp (-1: padding). Consecutive rows are neighbouring
// output positions, so each column reads a run of nearby input elements.
func (c *Conv) gather(a []float32, sc *convScratch, in []float32, k0, kc, mt int) {
	for j := range kc {
		kp, ci := (k0+j)%c.ks, (k0+j)/c.ks
		if c.kpMajor {
			kp, ci = (k0+j)/c.cg, (k0+j)%c.cg
		}
		dst := a[j*mt:][:mt]
		shift := ci * c.xsC
		if sc.useRuns {
			for _, run := range sc.runs[sc.runAt[kp]:sc.runAt[kp+1]] {
				d := dst[run.row : run.row+run.n]
				if run.off < 0 {
					clear(d)
				} else {
					copy(d, in[run.off+shift:])
				}
			}
			continue
		}
		for r, off := range sc.rowBase[kp*mBlock:][:mt] {
			if off < 0 {
				dst[r] = 0
			} else {
				dst[r] = in[off+shift]
			}
		}
	}
}
