package checkpoint

import (
	"context"
	"testing"

	"github.com/aerie-ml/aerie/internal/store"
)

func TestWithFileStore(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &Checkpoints{Store: FromStore(s), Run: "r"}
	for _, step := range []int64{1, 2} {
		if _, err := c.Save(ctx, state(step)); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := c.Latest(ctx)
	if err != nil || got == nil || got.Step != 2 {
		t.Fatalf("Latest = %+v, %v; want step 2", got, err)
	}
}
