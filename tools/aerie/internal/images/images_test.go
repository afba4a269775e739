package images

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

const (
	trainer = "europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer@sha256:b28009423ade7024b7ee2e34661b867eadccec2ebc2e829494036c7adbd59954"
	edge    = "europe-west4-docker.pkg.dev/aerie-dev/aerie/aerie-edge@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	valid   = "apiVersion: aerie.dev/v1alpha1\nkind: ImageRelease\ntrainer: " + trainer + "\nedge: " + edge + "\n"
)

func TestParse(t *testing.T) {
	got, err := Parse("images.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	want := &Release{APIVersion: APIVersion, Kind: Kind, Trainer: trainer, Edge: edge}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "images.yaml: empty file"},
		{"kind", strings.Replace(valid, "ImageRelease", "Images", 1), `images.yaml:2: kind: "Images", want "ImageRelease"`},
		{"no trainer", strings.Replace(valid, "trainer: "+trainer+"\n", "", 1),
			"images.yaml:1: trainer: is required: the trainer image, <registry>/<repository>@sha256:<64 hex digits>"},
		{"trainer by tag", strings.Replace(valid, "@sha256:b28009423ade7024b7ee2e34661b867eadccec2ebc2e829494036c7adbd59954", ":v1", 1),
			`images.yaml:3: trainer: must be pinned by digest: <registry>/<repository>@sha256:<64 hex digits>, got "europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer:v1"`},
		{"edge short digest", strings.Replace(valid, "sha256:1111111111111111111111111111111111111111111111111111111111111111", "sha256:11", 1),
			`images.yaml:4: edge: must be <registry>/<repository>[:<tag>]@sha256:<64 lowercase hex digits>, got "europe-west4-docker.pkg.dev/aerie-dev/aerie/aerie-edge@sha256:11"`},
		{"unknown field", valid + "revision: abc\n", "images.yaml:5: revision: unknown field; check its spelling and indentation"},
		{"duplicate", valid + "trainer: " + trainer + "\n", `images.yaml:5: mapping key "trainer" already defined at line 3`},
		{"two documents", valid + "---\n" + valid, "images.yaml:5: more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("images.yaml", []byte(tt.data))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse = %v, want %s", err, tt.want)
			}
		})
	}
	if _, err := Parse("images.yaml", []byte(valid+"# "+strings.Repeat("x", MaxBytes)+"\n")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse of a huge file = %v, want ErrTooLarge", err)
	}
}

// TestCommitted parses the repository's record.
func TestCommitted(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "apps", "jobs", File)
	b := readFile(t, path)
	if _, err := Parse(path, b); err != nil {
		t.Error(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("trainer: [a, b]"))
	f.Add([]byte("a: &x [*x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("images.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "images.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		// Whatever parses survives a round trip.
		b, err := yaml.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse("images.yaml", b)
		if err != nil {
			t.Fatalf("Parse(Marshal(r)) = %v", err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
