package checkpoint

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aerie-ml/aerie/internal/model"
	"github.com/google/go-cmp/cmp"
)

func state(step int64) *State {
	return &State{
		Step:    step,
		Tensors: []model.Tensor{model.FromInt64s("n", []int{}, []int64{step}), model.FromFloat32s("w", []int{2}, []float32{float32(step), 1})},
		Meta:    map[string]string{"progress": `{"epoch":1}`},
	}
}

func TestLatestSkipsInvalid(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := &Checkpoints{Store: Dir(dir), Run: "r", Keep: -1}
	if s, _, err := c.Latest(ctx); s != nil || err != nil {
		t.Fatalf("Latest on empty store = %v, %v", s, err)
	}
	for _, step := range []int64{3, 6, 9, 12} {
		if _, err := c.Save(ctx, state(step)); err != nil {
			t.Fatal(err)
		}
	}
	// 12: corrupt state; 9: no COMMITTED (a crash mid-write); 6 is newest valid.
	p12 := filepath.Join(dir, "checkpoints/r/000000000012")
	es, _ := os.ReadDir(p12)
	for _, e := range es {
		if e.Name() != Committed {
			b, _ := os.ReadFile(filepath.Join(p12, e.Name()))
			b[len(b)-1] ^= 1
			os.WriteFile(filepath.Join(p12, e.Name()), b, 0o644)
		}
	}
	os.Remove(filepath.Join(dir, "checkpoints/r/000000000009", Committed))
	var logs bytes.Buffer
	c.Log = newLogger(&logs)
	got, uri, err := c.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := state(6)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Latest (-want +got):\n%s", diff)
	}
	if uri != Dir(dir).URI("checkpoints/r/000000000006/") {
		t.Errorf("uri = %s", uri)
	}
	for _, s := range []string{"000000000012", "000000000009", "COMMITTED is missing"} {
		if !bytes.Contains(logs.Bytes(), []byte(s)) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
	// Saving a step again (a retry after a crash) succeeds and keeps it.
	if _, err := c.Save(ctx, state(6)); err != nil {
		t.Errorf("re-save: %v", err)
	}
	// Resaving step 9 completes the partial one.
	if _, err := c.Save(ctx, state(9)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := c.Latest(ctx); got == nil || got.Step != 9 {
		t.Errorf("after completing 9, Latest = %+v", got)
	}
}

func TestSavePrunes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := &Checkpoints{Store: Dir(dir), Run: "r", Keep: 2}
	for step := int64(1); step <= 5; step++ {
		if _, err := c.Save(ctx, state(step)); err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := Dir(dir).List(ctx, "checkpoints/r/")
	var dirs []string
	for _, k := range keys {
		if filepath.Base(k) == Committed {
			dirs = append(dirs, filepath.Base(filepath.Dir(k)))
		}
	}
	if diff := cmp.Diff([]string{"000000000004", "000000000005"}, dirs); diff != "" {
		t.Errorf("committed checkpoints after pruning (-want +got):\n%s", diff)
	}
	if len(keys) != 4 {
		t.Errorf("keys %v, want 2 checkpoints of 2 objects", keys)
	}
}
