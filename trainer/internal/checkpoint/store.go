package checkpoint

import (
	"context"
	"io"

	"github.com/aerie-ml/aerie/internal/store"
)

// FromStore adapts an internal/store Store (gs:// or file://).
func FromStore(s store.Store) Store { return storeAdapter{s} }

type storeAdapter struct{ s store.Store }

func (a storeAdapter) Create(ctx context.Context, key string, r io.Reader) error {
	return a.s.Put(ctx, key, r, store.PutOptions{IfNotExists: true})
}

func (a storeAdapter) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return a.s.Get(ctx, key)
}

func (a storeAdapter) List(ctx context.Context, prefix string) ([]string, error) {
	objs, err := a.s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys, nil
}

func (a storeAdapter) Delete(ctx context.Context, key string) error { return a.s.Delete(ctx, key) }

func (a storeAdapter) URI(key string) string { return a.s.URI(key) }
