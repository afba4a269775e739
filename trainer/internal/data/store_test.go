package data

import (
	"bytes"
	"context"
	"testing"

	"github.com/aerie-ml/aerie/internal/fmnist"
	"github.com/aerie-ml/aerie/internal/store"
)

func TestOpenStore(t *testing.T) {
	ctx := context.Background()
	uri := "file://" + t.TempDir()
	s, err := store.Open(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	files := Synthetic(40, 10, 1)
	for name, b := range files {
		if err := s.Put(ctx, name, bytes.NewReader(b), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Open reads file:// URIs as plain directories; call OpenStore
	// directly to read through the store.
	fsys, err := OpenStore(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	sets, err := Load(fsys, uri, fmnist.Digest(files), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sets.Train.Len() != 40 || sets.Test.Len() != 10 {
		t.Errorf("sizes %d, %d", sets.Train.Len(), sets.Test.Len())
	}
	if _, err := OpenStore(ctx, "file://"+t.TempDir()); err == nil {
		t.Error("OpenStore of an empty store succeeded")
	}
}
