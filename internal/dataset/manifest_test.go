package dataset_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
)

// TestGoldenManifest pins the manifest of a small generated dataset: the
// same samples always give the same bytes, hence the same digest.
func TestGoldenManifest(t *testing.T) {
	_, got := writeTiny(t, 10, 4)
	_, again := writeTiny(t, 10, 4)
	if !bytes.Equal(got, again) {
		t.Fatalf("two writes of the same samples differ:\n%s\n%s", got, again)
	}
	golden := filepath.Join("testdata", "tiny.dataset.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(string(mustRead(t, golden)), string(got)); diff != "" {
		t.Errorf("manifest differs from %s (-want +got; go test -update rewrites it):\n%s", golden, diff)
	}
	m, err := dataset.Parse(got)
	if err != nil {
		t.Fatalf("Parse(golden) = %v", err)
	}
	train, err := m.Split("train")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{4, 4, 2}, shardSamples(train)); diff != "" {
		t.Errorf("train shard sizes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{3, 3, 4}, train.ClassCounts); diff != "" {
		t.Errorf("train class counts (-want +got):\n%s", diff)
	}
}

func shardSamples(sp *dataset.Split) []int {
	var out []int
	for _, s := range sp.Shards {
		out = append(out, s.Samples)
	}
	return out
}

func TestParseErrors(t *testing.T) {
	_, good := writeTiny(t, 10, 4)
	s := string(good)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "unexpected end of JSON input"},
		{"other schema", strings.Replace(s, dataset.Schema, "aerie.dataset/v2", 1), `schema "aerie.dataset/v2", this reader knows "aerie.dataset/v1"`},
		{"no schema", `{"classes":["a"]}`, `schema "", this reader knows`},
		{"unknown field", strings.Replace(s, `"classes"`, `"labels": 1, "classes"`, 1), `unknown field "labels"`},
		{"not canonical", strings.Replace(s, "\n  ", "\n    ", 1), "not in canonical form"},
		{"trailing data", s + "{}", "after top-level value"},
		{"duplicate class", strings.Replace(s, `"dog"`, `"cat"`, 1), `classes[1] "cat" repeats classes[0]`},
		{"empty class", strings.Replace(s, `"dog"`, `""`, 1), `classes[1] "": empty`},
		{"channels", strings.Replace(s, `"channels": 3`, `"channels": 2`, 1), "channels 2, want 1 or 3"},
		{"huge side", strings.Replace(s, `"height": 4`, `"height": 100000`, 1), "sides must be 1 to 8192"},
		{"bad sha", strings.Replace(s, `"sha256": "`, `"sha256": "X`, 1), "is not 64 lowercase hex digits"},
		{"counts", strings.Replace(s, `"samples": 10,`, `"samples": 11,`, 1), "class counts add up to 10, not its 11 samples"},
		{"shard size", strings.Replace(s, `"bytes": 9216`, `"bytes": 9217`, 1), "9217 bytes, but 4 samples of 4x3x3 take 9216"},
		{"shard name", strings.Replace(s, `"train-000001.tar"`, `"../x.tar"`, 1), `file "../x.tar", want "train-000001.tar"`},
		{"too big", s + strings.Repeat(" ", dataset.MaxManifestBytes), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dataset.Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse() = %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, dataset.ErrManifest) {
				t.Errorf("Parse() = %v, want ErrManifest", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	_, good := writeTiny(f, 10, 4)
	f.Add(good)
	f.Add([]byte(`{"schema":"aerie.dataset/v1"}`))
	f.Add([]byte(`{"schema":"aerie.dataset/v1","classes":["a"],"shape":{"height":1,"width":1,"channels":1},"splits":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dataset.Parse(b)
		if err != nil {
			return
		}
		// Whatever parses is canonical and re-encodes to itself.
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of a parsed manifest: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("Encode(Parse(b)) != b")
		}
	})
}
