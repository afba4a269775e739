package dataset_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
)

func TestLocate(t *testing.T) {
	const d = "f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370"
	tests := []struct{ uri, name, root string }{
		{"gs://bkt/datasets/fashion-mnist/" + d + "/", "fashion-mnist", "gs://bkt/datasets/fashion-mnist/" + d + "/"},
		{"gs://bkt/datasets/fashion-mnist/" + d, "fashion-mnist", "gs://bkt/datasets/fashion-mnist/" + d + "/"},
		{"gs://bkt/datasets/fashion-mnist/", "fashion-mnist", "gs://bkt/datasets/fashion-mnist/" + d + "/"},
		{"file:///var/lib/aerie/datasets/flowers", "flowers", "file:///var/lib/aerie/datasets/flowers/" + d + "/"},
	}
	for _, tt := range tests {
		name, root, err := dataset.Locate(tt.uri, d)
		if err != nil || name != tt.name || root != tt.root {
			t.Errorf("Locate(%s) = %s, %s, %v, want %s, %s", tt.uri, name, root, err, tt.name, tt.root)
		}
	}
	if _, _, err := dataset.Locate("gs://bkt/"+d, d); err == nil {
		t.Errorf("Locate of a bucket's digest directory succeeded, want an error: no name")
	}
}

func TestCheck(t *testing.T) {
	b, err := os.ReadFile("testdata/tiny.dataset.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := dataset.Check(b, dataset.Digest(b))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cat", "dog", "T-shirt/top"}, m.Classes); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
	_, err = dataset.Check(b, strings.Repeat("0", 64))
	if !errors.Is(err, dataset.ErrManifest) || !strings.Contains(err.Error(), "the run declares 0000") {
		t.Errorf("Check with another digest = %v, want ErrManifest naming both digests", err)
	}
}
