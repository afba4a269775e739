package train

import (
	"fmt"
	"path"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	gmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/aerie-ml/aerie/internal/kernels"
)

// adam updates the parameters in their own memory with kernels.Adam: one
// pass per parameter, split across the cores, where gomlx's optimizer
// runs a graph of ten elementwise ops, each on one core, after every
// step. Its moments are store variables named as gomlx's Adam names them,
// so a checkpoint holds them and checkpoints of either resume.
type adam struct {
	opt    kernels.Adam
	params []*gmodel.Variable
	// m1 and m2 are the first and second moments of params.
	m1, m2 []*gmodel.Variable
}

// newAdam finds the moments of params in store (restored from a
// checkpoint) or creates them as zeros.
func newAdam(store *gmodel.Store, params []*gmodel.Variable) (*adam, error) {
	a := &adam{opt: kernels.Adam{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8}, params: params}
	for _, p := range params {
		moment := func(suffix string) (*gmodel.Variable, error) {
			name := path.Join("/", optimizer.AdamDefaultScope, p.Scope(), p.Name()+suffix)
			if v := store.GetVariable(name); v != nil {
				if !v.Shape().Equal(p.Shape()) {
					return nil, fmt.Errorf("checkpoint: %s is %s, want %s", name, v.Shape(), p.Shape())
				}
				return v, nil
			}
			v, err := store.CreateVariable(name, tensors.FromShape(p.Shape()))
			if err != nil {
				return nil, err
			}
			v.SetTrainable(false)
			return v, nil
		}
		m1, err := moment("_1st_moment")
		if err != nil {
			return nil, err
		}
		m2, err := moment("_2nd_moment")
		if err != nil {
			return nil, err
		}
		a.m1, a.m2 = append(a.m1, m1), append(a.m2, m2)
	}
	return a, nil
}

// apply takes update t (from 1) with learning rate lr by the gradients
// in grads, the parameters' concatenated.
func (a *adam) apply(t int64, lr float32, grads []float32) error {
	off := 0
	for i, p := range a.params {
		n := p.Shape().Size()
		g := grads[off : off+n]
		off += n
		err := mutate(p, func(pv []float32) error {
			return mutate(a.m1[i], func(m []float32) error {
				return mutate(a.m2[i], func(v []float32) error {
					a.opt.Step(pv, m, v, g, lr, t)
					return nil
				})
			})
		})
		if err != nil {
			return fmt.Errorf("adam: %w", err)
		}
	}
	return nil
}

// mutate calls fn with the float32 values of v, which fn may change.
func mutate(v *gmodel.Variable, fn func([]float32) error) error {
	val, err := v.Value()
	if err != nil {
		return fmt.Errorf("variable %s: %w", v.Path(), err)
	}
	if val.DType() != dtypes.Float32 {
		return fmt.Errorf("variable %s is %s, want float32", v.Path(), val.DType())
	}
	var fnErr error
	if err := tensors.MutableFlatData(val, func(flat []float32) { fnErr = fn(flat) }); err != nil {
		return fmt.Errorf("variable %s: %w", v.Path(), err)
	}
	return fnErr
}
