package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// refConv is the convolution of ConvSpec by its definition: every output
// element summed directly over the input, element by element.
func refConv(sp ConvSpec, in, kernel []float32) []float32 {
	s := len(sp.InSpatial)
	xst, wst := rowMajor(sp.In), rowMajor(sp.Kernel)
	g := max(1, sp.Groups)
	cin, cout := sp.In[sp.InChannels], sp.Kernel[sp.KernelOut]
	cg, og := cin/g, cout/g
	get := func(v []int, i, def int) int {
		if len(v) == 0 {
			return def
		}
		return v[i]
	}
	out := make([]float32, size(sp.Out))
	oIdx := make([]int, len(sp.Out))
	for flat := range out {
		r := flat
		for a := len(sp.Out) - 1; a >= 0; a-- {
			oIdx[a] = r % sp.Out[a]
			r /= sp.Out[a]
		}
		b, o := oIdx[sp.OutBatch], oIdx[sp.OutChannels]
		grp := o / og
		var sum float64
		kIdx := make([]int, s)
		ks := 1
		for d := range s {
			ks *= sp.Kernel[sp.KernelSpatial[d]]
		}
		for kp := range ks {
			rem := kp
			for d := s - 1; d >= 0; d-- {
				kIdx[d] = rem % sp.Kernel[sp.KernelSpatial[d]]
				rem /= sp.Kernel[sp.KernelSpatial[d]]
			}
			xOff, ok := b*xst[sp.InBatch], true
			wOff := o * wst[sp.KernelOut]
			for d := range s {
				pad := 0
				if len(sp.Paddings) > 0 {
					pad = sp.Paddings[d][0]
				}
				p := oIdx[sp.OutSpatial[d]]*get(sp.Strides, d, 1) + kIdx[d]*get(sp.KernelDilations, d, 1) - pad
				id := get(sp.InputDilations, d, 1)
				if p < 0 || p%id != 0 || p/id >= sp.In[sp.InSpatial[d]] {
					ok = false
					break
				}
				xOff += p / id * xst[sp.InSpatial[d]]
				wOff += kIdx[d] * wst[sp.KernelSpatial[d]]
			}
			if !ok {
				continue
			}
			for c := range cg {
				sum += float64(in[xOff+(grp*cg+c)*xst[sp.InChannels]]) * float64(kernel[wOff+c*wst[sp.KernelIn]])
			}
		}
		out[flat] = float32(sum)
	}
	return out
}

func size(d []int) int {
	n := 1
	for _, v := range d {
		n *= v
	}
	return n
}

// randomSpec draws a 1- or 2-d convolution with random layouts, sizes,
// strides, paddings, dilations and groups.
func randomSpec(rng *rand.Rand) ConvSpec {
	return drawSpec(rng, 1+rng.IntN(2), 1+rng.IntN(5), 2, 3)
}

// drawSpec draws a convolution of s spatial axes with cg input channels
// per group, input dilations up to maxInputDilation and strides up to
// maxStride.
func drawSpec(rng *rand.Rand, s, cg, maxInputDilation, maxStride int) ConvSpec {
	g := 1 + rng.IntN(3)
	batch, og := 1+rng.IntN(3), 1+rng.IntN(20)
	var sp ConvSpec
	sp.Groups = g
	perm := func(n int) []int { return rng.Perm(n) }
	inAx, kAx, outAx := perm(s+2), perm(s+2), perm(s+2)
	sp.InBatch, sp.InChannels, sp.InSpatial = inAx[0], inAx[1], inAx[2:]
	sp.KernelIn, sp.KernelOut, sp.KernelSpatial = kAx[0], kAx[1], kAx[2:]
	sp.OutBatch, sp.OutChannels, sp.OutSpatial = outAx[0], outAx[1], outAx[2:]
	sp.In, sp.Kernel, sp.Out = make([]int, s+2), make([]int, s+2), make([]int, s+2)
	sp.In[sp.InBatch], sp.In[sp.InChannels] = batch, cg*g
	sp.Kernel[sp.KernelIn], sp.Kernel[sp.KernelOut] = cg, og*g
	sp.Out[sp.OutBatch], sp.Out[sp.OutChannels] = batch, og*g
	for d := range s {
		n, k := 1+rng.IntN(9), 1+rng.IntN(4)
		st, id, kd := 1+rng.IntN(maxStride), 1+rng.IntN(maxInputDilation), 1+rng.IntN(2)
		lo, hi := rng.IntN(3), rng.IntN(3)
		eff := (k-1)*kd + 1
		dil := (n-1)*id + 1
		if dil+lo+hi < eff {
			hi += eff - (dil + lo + hi)
		}
		sp.In[sp.InSpatial[d]], sp.Kernel[sp.KernelSpatial[d]] = n, k
		sp.Out[sp.OutSpatial[d]] = (dil+lo+hi-eff)/st + 1
		sp.Strides = append(sp.Strides, st)
		sp.Paddings = append(sp.Paddings, [2]int{lo, hi})
		sp.InputDilations = append(sp.InputDilations, id)
		sp.KernelDilations = append(sp.KernelDilations, kd)
	}
	return sp
}

func randoms(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: [%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

func TestConvMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		sp := randomSpec(rng)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c, err := NewConv(sp)
			if err != nil {
				t.Fatalf("NewConv(%+v): %v", sp, err)
			}
			in, w := randoms(rng, size(sp.In)), randoms(rng, size(sp.Kernel))
			out := randoms(rng, size(sp.Out)) // garbage: Run must overwrite all
			c.Run(out, in, w)
			near(t, fmt.Sprintf("%+v", sp), out, refConv(sp, in, w))
		})
	}
}

// TestConvImplicit covers the implicit path (2-d, eight or more channels
// per group) on random layouts, strides, paddings, kernel and input
// dilations, at 1 and 2 workers.
func TestConvImplicit(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 400 {
		sp := drawSpec(rng, 2, implicitMinChannels+rng.IntN(5), 1, 3)
		if i%2 == 1 { // an input gradient's input dilations, unstrided
			sp = drawSpec(rng, 2, implicitMinChannels+rng.IntN(5), 3, 1)
		}
		c, err := NewConv(sp)
		if err != nil {
			t.Fatalf("NewConv(%+v): %v", sp, err)
		}
		if c.im == nil {
			continue // too few output positions for its kernel
		}
		procs := 1 + i/2%2
		t.Run(fmt.Sprintf("%d/procs%d/idil%v", i, procs, sp.InputDilations), func(t *testing.T) {
			runTwice(t, rng, c, sp, procs)
		})
	}
}

// runTwice runs c at procs workers on random operands, then on others
// into the same output (the plan's buffers reused), and checks the second
// result against the definition.
func runTwice(t *testing.T, rng *rand.Rand, c *Conv, sp ConvSpec, procs int) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	out := randoms(rng, size(sp.Out))
	c.Run(out, randoms(rng, size(sp.In)), randoms(rng, size(sp.Kernel)))
	in, w := randoms(rng, size(sp.In)), randoms(rng, size(sp.Kernel))
	c.Run(out, in, w)
	near(t, fmt.Sprintf("%+v", sp), out, refConv(sp, in, w))
}

// weightGradientSpec draws a 2-d convolution shaped like a weight
// gradient: a kernel nearly as large as the input (the output gradient)
// and a few output positions (the weights'), with strides, kernel
// dilations (the forward stride), paddings, layouts and groups.
func weightGradientSpec(rng *rand.Rand) ConvSpec {
	sp := drawSpec(rng, 2, 1+rng.IntN(30), 1, 3)
	for d := range 2 {
		n, out := 3+rng.IntN(10), 1+rng.IntN(3)
		st, kd, lo, hi := 1+rng.IntN(2), 1+rng.IntN(2), rng.IntN(2), rng.IntN(2)
		eff := n + lo + hi - (out-1)*st // the dilated kernel's extent
		for eff < 1 || (eff-1)%kd != 0 {
			hi++
			eff++
		}
		sp.In[sp.InSpatial[d]], sp.Kernel[sp.KernelSpatial[d]], sp.Out[sp.OutSpatial[d]] = n, (eff-1)/kd+1, out
		sp.Strides[d], sp.KernelDilations[d], sp.Paddings[d] = st, kd, [2]int{lo, hi}
	}
	return sp
}

// TestConvImplicitWeights covers the implicit path for weight gradients
// at 1 and 2 workers.
func TestConvImplicitWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 200 {
		sp := weightGradientSpec(rng)
		c, err := NewConv(sp)
		if err != nil {
			t.Fatalf("NewConv(%+v): %v", sp, err)
		}
		if c.iw == nil {
			continue // too few kernel positions for its outputs
		}
		procs := 1 + i%2
		t.Run(fmt.Sprintf("%d/procs%d", i, procs), func(t *testing.T) {
			runTwice(t, rng, c, sp, procs)
		})
	}
}

// TestConvImplicitWeightsChannelFirst covers weight gradients in
// internal/model's channel-first layout, whose output-gradient maps are
// contiguous, so pack transposes 16×16 blocks: channel counts and map
// sizes that are and are not multiples of 16.
func TestConvImplicitWeightsChannelFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, og := range []int{16, 21, 32, 47} {
		for _, hw := range []int{6, 7, 9} {
			cin, batch := 1+rng.IntN(9), 1+rng.IntN(3)
			sp := ConvSpec{
				In: []int{cin, batch, hw, hw}, Kernel: []int{og, batch, hw, hw}, Out: []int{3, 3, cin, og},
				InBatch: 0, InChannels: 1, InSpatial: []int{2, 3},
				KernelIn: 1, KernelOut: 0, KernelSpatial: []int{2, 3},
				OutBatch: 2, OutChannels: 3, OutSpatial: []int{0, 1},
				Paddings: [][2]int{{1, 1}, {1, 1}}, Groups: 1}
			c, err := NewConv(sp)
			if err != nil {
				t.Fatalf("NewConv(%+v): %v", sp, err)
			}
			if c.iw == nil {
				t.Fatalf("%+v: not on the implicit weight-gradient path", sp)
			}
			t.Run(fmt.Sprintf("og%d/%dx%d", og, hw, hw), func(t *testing.T) {
				runTwice(t, rng, c, sp, 1)
			})
		}
	}
}

// TestConvLarge covers the blocked paths: several K blocks, M tiles,
// panels of 64 columns and the four-row kernel, at 1 and 2 workers.
func TestConvLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, procs := range []int{1, 2} {
		for _, tc := range []struct{ n, h, w, cin, cout, k, stride int }{
			{3, 15, 13, 33, 70, 3, 1},
			{2, 14, 14, 64, 64, 3, 2},
			{1, 9, 9, 300, 17, 1, 1},
		} {
			t.Run(fmt.Sprintf("procs%d/%+v", procs, tc), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				p := tc.k / 2
				oh, ow := (tc.h+2*p-tc.k)/tc.stride+1, (tc.w+2*p-tc.k)/tc.stride+1
				sp := ConvSpec{
					In: []int{tc.n, tc.h, tc.w, tc.cin}, Kernel: []int{tc.k, tc.k, tc.cin, tc.cout}, Out: []int{tc.n, oh, ow, tc.cout},
					InBatch: 0, InChannels: 3, InSpatial: []int{1, 2}, KernelIn: 2, KernelOut: 3, KernelSpatial: []int{0, 1},
					OutBatch: 0, OutChannels: 3, OutSpatial: []int{1, 2},
					Strides: []int{tc.stride, tc.stride}, Paddings: [][2]int{{p, p}, {p, p}}, Groups: 1,
				}
				c, err := NewConv(sp)
				if err != nil {
					t.Fatal(err)
				}
				in, w := randoms(rng, size(sp.In)), randoms(rng, size(sp.Kernel))
				out := make([]float32, size(sp.Out))
				c.Run(out, in, w)
				near(t, "conv", out, refConv(sp, in, w))
			})
		}
	}
}

func TestConvRejects(t *testing.T) {
	for name, sp := range map[string]ConvSpec{
		"groups": {In: []int{1, 3, 4}, Kernel: []int{3, 1, 4}, Out: []int{1, 4, 2}, InChannels: 1, InSpatial: []int{2}, KernelIn: 1, KernelOut: 0, KernelSpatial: []int{2}, OutChannels: 1, OutSpatial: []int{2}, Groups: 2},
		"rank":   {In: []int{1, 3, 4}, Kernel: []int{3, 3}, Out: []int{1, 4, 2}, InChannels: 1, InSpatial: []int{2}},
	} {
		if _, err := NewConv(sp); err == nil {
			t.Errorf("NewConv(%s) = nil error", name)
		}
	}
}
