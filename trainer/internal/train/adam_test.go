//lint:file-ignore ST1001 gomlx graph-building code reads as math with graph dot-imported

package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/aerie-ml/aerie/internal/model"
)

// TestAdamMatchesGomlx checks adam against gomlx's Adam, the trainer's
// optimizer before it, step by step, and that adam carries on from the
// moments gomlx's leaves in a store (a checkpoint of the older trainer).
func TestAdamMatchesGomlx(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][]int{{3, 3, 1, 8}, {8}, {70, 10}}
	init := make([][]float32, len(shapes))
	grads := make([][]float32, 3) // per step, concatenated
	for i, s := range shapes {
		init[i] = randomValues(rng, size(s))
	}
	for st := range grads {
		for _, s := range shapes {
			grads[st] = append(grads[st], randomValues(rng, size(s))...)
		}
	}
	lrs := []float32{1e-3, 2e-3, 5e-4}
	newStore := func() (*gmodel.Store, []*gmodel.Variable) {
		store := gmodel.NewStore()
		var vs []*gmodel.Variable
		for i, s := range shapes {
			v, err := store.CreateVariable("/p"+string(rune('a'+i)), tensors.FromFlatDataAndDimensions(append([]float32(nil), init[i]...), s...))
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		return store, vs
	}
	// gomlx's Adam, as the trainer built it, for steps [from, to).
	gomlxSteps := func(store *gmodel.Store, vs []*gmodel.Variable, from, to int) {
		lr := optimizer.LearningRateVar(store.RootScope(), dtypes.Float32, 1e-3)
		opt := optimizer.Adam().Epsilon(1e-8).Done().(interface {
			UpdateGraphWithGradients(*gmodel.Scope, []*Node, dtypes.DType)
		})
		exec, err := gmodel.NewExec(model.Backend(), store, func(scope *gmodel.Scope, g []*Node) {
			for _, v := range vs {
				v.NodeValue(g[0].Graph())
			}
			opt.UpdateGraphWithGradients(scope, g, dtypes.Float32)
		})
		if err != nil {
			t.Fatal(err)
		}
		for st := from; st < to; st++ {
			if err := lr.SetValue(tensors.FromScalar(lrs[st])); err != nil {
				t.Fatal(err)
			}
			args, off := make([]any, len(shapes)), 0
			for i, s := range shapes {
				args[i] = tensors.FromFlatDataAndDimensions(grads[st][off:off+size(s)], s...)
				off += size(s)
			}
			if _, err := exec.Exec(args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	oursSteps := func(store *gmodel.Store, vs []*gmodel.Variable, from, to int) {
		a, err := newAdam(store, vs)
		if err != nil {
			t.Fatal(err)
		}
		for st := from; st < to; st++ {
			if err := a.apply(int64(st+1), lrs[st], append([]float32(nil), grads[st]...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	values := func(store *gmodel.Store) map[string][]float32 {
		out := map[string][]float32{}
		for v := range store.IterVariables() {
			val, err := v.Value()
			if err != nil {
				t.Fatal(err)
			}
			if val.DType() == dtypes.Float32 && val.Shape().Rank() > 0 {
				out[v.Path()] = tensors.MustCopyFlatData[float32](val)
			}
		}
		return out
	}

	gStore, gVars := newStore()
	gomlxSteps(gStore, gVars, 0, 3)
	want := values(gStore)
	oStore, oVars := newStore()
	oursSteps(oStore, oVars, 0, 3)
	mixed, mVars := newStore()
	gomlxSteps(mixed, mVars, 0, 2)
	oursSteps(mixed, mVars, 2, 3)
	for name, store := range map[string]*gmodel.Store{"adam": oStore, "gomlx then adam": mixed} {
		got := values(store)
		if len(got) != len(want) {
			t.Errorf("%s: %d float32 variables, gomlx's Adam %d", name, len(got), len(want))
		}
		for path, w := range want {
			g, ok := got[path]
			if !ok {
				t.Errorf("%s: no variable %s", name, path)
				continue
			}
			for i := range w {
				if d := math.Abs(float64(g[i] - w[i])); d > 1e-6*(1+math.Abs(float64(w[i]))) {
					t.Fatalf("%s: %s[%d] = %g, gomlx's Adam %g", name, path, i, g[i], w[i])
				}
			}
		}
	}
}

func randomValues(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}
