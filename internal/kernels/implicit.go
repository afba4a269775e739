package kernels

// The implicit paths run a 2-d convolution without an im2col copy. Run
// copies the input once, zero-padded and split into f0×f1 phase planes
// (space to depth), so that the input a run of products reads is a run of
// consecutive floats of one plane, and the matrix product reads it in
// place. The run is along output positions (implicitConv: f is the
// stride) or along kernel positions (implicitWeights: f is the kernel
// dilation). Along it, rows are computed as wide as the plane (wq) and the
// columns past the real width are dropped or multiply zeros. For a
// channel-first output, implicitConv's product is [output
// channel][position]: its vectors are runs of the plane and its rows are
// the output's, so nothing is transposed.

// implicitMinChannels is the fewest input channels per group implicitConv
// takes: each kernel position is one matrix product over them, too short
// below this (a first layer's single channel).
const implicitMinChannels = 8

// planImplicit picks an implicit path for a 2-d convolution when one
// applies: implicitConv for many output positions per kernel position and
// enough channels, with input dilation but no stride (a strided
// convolution's input gradient) or without input dilation when the kernel
// reads every stride phase; implicitWeights for many kernel positions per
// output position (a weight gradient) when the outputs read every
// kernel-dilation phase.
func (c *Conv) planImplicit() {
	if len(c.inSize) != 2 {
		return
	}
	undilated := c.idil[0] == 1 && c.idil[1] == 1
	unstrided := c.stride[0] == 1 && c.stride[1] == 1
	switch {
	case c.cg >= implicitMinChannels && c.m*c.idil[0]*c.idil[1] >= 4*c.ks &&
		(undilated && c.readsEveryPhase(c.stride, c.ks, c.kOff, []int{1, 1}) || unstrided && !undilated):
		c.im = newImplicitConv(c)
	case undilated && c.ks >= 4*c.m && c.m <= mBlock && c.readsEveryPhase(c.kdil, c.m, c.outPos, c.stride):
		c.iw = newImplicitWeights(c)
	}
}

// readsEveryPhase says whether the n 2-d positions pos, scaled per axis,
// fall in each of the f0×f1 phases of a padded copy: a 1×1 convolution of
// stride 2 reads one phase in four, cheaper gathered than copied whole.
func (c *Conv) readsEveryPhase(f []int, n int, pos, scale []int) bool {
	seen := map[[2]int]bool{}
	for i := range n {
		seen[[2]int{pos[i*2] * scale[0] % f[0], pos[i*2+1] * scale[1] % f[1]}] = true
	}
	return len(seen) == f[0]*f[1]
}

// paddedInput is the layout of the padded copy: image (ci, bi) at
// ci*cstride + bi*plane; in it, input (y, x) at padded coordinates (py,
// px) = (y+lo0, x+lo1), at phase (py%f0)*f1 + px%f1, position
// (py/f0)*wq + px/f1 of the phase's hq×wq plane.
type paddedInput struct {
	f0, f1, hq, wq int
	lo             [2]int // low padding; negative crops
	plane          int    // floats per image
	// cstride is the floats from one channel's images to the next: the
	// products step along it, so it is an odd number of cache lines, or
	// every channel's run would fall in the same L1 sets (14×14 maps
	// padded to 16×16 at batch 32 are 32 KiB apart).
	cstride int
	size    int // floats of the copy
	layout  any // fill's writes depend on it alone (see scratchPool)
}

// newPaddedInput lays out the copy with phase factors f, low paddings lo
// and at least ext padded rows and columns.
func newPaddedInput(c *Conv, f, lo, ext [2]int) *paddedInput {
	p := &paddedInput{f0: f[0], f1: f[1], lo: lo, hq: (ext[0] + f[0] - 1) / f[0], wq: (ext[1] + f[1] - 1) / f[1]}
	p.plane = f[0] * f[1] * p.hq * p.wq
	p.cstride = (c.batch*p.plane + vecWidth - 1) &^ (vecWidth - 1)
	if p.cstride/vecWidth%2 == 0 {
		p.cstride += vecWidth
	}
	// Products over the dropped columns and the positions a tile rounds
	// up to read up to a row and a vector past the last image.
	channels := c.spec.In[c.spec.InChannels]
	p.size = channels*p.cstride + p.plane + vecWidth
	type layout struct{ f0, f1, lo0, lo1, hq, wq, h, w, channels, batch int }
	p.layout = layout{p.f0, p.f1, lo[0], lo[1], p.hq, p.wq, c.inSize[0], c.inSize[1], channels, c.batch}
	return p
}

// get borrows a buffer for the copy, zero wherever fill does not write.
func (p *paddedInput) get() []float32 { return scratchBuffers.get(p.size, p.layout) }

func (p *paddedInput) put(buf []float32) { scratchBuffers.put(buf, p.layout) }

// image is the offset of image (ci, bi).
func (p *paddedInput) image(ci, bi int) int { return ci*p.cstride + bi*p.plane }

// convExtents are the padded extents a convolution without input
// dilation reads: every input row and column after low padding, and every
// one an output reads (which covers high padding).
func convExtents(c *Conv) [2]int {
	var ext [2]int
	for d := range ext {
		out := c.spec.Out[c.spec.OutSpatial[d]]
		ext[d] = max(c.pad[d]+c.inSize[d], c.stride[d]*(out-1)+(c.kSize[d]-1)*c.kdil[d]+1)
	}
	return ext
}

// at is the offset of padded coordinates (py, px) in an image.
func (p *paddedInput) at(py, px int) int {
	return ((py%p.f0)*p.f1+px%p.f1)*p.hq*p.wq + (py/p.f0)*p.wq + px/p.f1
}

// fill writes in into dst (from get) in this layout. It writes the same
// elements at every call, so the padding stays zero.
func (p *paddedInput) fill(c *Conv, dst, in []float32) {
	h, w := c.inSize[0], c.inSize[1]
	// Input columns inside the padded extent.
	x0, x1 := max(0, -p.lo[1]), min(w, p.f1*p.wq-p.lo[1])
	for img := range c.spec.In[c.spec.InChannels] * c.batch {
		ci, bi := img/c.batch, img%c.batch
		image := dst[p.image(ci, bi):][:p.plane]
		src := bi*c.xsB + ci*c.xsC
		for y := range h {
			py := y + p.lo[0]
			if py < 0 || py >= p.f0*p.hq {
				continue
			}
			srow := in[src+y*c.xs[0]:]
			switch {
			case p.f1 == 1 && c.xs[1] == 1:
				at := p.at(py, x0+p.lo[1])
				copy(image[at:at+x1-x0], srow[x0:x1])
				continue
			case p.f1 == 2 && c.xs[1] == 1 && x1-x0 >= 2:
				px := x0 + p.lo[1]
				deinterleave(image[p.at(py, px):], image[p.at(py, px+1):], srow[x0:x1])
				continue
			}
			// Each column phase is a strided run of the row.
			for x := x0; x < min(x1, x0+p.f1); x++ {
				drow := image[p.at(py, x+p.lo[1]):]
				for i, xx := 0, x; xx < x1; i, xx = i+1, xx+p.f1 {
					drow[i] = srow[xx*c.xs[1]]
				}
			}
		}
	}
}

// implicitConv computes each tile of output positions as one product per
// kernel position, over the input channels. With input dilation (the
// input gradient of a strided convolution) the output splits into
// id0×id1 phases, each a convolution of the undilated input with the
// kernel positions that land on input there: none of the products
// multiplies the dilation's zeros.
type implicitConv struct {
	*paddedInput
	phases []outputPhase
	tiles  []phaseTile
}

// outputPhase is output positions (id0·u+a0, id1·v+a1), u below rows/wq
// and v below wv, computed from kernel positions taps at offsets offs of
// an image.
type outputPhase struct {
	a0, a1, rows, wv int
	taps, offs       []int
}

// phaseTile is rows [m0, m0+mt) of a phase, in plane coordinates.
type phaseTile struct{ phase, m0, mt int }

func newImplicitConv(c *Conv) *implicitConv {
	ho, wo := c.spec.Out[c.spec.OutSpatial[0]], c.spec.Out[c.spec.OutSpatial[1]]
	id := [2]int{c.idil[0], c.idil[1]}
	// Output position id·u+a reads, through kernel position kp at dilated
	// offset k', the dilated input's a+k'-pad: input u+δ when id divides
	// it. Low padding lifts every u+δ to zero or more.
	type tap struct {
		kp int
		d  [2]int
	}
	im := &implicitConv{}
	var taps [][]tap
	var lo [2]int
	for a0 := range min(id[0], ho) {
		for a1 := range min(id[1], wo) {
			var ts []tap
			for kp := range c.ks {
				t := [2]int{a0 + c.kOff[kp*2] - c.pad[0], a1 + c.kOff[kp*2+1] - c.pad[1]}
				if t[0]%id[0] != 0 || t[1]%id[1] != 0 {
					continue
				}
				d := [2]int{t[0] / id[0], t[1] / id[1]}
				lo = [2]int{max(lo[0], -d[0]), max(lo[1], -d[1])}
				ts = append(ts, tap{kp, d})
			}
			taps = append(taps, ts)
			im.phases = append(im.phases, outputPhase{a0: a0, a1: a1})
		}
	}
	// Each phase's u and v counts.
	counts := func(ph outputPhase) [2]int {
		return [2]int{(ho - ph.a0 + id[0] - 1) / id[0], (wo - ph.a1 + id[1] - 1) / id[1]}
	}
	// The padded extent holds the input and every row and column an
	// output reads; a phase without taps (zeros) still needs its rows.
	ext := [2]int{lo[0] + c.inSize[0], lo[1] + c.inSize[1]}
	for i, ph := range im.phases {
		n := counts(ph)
		for d := range ext {
			last := c.stride[d] * (n[d] - 1)
			ext[d] = max(ext[d], last+1)
			for _, t := range taps[i] {
				ext[d] = max(ext[d], last+t.d[d]+lo[d]+1)
			}
		}
	}
	im.paddedInput = newPaddedInput(c, [2]int{c.stride[0], c.stride[1]}, lo, ext)
	for i := range im.phases {
		ph := &im.phases[i]
		n := counts(*ph)
		ph.rows, ph.wv = n[0]*im.wq, n[1]
		for _, t := range taps[i] {
			ph.taps, ph.offs = append(ph.taps, t.kp), append(ph.offs, im.at(t.d[0]+lo[0], t.d[1]+lo[1]))
		}
		for m0 := 0; m0 < ph.rows; m0 += mBlock {
			im.tiles = append(im.tiles, phaseTile{i, m0, min(mBlock, ph.rows-m0)})
		}
	}
	return im
}

// implicitTile computes tile t of batch element bi, group g, from the
// padded copy p.
func (c *Conv) implicitTile(sc *convScratch, out, p, b []float32, bi, g, t int) {
	if c.outSpatialFirst {
		c.implicitChannelTile(sc, out, p, b, bi, g, t)
		return
	}
	im := c.im
	tl := im.tiles[t]
	ph := &im.phases[tl.phase]
	mt4 := (tl.mt + 3) &^ 3 // the kernel's four-row tiles; the extra rows are dropped
	acc := sc.acc[:mt4*c.np]
	clear(acc)
	base := im.image(g*c.cg, bi) + tl.m0
	gb := b[g*c.k*c.np:][:c.k*c.np]
	for i, kp := range ph.taps {
		gemm(acc, p[base+ph.offs[i]:], nil, gb[kp*c.cg*c.np:][:c.cg*c.np], mt4, c.cg, c.np, im.cstride, c.np)
	}
	ob := bi*c.ysB + g*c.og*c.ysC
	for r := range tl.mt {
		u, v := (tl.m0+r)/im.wq, (tl.m0+r)%im.wq
		if v >= ph.wv {
			continue
		}
		y, x := u*c.idil[0]+ph.a0, v*c.idil[1]+ph.a1
		off := ob + y*c.ys[0] + x*c.ys[1]
		src := acc[r*c.np:][:c.og]
		if c.ysC == 1 {
			copy(out[off:off+c.og], src)
			continue
		}
		for o, v := range src {
			out[off+o*c.ysC] = v
		}
	}
}

// implicitChannelTile is implicitTile for outputs whose channels are not
// contiguous (channel-first layouts): the product is [output
// channel][position], its vectors run along the positions of the padded
// copy, and each channel's run of an output row is copied out whole.
func (c *Conv) implicitChannelTile(sc *convScratch, out, p, b []float32, bi, g, t int) {
	im := c.im
	tl := im.tiles[t]
	ph := &im.phases[tl.phase]
	n := (tl.mt + vecWidth - 1) &^ (vecWidth - 1) // the extra positions are dropped
	acc := sc.acc[:c.og*n]
	clear(acc)
	base := im.image(g*c.cg, bi) + tl.m0
	gb := b[g*c.k*c.np:][:c.k*c.np]
	for i, kp := range ph.taps {
		gemm(acc, gb[kp*c.cg*c.np:][:c.cg*c.np], nil, p[base+ph.offs[i]:], c.og, c.cg, n, c.np, im.cstride)
	}
	ob := bi*c.ysB + g*c.og*c.ysC
	step := c.idil[1] * c.ys[1]
	for r := 0; r < tl.mt; {
		u, v := (tl.m0+r)/im.wq, (tl.m0+r)%im.wq
		row := min(tl.mt-r, im.wq-v) // the tile's positions in plane row u
		if w := min(row, ph.wv-v); w > 0 {
			y, x := u*c.idil[0]+ph.a0, v*c.idil[1]+ph.a1
			off := ob + y*c.ys[0] + x*c.ys[1]
			for o := range c.og {
				src, dst := acc[o*n+r:][:w], out[off+o*c.ysC:]
				if step == 1 {
					copy(dst[:w], src)
					continue
				}
				for i, v := range src {
					dst[i*step] = v
				}
			}
		}
		r += row
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
	// packing is the key of pack's writes (see scratchPool).
	packing any
}

func newImplicitWeights(c *Conv) *implicitWeights {
	iw := &implicitWeights{paddedInput: newPaddedInput(c, [2]int{c.kdil[0], c.kdil[1]}, [2]int{c.pad[0], c.pad[1]}, convExtents(c))}
	iw.kLen = c.kSize[0] * iw.wq
	iw.rowOff = make([]int, c.m)
	for r := range c.m {
		iw.rowOff[r] = iw.at(c.outPos[r*2]*c.stride[0], c.outPos[r*2+1]*c.stride[1])
	}
	type packing struct{ groups, cg, kLen, wq, np, og, kh, kw int }
	iw.packing = packing{c.groups, c.cg, iw.kLen, iw.wq, c.np, c.og, c.kSize[0], c.kSize[1]}
	return iw
}

// pack writes B[g][ci][ky][kx][o] from kernel for kx below the kernel's
// width and o below og. It writes the same elements at every call, so the
// rest of a buffer lent for iw.packing stays zero. When each (o, ci)'s kernel
// is contiguous, as an output gradient's map is, blocks of 16 channels by
// 16 kernel positions are transposed in registers.
func (iw *implicitWeights) pack(c *Conv, b, kernel []float32) {
	kh, kw, np := c.kSize[0], c.kSize[1], c.np
	contiguous := c.ws[1] == 1 && c.ws[0] == kw
	for g := range c.groups {
		for ci := range c.cg {
			dst := b[(g*c.cg+ci)*iw.kLen*np:][:iw.kLen*np]
			src := g*c.og*c.wsO + ci*c.wsI
			o := 0
			for ; contiguous && o+16 <= c.og; o += 16 {
				j := 0
				for ; j+16 <= kh*kw; j += 16 {
					var rows [16]int
					for t := range rows {
						rows[t] = ((j+t)/kw*iw.wq+(j+t)%kw)*np + o
					}
					transpose16(dst, &rows, kernel[src+o*c.wsO+j:], c.wsO)
				}
				iw.packScalar(c, dst, kernel[src:], o, o+16, j)
			}
			iw.packScalar(c, dst, kernel[src:], o, c.og, 0)
		}
	}
}

// packScalar is pack for channels [o0, o1) and kernel positions j0 on
// (ky·kw + kx) of one (group, channel): kernel starts at its weights.
func (iw *implicitWeights) packScalar(c *Conv, dst, kernel []float32, o0, o1, j0 int) {
	kh, kw, np := c.kSize[0], c.kSize[1], c.np
	for o := o0; o < o1; o++ {
		for ky := j0 / kw; ky < kh; ky++ {
			d := dst[ky*iw.wq*np+o:]
			row := kernel[o*c.wsO+ky*c.ws[0]:]
			for kx := max(0, j0-ky*kw); kx < kw; kx++ {
				d[kx*np] = row[kx*c.ws[1]]
			}
		}
	}
}

func (iw *implicitWeights) run(c *Conv, out, in, kernel []float32) {
	p := iw.get()
	defer iw.put(p)
	iw.fill(c, p, in)
	b := scratchBuffers.get(c.groups*c.cg*iw.kLen*c.np, iw.packing)
	defer scratchBuffers.put(b, iw.packing)
	iw.pack(c, b, kernel)
	accs := scratchBuffers.get(c.batch*c.groups*c.m*c.np, nil)
	defer scratchBuffers.put(accs, nil)
	clear(accs)
	items := c.batch * c.groups
	block := c.m * c.np
	// Channels outer, batch elements inner: a channel's block of B stays
	// in cache while each batch element's product reads it.
	work := func(lo, hi int) {
		for ci := range c.cg {
			for it := lo; it < hi; it++ {
				bi, g := it/c.groups, it%c.groups
				gb := b[(g*c.cg+ci)*iw.kLen*c.np:][:iw.kLen*c.np]
				gemm(accs[it*block:][:block], p[iw.image(g*c.cg+ci, bi):], iw.rowOff, gb, c.m, iw.kLen, c.np, 1, c.np)
			}
		}
	}
	splitWork(items, 1, work)
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
