package model

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/arch"
	"github.com/aerie-ml/aerie/internal/manifest"
)

func weightsFile(t testing.TB, n *Net, params, state [][]float32) []byte {
	var buf bytes.Buffer
	if err := Encode(&buf, n.Tensors(params, state), Metadata(n.Plan())); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fmnistPlan(t testing.TB, name string) *Net {
	return New(testPlan(t, name, arch.Input{H: 28, W: 28, C: 1}, 10))
}

// reference computes the small and cnn architectures' logits directly in
// Go, in [H, W, C] order, to check the im2col convolution, the reshape
// pooling and the flatten order.
func reference(name string, vals [][]float32, img []byte) []float32 {
	x := make([]float32, 784)
	arch.DefaultNormalization(1).Apply(x, img)
	switch name {
	case "small":
		x = refConv(x, 28, 1, 4, vals[0], vals[1])
		x = refPool(refPool(x, 28, 4), 14, 4)
		return refDense(x, 10, vals[2], vals[3], false)
	case "cnn":
		x = refPool(refConv(x, 28, 1, 32, vals[0], vals[1]), 28, 32)
		x = refPool(refConv(x, 14, 32, 64, vals[2], vals[3]), 14, 64)
		x = refDense(x, 128, vals[4], vals[5], true)
		return refDense(x, 10, vals[6], vals[7], false)
	}
	panic(name)
}

// refConv is a 3×3 same-padded convolution and ReLU of an h×h×in image.
func refConv(x []float32, h, in, out int, kw, kb []float32) []float32 {
	y := make([]float32, h*h*out)
	for r := range h {
		for c := range h {
			for o := range out {
				s := kb[o]
				for dy := range 3 {
					for dx := range 3 {
						rr, cc := r+dy-1, c+dx-1
						if rr < 0 || rr >= h || cc < 0 || cc >= h {
							continue
						}
						for i := range in {
							s += x[(rr*h+cc)*in+i] * kw[((dy*3+dx)*in+i)*out+o]
						}
					}
				}
				y[(r*h+c)*out+o] = max(s, 0)
			}
		}
	}
	return y
}

// refPool is a 2×2 max-pool of an h×h×ch image.
func refPool(x []float32, h, ch int) []float32 {
	y := make([]float32, (h/2)*(h/2)*ch)
	for r := range h / 2 {
		for c := range h / 2 {
			for k := range ch {
				m := float32(math.Inf(-1))
				for dy := range 2 {
					for dx := range 2 {
						m = max(m, x[((2*r+dy)*h+2*c+dx)*ch+k])
					}
				}
				y[(r*(h/2)+c)*ch+k] = m
			}
		}
	}
	return y
}

// refDense is x·w + b, w in [in, out] order, optionally with ReLU.
func refDense(x []float32, out int, w, b []float32, relu bool) []float32 {
	y := make([]float32, out)
	for k := range out {
		s := b[k]
		for i, v := range x {
			s += v * w[i*out+k]
		}
		if relu {
			s = max(s, 0)
		}
		y[k] = s
	}
	return y
}

func softmax(l []float32) []float32 {
	m := l[0]
	for _, v := range l {
		m = max(m, v)
	}
	var sum float64
	out := make([]float32, len(l))
	for i, v := range l {
		e := math.Exp(float64(v - m))
		out[i] = float32(e)
		sum += e
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / sum)
	}
	return out
}

func TestClassifyMatchesReference(t *testing.T) {
	for _, name := range []string{"small", "cnn"} {
		t.Run(name, func(t *testing.T) {
			n := fmnistPlan(t, name)
			vals := n.Init(7)
			c, err := Load(context.Background(), n.Plan(), bytes.NewReader(weightsFile(t, n, vals, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			imgs := make([][]byte, 3)
			for i := range imgs {
				imgs[i] = make([]byte, 784)
				for j := range imgs[i] {
					imgs[i][j] = byte(rng.IntN(256))
				}
			}
			batch, err := c.Classify(context.Background(), imgs)
			if err != nil {
				t.Fatal(err)
			}
			for i, img := range imgs {
				want := softmax(reference(name, vals, img))
				single, err := c.Classify(context.Background(), [][]byte{img})
				if err != nil {
					t.Fatal(err)
				}
				approx := cmp.Comparer(func(x, y float32) bool { return math.Abs(float64(x-y)) < 1e-5 })
				if diff := cmp.Diff(want, batch[i].Probs, approx); diff != "" {
					t.Errorf("image %d: batch probs (-reference +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(batch[i], single[0], approx); diff != "" {
					t.Errorf("image %d: batch vs single (-batch +single):\n%s", i, diff)
				}
			}
			if _, err := c.Classify(context.Background(), [][]byte{make([]byte, 783)}); err == nil {
				t.Error("Classify accepted a 783-byte image")
			}
		})
	}
}

// TestClassifyAnyPlan loads weights and running statistics of colour,
// odd-sized plans with batch norm and checks Classify against the direct
// implementation, on inputs normalized by the default and by a declared
// per-channel mean and deviation (ImageNet's, and more channels).
func TestClassifyAnyPlan(t *testing.T) {
	declared := func(c int) arch.Normalization {
		var n arch.Normalization
		for k := range c {
			n.Mean = append(n.Mean, []float64{0.485, 0.456, 0.406, 0.3}[k%4])
			n.Std = append(n.Std, []float64{0.229, 0.224, 0.225, 0.7}[k%4])
		}
		return n
	}
	for _, tc := range netCases {
		for _, norm := range []string{"default", "declared"} {
			t.Run(tc.name+"/"+norm, func(t *testing.T) {
				p := parseLayers(t, tc.name, tc.layers, tc.in, tc.classes)
				if norm == "declared" {
					q := *p
					q.Normalization = declared(tc.in.C)
					p = &q
				}
				testClassifyPlan(t, p, tc.in, tc.classes)
			})
		}
	}
}

func testClassifyPlan(t *testing.T, p *arch.Plan, in arch.Input, classes int) {
	n := New(p)
	rng := rand.New(rand.NewPCG(4, 5))
	r := &ref{plan: p}
	var params, state [][]float32
	for _, q := range p.Params {
		v := randoms(rng, size(q.Shape), 0.8)
		r.params = append(r.params, v)
		params = append(params, f32(v))
	}
	for i, q := range p.State {
		v := randoms(rng, size(q.Shape), 0.5)
		for j := range v {
			v[j] += float64(i % 2) // variances around 1
		}
		v = f64(f32(v))
		r.state = append(r.state, v)
		state = append(state, f32(v))
	}
	for i := range r.params {
		r.params[i] = f64(params[i])
	}
	c, err := Load(context.Background(), p, bytes.NewReader(weightsFile(t, n, params, state)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	px := in.H * in.W * in.C
	imgs := make([][]byte, 5)
	x := newFmap(len(imgs), in.H, in.W, in.C)
	mean, std := p.Normalization.Mean, p.Normalization.Std
	for i := range imgs {
		imgs[i] = make([]byte, px)
		for j := range imgs[i] {
			imgs[i][j] = byte(rng.IntN(256))
			x.v[i*px+j] = (float64(imgs[i][j])/255 - mean[j%in.C]) / std[j%in.C]
		}
	}
	got, err := c.Classify(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	logits := r.run(x).v
	for i := range imgs {
		want := softmax(f32(logits[i*classes : (i+1)*classes]))
		approx := cmp.Comparer(func(x, y float32) bool { return math.Abs(float64(x-y)) < 1e-4 })
		if diff := cmp.Diff(want, got[i].Probs, approx); diff != "" {
			t.Errorf("image %d: probs (-reference +got):\n%s", i, diff)
		}
	}
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func TestLoadRejects(t *testing.T) {
	small, cnn := fmnistPlan(t, "small"), fmnistPlan(t, "cnn")
	bn := New(parseLayers(t, netCases[0].name, netCases[0].layers, netCases[0].in, netCases[0].classes))
	good := weightsFile(t, small, small.Init(1), nil)
	for _, tc := range []struct {
		name string
		net  *Net
		data []byte
	}{
		{"other arch metadata", cnn, good},
		{"truncated", small, good[:len(good)-1]},
		{"trailing", small, append(bytes.Clone(good), 0)},
		{"missing tensor", cnn, weightsFile(t, small, small.Init(1), nil)[:0]},
		{"wrong shapes", small, func() []byte {
			var b bytes.Buffer
			Encode(&b, cnn.Tensors(cnn.Init(1), nil)[:4], nil)
			return b.Bytes()
		}()},
		{"missing state", bn, func() []byte {
			var b bytes.Buffer
			Encode(&b, bn.Tensors(bn.Init(1), bn.InitState())[:len(bn.Plan().Params)], nil)
			return b.Bytes()
		}()},
		{"extra tensor", small, func() []byte {
			var b bytes.Buffer
			Encode(&b, append(small.Tensors(small.Init(1), nil), FromFloat32s("bn1.mean", []int{1}, []float32{0})), nil)
			return b.Bytes()
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(context.Background(), tc.net.Plan(), bytes.NewReader(tc.data)); err == nil {
				t.Error("Load succeeded")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	in := []Tensor{
		FromFloat32s("b", []int{2, 3}, []float32{1, 2, 3, 4, 5, -6}),
		FromInt64s("a", []int{}, []int64{42}),
		FromFloat32s("empty", []int{0}, nil),
	}
	meta := map[string]string{"architecture": "small", "step": "3"}
	var buf bytes.Buffer
	if err := Encode(&buf, in, meta); err != nil {
		t.Fatal(err)
	}
	out, gotMeta, err := Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Tensor{}
	for _, o := range out {
		byName[o.Name] = o
	}
	for _, want := range in {
		got := byName[want.Name]
		if want.Data == nil {
			want.Data = []byte{}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("tensor %s (-want +got):\n%s", want.Name, diff)
		}
	}
	if diff := cmp.Diff(meta, gotMeta); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	// Header starts the data section 8-byte aligned, as the reference does.
	if hl := int(buf.Bytes()[0]); (8+hl)%8 != 0 {
		t.Errorf("data section at %d, not 8-byte aligned", 8+hl)
	}
}

func header(h string) []byte {
	b := make([]byte, 8, 8+len(h)+8)
	b[0] = byte(len(h))
	b[1] = byte(len(h) >> 8)
	return append(b, h...)
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"huge header", []byte{0, 0, 0, 0, 0, 0, 0, 1}},
		{"not json", header("{x")},
		{"overlap", append(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`), 0, 0, 0, 0)},
		{"gap", append(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`), make([]byte, 8)...)},
		{"shape mismatch", append(header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`), 0, 0, 0, 0)},
		{"negative dim", append(header(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`), 0, 0, 0, 0)},
		{"oversize", header(`{"a":{"dtype":"F32","shape":[100000000],"data_offsets":[0,400000000]}}`)},
		{"dtype", append(header(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`), 0, 0, 0, 0)},
		{"duplicate", append(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`), make([]byte, 8)...)},
		{"unknown field", append(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`), 0, 0, 0, 0)},
		{"missing offsets", append(header(`{"a":{"dtype":"F32","shape":[1]}}`), 0, 0, 0, 0)},
		{"short data", append(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`), 0, 0)},
		{"trailing data", append(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`), 0, 0, 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := Decode(bytes.NewReader(tc.data)); err == nil {
				t.Error("Decode succeeded")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, []Tensor{FromFloat32s("w", []int{2}, []float32{1, 2}), FromInt64s("s", nil, []int64{3})}, map[string]string{"k": "v"})
	f.Add(buf.Bytes())
	f.Add(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, meta, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same tensors.
		var out bytes.Buffer
		if err := Encode(&out, ts, meta); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		ts2, _, err := Decode(&out)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if len(ts2) != len(ts) {
			t.Fatalf("%d tensors after round trip, want %d", len(ts2), len(ts))
		}
	})
}

func TestClassifyManySizes(t *testing.T) {
	n := fmnistPlan(t, "small")
	c, err := Load(context.Background(), n.Plan(), bytes.NewReader(weightsFile(t, n, n.Init(3), nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	imgs := make([][]byte, 150)
	for i := range imgs {
		imgs[i] = bytes.Repeat([]byte{byte(i)}, 784)
	}
	all, err := c.Classify(context.Background(), imgs)
	if err != nil || len(all) != len(imgs) {
		t.Fatalf("Classify(150 images) = %d predictions, %v", len(all), err)
	}
	// Every batch size from 1 to 70 works (padded to powers of two) and
	// gives the same answer as the big batch.
	for n := 1; n <= 70; n++ {
		got, err := c.Classify(context.Background(), imgs[:n])
		if err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
		if got[n-1].Class != all[n-1].Class || math.Abs(float64(got[n-1].Confidence-all[n-1].Confidence)) > 1e-5 {
			t.Errorf("batch %d: last prediction %+v, want %+v", n, got[n-1], all[n-1])
		}
	}
	if got, err := c.Classify(context.Background(), nil); err != nil || len(got) != 0 {
		t.Errorf("Classify(nil) = %v, %v", got, err)
	}
}

func TestVersionPlan(t *testing.T) {
	classes := []string{"a", "b", "c"}
	spec := func(name string) string {
		s, err := arch.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := arch.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	input := func(h, w, c int) manifest.Input {
		n := arch.DefaultNormalization(c)
		return manifest.Input{Height: h, Width: w, Channels: c, Mean: n.Mean, Std: n.Std}
	}
	p, err := VersionPlan(manifest.Model{Spec: spec("resnet-small"), Input: input(32, 30, 3), Classes: classes})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "resnet-small" || p.Input != (arch.Input{H: 32, W: 30, C: 3}) || p.Classes != 3 {
		t.Errorf("VersionPlan = %s on %+v, %d classes", p.Name, p.Input, p.Classes)
	}
	for _, m := range []manifest.Model{
		{Architecture: "cnn", Input: input(28, 28, 1), Classes: classes},
		{Spec: "{}", Input: input(28, 28, 1), Classes: classes},
		{Spec: spec("cnn"), Input: input(2, 2, 1), Classes: classes},
		// Normalized otherwise than the spec declares.
		{Spec: spec("resnet-small"), Input: manifest.Input{Height: 32, Width: 30, Channels: 3, Mean: []float64{0.4, 0.5, 0.5}, Std: []float64{0.5, 0.5, 0.5}}, Classes: classes},
	} {
		if _, err := VersionPlan(m); err == nil {
			t.Errorf("VersionPlan(%+v) succeeded", m)
		}
	}
}
