package kernels

import (
	"runtime"
	"sync"
)

// The implicit paths run a 2-d convolution without an im2col copy. Run
// copies the input once, zero-padded and split into f0×f1 phase planes
// (space to depth), so that the input a run of products reads is a run of
// consecutive floats of one plane, and the matrix product reads it in
// place. The run is along output positions (implicitConv: f is the
// stride) or along kernel positions (implicitWeights: f is the kernel
// dilation). Along it, rows are computed as wide as the plane (wq) and the
// columns past the real width are dropped or multiply zeros.

// implicitMinChannels is the fewest input channels per group implicitConv
// takes: each kernel position is one matrix product over them, too short
// below this (a first layer's single channel).
const implicitMinChannels = 8

// paddedInput is the layout of the padded copy: image (ci, bi) at
// (ci*batch+bi)*plane; in it, padded coordinates (py, px) at phase
// (py%f0)*f1 + px%f1, position (py/f0)*wq + px/f1 of the phase's hq×wq
// plane.
type paddedInput struct {
	f0, f1, hq, wq int
	plane          int // floats per image
	bufs           *freeList[[]float32]
}

func newPaddedInput(c *Conv, f0, f1 int) *paddedInput {
	// Padded extents: every input row and column after low padding, and
	// every one an output reads (which covers high padding).
	ext := func(d int) int {
		out := c.spec.Out[c.spec.OutSpatial[d]]
		return max(c.pad[d]+c.inSize[d], c.stride[d]*(out-1)+(c.kSize[d]-1)*c.kdil[d]+1)
	}
	p := &paddedInput{f0: f0, f1: f1, hq: (ext(0) + f0 - 1) / f0, wq: (ext(1) + f1 - 1) / f1}
	p.plane = f0 * f1 * p.hq * p.wq
	// Products over the dropped columns read past the last image: one
	// more image of zeros covers them.
	size := (c.spec.In[c.spec.InChannels]*c.batch + 1) * p.plane
	p.bufs = newFreeList(func() []float32 { return make([]float32, size) })
	return p
}

// at is the offset of padded coordinates (py, px) in an image.
func (p *paddedInput) at(py, px int) int {
	return ((py%p.f0)*p.f1+px%p.f1)*p.hq*p.wq + (py/p.f0)*p.wq + px/p.f1
}

// fill writes in into dst in this layout. It writes the same elements at
// every call, so the padding stays as zero as the buffer was made.
func (p *paddedInput) fill(c *Conv, dst, in []float32) {
	h, w := c.inSize[0], c.inSize[1]
	// Input columns inside the padded extent.
	x0, x1 := max(0, -c.pad[1]), min(w, p.f1*p.wq-c.pad[1])
	for img := range c.spec.In[c.spec.InChannels] * c.batch {
		ci, bi := img/c.batch, img%c.batch
		image := dst[img*p.plane:][:p.plane]
		src := bi*c.xsB + ci*c.xsC
		for y := range h {
			py := y + c.pad[0]
			if py < 0 || py >= p.f0*p.hq {
				continue
			}
			srow := in[src+y*c.xs[0]:]
			if p.f1 == 1 && c.xs[1] == 1 {
				at := p.at(py, x0+c.pad[1])
				copy(image[at:at+x1-x0], srow[x0:x1])
				continue
			}
			// Each column phase is a strided run of the row.
			for x := x0; x < min(x1, x0+p.f1); x++ {
				drow := image[p.at(py, x+c.pad[1]):]
				for i, xx := 0, x; xx < x1; i, xx = i+1, xx+p.f1 {
					drow[i] = srow[xx*c.xs[1]]
				}
			}
		}
	}
}

// implicitConv computes each tile of output positions as one product per
// kernel position, over the input channels.
type implicitConv struct {
	*paddedInput
	rows int   // output positions per image in plane coordinates, ho·wq
	wo   int   // output width
	kOff []int // kernel position kp's offset in an image
}

func newImplicitConv(c *Conv) *implicitConv {
	im := &implicitConv{paddedInput: newPaddedInput(c, c.stride[0], c.stride[1])}
	ho, wo := c.spec.Out[c.spec.OutSpatial[0]], c.spec.Out[c.spec.OutSpatial[1]]
	im.rows, im.wo = ho*im.wq, wo
	im.kOff = make([]int, c.ks)
	for kp := range c.ks {
		im.kOff[kp] = im.at(c.kOff[kp*2], c.kOff[kp*2+1]) // dilated offsets
	}
	return im
}

// implicitTile computes output positions [m0, m0+mt) in plane
// coordinates of batch element bi, group g, from the padded copy p.
func (c *Conv) implicitTile(sc *convScratch, out, p, b []float32, bi, g, m0, mt int) {
	im := c.im
	mt4 := (mt + 3) &^ 3 // the kernel's four-row tiles; the extra rows are dropped
	acc := sc.acc[:mt4*c.np]
	clear(acc)
	base := (g*c.cg*c.batch+bi)*im.plane + m0
	gb := b[g*c.k*c.np:][:c.k*c.np]
	for kp, off := range im.kOff {
		gemm(acc, p[base+off:], nil, gb[kp*c.cg*c.np:][:c.cg*c.np], mt4, c.cg, c.np, c.batch*im.plane)
	}
	ob := bi*c.ysB + g*c.og*c.ysC
	n := 0
	for r := range mt {
		y, x := (m0+r)/im.wq, (m0+r)%im.wq
		if x >= im.wo {
			continue
		}
		off := ob + y*c.ys[0] + x*c.ys[1]
		src := acc[r*c.np:][:c.og]
		switch {
		case c.ysC == 1:
			copy(out[off:off+c.og], src)
		case !c.outSpatialFirst:
			for o, v := range src {
				out[off+o*c.ysC] = v
			}
		default:
			sc.outOff[n], sc.outRow[n] = off, r
			n++
		}
	}
	for o := range c.og {
		for i, off := range sc.outOff[:n] {
			out[off+o*c.ysC] = acc[sc.outRow[i]*c.np+o]
		}
	}
}

// implicitWeights computes a convolution with few output positions and
// many kernel positions, as a weight gradient is (its "kernel" is the
// output gradient): for each batch element, one product per input channel
// over that channel's kernel positions, whose input runs along the plane.
type implicitWeights struct {
	*paddedInput
	rowOff []int // output position r's offset in an image
	kLen   int   // kernel positions per channel in plane coordinates: kh·wq
	packed *freeList[[]float32]
	accs   *freeList[[]float32]
}

func newImplicitWeights(c *Conv) *implicitWeights {
	iw := &implicitWeights{paddedInput: newPaddedInput(c, c.kdil[0], c.kdil[1])}
	iw.kLen = c.kSize[0] * iw.wq
	iw.rowOff = make([]int, c.m)
	for r := range c.m {
		iw.rowOff[r] = iw.at(c.outPos[r*2]*c.stride[0], c.outPos[r*2+1]*c.stride[1])
	}
	iw.packed = newFreeList(func() []float32 { return make([]float32, c.groups*c.cg*iw.kLen*c.np) })
	iw.accs = newFreeList(func() []float32 { return make([]float32, c.batch*c.groups*c.m*c.np) })
	return iw
}

// pack writes B[g][ci][ky][kx][o] from kernel for kx below the kernel's
// width and o below og. It writes the same elements at every call, so the
// rest stays as zero as the buffer was made.
func (iw *implicitWeights) pack(c *Conv, b, kernel []float32) {
	kh, kw, np, ws1 := c.kSize[0], c.kSize[1], c.np, c.ws[1]
	for g := range c.groups {
		for ci := range c.cg {
			for ky := range kh {
				dst := b[((g*c.cg+ci)*iw.kLen+ky*iw.wq)*np:][:kw*np]
				src := g*c.og*c.wsO + ci*c.wsI + ky*c.ws[0]
				for o := range c.og {
					d := dst[o:]
					row := kernel[src+o*c.wsO:][:(kw-1)*ws1+1]
					if ws1 == 1 {
						for kx, v := range row {
							d[kx*np] = v
						}
						continue
					}
					for kx := range kw {
						d[kx*np] = row[kx*ws1]
					}
				}
			}
		}
	}
}

func (iw *implicitWeights) run(c *Conv, out, in, kernel []float32) {
	p := iw.bufs.get()
	defer iw.bufs.put(p)
	iw.fill(c, p, in)
	b := iw.packed.get()
	defer iw.packed.put(b)
	iw.pack(c, b, kernel)
	accs := iw.accs.get()
	defer iw.accs.put(accs)
	clear(accs)
	items := c.batch * c.groups
	block := c.m * c.np
	// Channels outer, batch elements inner: a channel's block of B stays
	// in cache while each batch element's product reads it.
	work := func(lo, hi int) {
		for ci := range c.cg {
			for it := lo; it < hi; it++ {
				bi, g := it/c.groups, it%c.groups
				img := (g*c.cg+ci)*c.batch + bi
				gb := b[(g*c.cg+ci)*iw.kLen*c.np:][:iw.kLen*c.np]
				gemm(accs[it*block:][:block], p[img*iw.plane:], iw.rowOff, gb, c.m, iw.kLen, c.np, 1)
			}
		}
	}
	if workers := min(runtime.GOMAXPROCS(0), items); workers <= 1 {
		work(0, items)
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { work(items*w/workers, items*(w+1)/workers) })
		}
		wg.Wait()
	}
	for it := range items {
		bi, g := it/c.groups, it%c.groups
		ob := bi*c.ysB + g*c.og*c.ysC
		for r := range c.m {
			off := ob + c.outPos[r*2]*c.ys[0] + c.outPos[r*2+1]*c.ys[1]
			src := accs[it*block+r*c.np:][:c.og]
			if c.ysC == 1 {
				copy(out[off:off+c.og], src)
				continue
			}
			for o, v := range src {
				out[off+o*c.ysC] = v
			}
		}
	}
}
