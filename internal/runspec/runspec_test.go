package runspec

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const testDigest = "f37bf62265b0989968a94c78e420344f1ede1007dabf032a0dc5e88371fef370"

// base is a valid declaration; the error tests edit one line of it, so
// the line numbers in their messages are those below.
const base = `apiVersion: aerie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: fmnist
spec:
  workers:
    count: 4
  model:
    architecture: cnn
    batchSize: 128
    learningRate: 0.001
    earlyStoppingPatience: 0
    augmentation:
      rotationDegrees: 10
      cropPadding: 4
  dataset:
    uri: gs://aerie-dev-training/datasets/fashion-mnist/
    sha256: ` + testDigest + `
  resources:
    cpu: auto
    memory: auto
  output:
    uri: gs://aerie-dev-training
  gates:
    minTestAccuracy: 0.85
  image: europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer@sha256:` + testDigest + `
  deadline: 6h
  maxRestarts: 3
`

const file = "apps/jobs/runs/fmnist.yaml"

// edit replaces the first occurrence of old in base, failing if absent.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("base lacks %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestParseErrors(t *testing.T) {
	img := "europe-west4-docker.pkg.dev/aerie-dev/aerie/trainer"
	tests := []struct {
		name  string
		edits []string
		want  string
	}{
		{"workers zero", []string{"count: 4", "count: 0"},
			file + ":7: spec.workers.count: must be an integer between 1 and 64, got 0"},
		{"workers string", []string{"count: 4", "count: four"},
			file + `:7: spec.workers.count: must be an integer between 1 and 64, got "four"`},
		{"workers too many", []string{"count: 4", "count: 65"},
			file + ":7: spec.workers.count: must be an integer between 1 and 64, got 65"},
		{"workers min above count", []string{"count: 4", "count: 4\n    min: 5"},
			file + ":8: spec.workers.min: must be between 1 and spec.workers.count (4), got 5"},
		{"workers max below count", []string{"count: 4", "count: 4\n    max: 2"},
			file + ":8: spec.workers.max: must be between spec.workers.count (4) and 64, got 2"},
		{"unknown top field", []string{"kind: TrainingRun", "kind: TrainingRun\nstatus: {}"},
			file + ":3: status: unknown field; allowed fields: apiVersion, kind, metadata, spec"},
		{"unknown model field", []string{"    batchSize: 128", "    batchsize: 128"},
			file + ":10: spec.model.batchsize: unknown field; allowed fields: architecture, epochs, batchSize, learningRate, optimizer, schedule, seed, dropout, ghostBatch, earlyStoppingPatience, augmentation"},
		{"duplicate field", []string{"    batchSize: 128", "    batchSize: 128\n    batchSize: 64"},
			file + ":11: spec.model.batchSize: duplicate field, first set on line 10"},
		{"wrong apiVersion", []string{"aerie.dev/v1alpha1", "aerie.dev/v1"},
			file + `:1: apiVersion: must be "aerie.dev/v1alpha1", got "aerie.dev/v1"`},
		{"wrong kind", []string{"kind: TrainingRun", "kind: Run"},
			file + `:2: kind: must be "TrainingRun", got "Run"`},
		{"bad team", []string{"spec:\n", "spec:\n  team: Vision_1\n"},
			file + `:6: spec.team: must be a team of apps/teams/: 1 to 30 lowercase letters, digits and '-', starting with a letter and not ending with '-', got "Vision_1"`},
		{"team too long", []string{"spec:\n", "spec:\n  team: " + strings.Repeat("a", 31) + "\n"},
			file + `:6: spec.team: must be a team of apps/teams/: 1 to 30 lowercase letters, digits and '-', starting with a letter and not ending with '-', got "` + strings.Repeat("a", 31) + `"`},
		{"bad name", []string{"name: fmnist", "name: FMNIST_1"},
			file + `:4: metadata.name: must be 1 to 40 lowercase letters, digits and '-', starting with a letter and not ending with '-', got "FMNIST_1"`},
		{"architecture not a name", []string{"architecture: cnn", "architecture: Res_Net"},
			file + `:9: spec.model.architecture: must be the name of a file models/<name>.yaml (a DNS label of at most 40 characters) or the architecture inline, a mapping, got "Res_Net"`},
		{"architecture a list", []string{"architecture: cnn", "architecture: [conv]"},
			file + `:9: spec.model.architecture: must be the name of a file models/<name>.yaml (a DNS label of at most 40 characters) or the architecture inline, a mapping, got a list`},
		{"inline architecture", []string{"architecture: cnn", "architecture:\n      metadata: {name: tiny}\n      layers:\n        - conv: {filters: 0}\n        - dense: {units: classes}"},
			file + `:12: spec.model.architecture.layers[0].conv.filters: must be an integer between 1 and 4096, got 0`},
		{"inline architecture without a name", []string{"architecture: cnn", "architecture:\n      layers: [flatten, {dense: {units: classes}}]"},
			file + `:10: spec.model.architecture.metadata: is required: a mapping with the name`},
		{"batch not a multiple", []string{"batchSize: 128", "batchSize: 130"},
			file + ":10: spec.model.batchSize: must be a multiple of spec.workers.count (4): it is the global batch, split evenly, got 130"},
		{"learning rate zero", []string{"learningRate: 0.001", "learningRate: 0"},
			file + ":11: spec.model.learningRate: must be a number above 0 and at most 1, got 0"},
		{"learning rate nan", []string{"learningRate: 0.001", "learningRate: .nan"},
			file + ":11: spec.model.learningRate: must be a number above 0 and at most 1, got .nan"},
		{"patience without validation", []string{"earlyStoppingPatience: 0", "earlyStoppingPatience: 3", "sha256: " + testDigest, "sha256: " + testDigest + "\n    validationFraction: 0"},
			file + ":12: spec.model.earlyStoppingPatience: must be 0 when spec.dataset.validationFraction is 0 (there is no validation set to watch), got 3"},
		{"rotation", []string{"rotationDegrees: 10", "rotationDegrees: 200"},
			file + ":14: spec.model.augmentation.rotationDegrees: must be a number between 0 and 180, got 200"},
		{"augmentation list", []string{"augmentation:\n      rotationDegrees: 10\n      cropPadding: 4", "augmentation: [rotate]"},
			file + ":13: spec.model.augmentation: must be a mapping with fields rotationDegrees, cropPadding, horizontalFlip, brightness, contrast, erasing, got a list"},
		{"erasing", []string{"cropPadding: 4", "cropPadding: 4\n      erasing: 1.5"},
			file + ":16: spec.model.augmentation.erasing: must be a number between 0 and 1, got 1.5"},
		{"flip", []string{"cropPadding: 4", "cropPadding: 4\n      horizontalFlip: yes"},
			file + `:16: spec.model.augmentation.horizontalFlip: must be true or false, got "yes"`},
		{"dataset uri", []string{"uri: gs://aerie-dev-training/datasets", "uri: https://example.com/datasets"},
			file + `:17: spec.dataset.uri: must be gs://<bucket>[/<path>] or file:///<absolute path> (unknown scheme "https"), got "https://example.com/datasets/fashion-mnist/"`},
		// The store rejects these, so the run declaration must too.
		{"output bucket uppercase", []string{"uri: gs://aerie-dev-training\n", "uri: gs://AB\n"},
			file + `:23: spec.output.uri: must be gs://<bucket>[/<path>] or file:///<absolute path> (bucket "AB": must be 3 to 222 characters), got "gs://AB"`},
		{"output bucket google", []string{"uri: gs://aerie-dev-training\n", "uri: gs://google-models\n"},
			file + `:23: spec.output.uri: must be gs://<bucket>[/<path>] or file:///<absolute path> (bucket "google-models": may not start with "goog" or contain "google"), got "gs://google-models"`},
		{"output dot-dot", []string{"uri: gs://aerie-dev-training\n", "uri: gs://aerie-dev-training/a/../b\n"},
			file + `:23: spec.output.uri: must be gs://<bucket>[/<path>] or file:///<absolute path> (prefix "a/../b": has a ".." path element), got "gs://aerie-dev-training/a/../b"`},
		{"output empty element", []string{"uri: gs://aerie-dev-training\n", "uri: gs://aerie-dev-training/a//b\n"},
			file + `:23: spec.output.uri: must be gs://<bucket>[/<path>] or file:///<absolute path> (prefix "a//b": has an empty path element), got "gs://aerie-dev-training/a//b"`},
		{"dataset testDigest", []string{"sha256: " + testDigest, "sha256: F37B"},
			file + `:18: spec.dataset.sha256: must be 64 lowercase hex digits (the dataset digest that aerie dataset ingest prints), got "F37B"`},
		{"cpu millicores", []string{"cpu: auto", "cpu: 500m"},
			file + `:20: spec.resources.cpu: must be auto or whole cores between 1 and 16, got "500m"`},
		{"memory too small", []string{"cpu: auto", "cpu: 2", "memory: auto", "memory: 512Mi"},
			file + `:21: spec.resources.memory: must be auto or a quantity between 2Gi and 13Gi for 2 cpu and this model and batch (see apps/jobs/README.md), got "512Mi"`},
		{"output file relative", []string{"uri: gs://aerie-dev-training\n", "uri: file://out\n"},
			file + `:23: spec.output.uri: must be gs://<bucket>[/<path>] or file:///<absolute path> (host "out": only local paths are supported), got "file://out"`},
		{"gate above one", []string{"minTestAccuracy: 0.85", "minTestAccuracy: 85"},
			file + ":25: spec.gates.minTestAccuracy: must be a number between 0 and 1, got 85"},
		{"image tag only", []string{img + "@sha256:" + testDigest, img + ":latest"},
			file + `:26: spec.image: must be pinned by digest: <registry>/<repository>@sha256:<64 hex digits>, got "` + img + `:latest"`},
		{"image short testDigest", []string{"@sha256:" + testDigest, "@sha256:abc"},
			file + `:26: spec.image: must be <registry>/<repository>[:<tag>]@sha256:<64 lowercase hex digits>, got "` + img + `@sha256:abc"`},
		{"image without registry", []string{img + "@sha256:" + testDigest, "trainer@sha256:" + testDigest},
			file + `:26: spec.image: must be <registry>/<repository>[:<tag>]@sha256:<64 lowercase hex digits>, got "trainer@sha256:` + testDigest + `"`},
		{"image uppercase repository", []string{img + "@sha256:" + testDigest, "example.com/Trainer@sha256:" + testDigest},
			file + `:26: spec.image: must be <registry>/<repository>[:<tag>]@sha256:<64 lowercase hex digits>, got "example.com/Trainer@sha256:` + testDigest + `"`},
		{"image other testDigest algorithm", []string{img + "@sha256:" + testDigest, img + "@sha512:" + testDigest + testDigest},
			file + `:26: spec.image: must be <registry>/<repository>[:<tag>]@sha256:<64 lowercase hex digits>, got "` + img + `@sha512:` + testDigest + testDigest[:5] + `…"`},
		{"deadline number", []string{"deadline: 6h", "deadline: 3600"},
			file + ":27: spec.deadline: must be a duration such as 6h or 90m between 1m and 168h, got 3600"},
		{"deadline too long", []string{"deadline: 6h", "deadline: 30d"},
			file + `:27: spec.deadline: must be a duration such as 6h or 90m between 1m and 168h, got "30d"`},
		{"restarts negative", []string{"maxRestarts: 3", "maxRestarts: -1"},
			file + ":28: spec.maxRestarts: must be an integer between 0 and 100, got -1"},
		{"missing spec", []string{base[strings.Index(base, "spec:"):], ""},
			file + ":1: spec: is required"},
		{"several errors in line order", []string{"maxRestarts: 3", "maxRestarts: 101", "count: 4", "count: 0"},
			file + ":7: spec.workers.count: must be an integer between 1 and 64, got 0\n" +
				file + ":28: spec.maxRestarts: must be an integer between 0 and 100, got 101"},
		{"syntax error", []string{"  workers:\n", "  workers: [\n"},
			file + ":5: invalid YAML: did not find expected ',' or ']'"},
		{"second document", []string{"maxRestarts: 3\n", "maxRestarts: 3\n---\nkind: TrainingRun\n"},
			file + ":29: a second YAML document: want one TrainingRun per file"},
		{"alias of a missing anchor", []string{"cropPadding: 4", "cropPadding: *x"},
			file + ":15:20: alias *x: aliases are not allowed, write the value out"},
		{"anchor on a value", []string{"name: fmnist", "name: &n fmnist"},
			file + ":4:9: anchor &n: anchors are not allowed, write the value out"},
		{"anchor and alias", []string{"count: 4", "count: &c 4\n    max: *c"},
			file + ":7:12: anchor &c: anchors are not allowed, write the value out\n" +
				file + ":8:10: alias *c: aliases are not allowed, write the value out"},
		{"merge key", []string{"  gates:\n", "  gates:\n    <<: *g\n", "  workers:\n", "  workers: &g\n"},
			file + ":6:12: anchor &g: anchors are not allowed, write the value out\n" +
				file + ":25:9: alias *g: aliases are not allowed, write the value out"},
		{"invalid UTF-8", []string{"architecture: cnn", "architecture: c\xffnn"},
			file + ":9:20: invalid UTF-8 (byte 0xff): a declaration is UTF-8 text"},
		{"NUL byte", []string{"deadline: 6h", "deadline: 6h\x00"},
			file + ":27:15: character U+0000 is not allowed in YAML"},
		{"escape character in a comment", []string{"maxRestarts: 3", "maxRestarts: 3 # \x1b[2J"},
			file + ":28:20: character U+001B is not allowed in YAML"},
		{"long unknown key", []string{"kind: TrainingRun", "kind: TrainingRun\n" + strings.Repeat("k", 1000) + ": 1"},
			file + `:3: unknown field "` + strings.Repeat("k", 128) + `…"; allowed fields: apiVersion, kind, metadata, spec`},
		{"key with a newline", []string{"kind: TrainingRun", "kind: TrainingRun\n\"a\\nb\": 1"},
			file + `:3: unknown field "a\nb"; allowed fields: apiVersion, kind, metadata, spec`},
		{"long name", []string{"name: fmnist", "name: " + strings.Repeat("n", 100_000)},
			file + `:4: metadata.name: must be 1 to 40 lowercase letters, digits and '-', starting with a letter and not ending with '-', got "` + strings.Repeat("n", 128) + `…"`},
		{"too large", []string{"maxRestarts: 3\n", "maxRestarts: 3\n#" + strings.Repeat(" ", MaxBytes) + "\n"},
			file + ": " + strconv.Itoa(len(base)+MaxBytes+2) + " bytes, more than the limit of 262144 for a declaration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(file, []byte(edit(t, tt.edits...)))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("Parse error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseErrorCap: a file of nothing but unknown keys yields MaxErrors
// problems and a count of the rest, not one line per key.
func TestParseErrorCap(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < MaxBytes-100; i++ {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	_, err := Parse(file, []byte(b.String()))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v, want Errors", err)
	}
	if len(errs) != MaxErrors+1 {
		t.Fatalf("Parse reported %d problems, want %d and a count", len(errs), MaxErrors)
	}
	if got, want := errs[0].Error(), file+":1: k0: unknown field; allowed fields: apiVersion, kind, metadata, spec"; got != want {
		t.Errorf("first problem = %s, want %s", got, want)
	}
	last := errs[len(errs)-1].Error()
	if !strings.HasPrefix(last, file+": and ") || !strings.HasSuffix(last, " more problems not shown") {
		t.Errorf("last line = %s, want a count of the rest", last)
	}
}

// TestParseAcceptsBOM: a leading byte order mark is text, not a bad byte.
func TestParseAcceptsBOM(t *testing.T) {
	if _, err := Parse(file, []byte("\ufeff"+base)); err != nil {
		t.Errorf("Parse with a BOM: %v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n"} {
		_, err := Parse(file, []byte(in))
		if want := file + ":1: empty document: want a TrainingRun"; err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %s", in, err, want)
		}
	}
}

// TestParseGolden parses each testdata/*.yaml and compares the defaulted
// run, as Marshal writes it, with testdata/<name>.golden.
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(f, data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Marshal(Parse(%s)) (-want +got):\n%s", f, diff)
			}
			again, err := Parse(golden, got)
			if err != nil {
				t.Fatalf("the marshaled run does not parse: %v", err)
			}
			if diff := cmp.Diff(r, again); diff != "" {
				t.Errorf("Parse(Marshal(r)) differs from r (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSizing(t *testing.T) {
	tests := []struct {
		name          string
		edits         []string
		cpu           int
		memory        string
		workingSetMiB int64
	}{
		{"prototype 4 workers", nil, 1, "1Gi", 428},
		{"one worker batch 256", []string{"count: 4", "count: 1", "batchSize: 128", "batchSize: 256"}, 4, "4Gi", 835},
		{"one worker batch 1024", []string{"count: 4", "count: 1", "batchSize: 128", "batchSize: 1024"}, 4, "4Gi", 2230},
		{"one core batch 1024", []string{"count: 4", "count: 1", "batchSize: 128", "batchSize: 1024", "cpu: auto", "cpu: 1"}, 1, "3008Mi", 2230},
		{"explicit", []string{"cpu: auto", "cpu: 2", "memory: auto", "memory: 3Gi"}, 2, "3Gi", 428},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Resolve(t.Context(), file, []byte(edit(t, tt.edits...)), testSources(t))
			if err != nil {
				t.Fatal(err)
			}
			s := res.Run.Spec
			got := []any{s.Resources.CPU, s.Resources.Memory.String(), s.WorkingSet(res.Plan) >> 20}
			want := []any{tt.cpu, tt.memory, tt.workingSetMiB}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("cpu, memory, working set MiB (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := map[string]string{"6h": "6h", "90m": "1h30m", "30s": "30s", "1m": "1m", "2h0m30s": "2h0m30s", "168h": "168h"}
	for in, want := range tests {
		r, err := Parse(file, []byte(edit(t, "deadline: 6h", "deadline: "+in)))
		if err != nil {
			if in == "30s" {
				continue // below the minimum; String is tested through 1m
			}
			t.Fatal(err)
		}
		if got := r.Spec.Deadline.String(); got != want {
			t.Errorf("Duration(%s).String() = %s, want %s", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("apiVersion: aerie.dev/v1alpha1\nkind: TrainingRun\n"))
	f.Add([]byte("spec: {workers: {count: 0}}"))
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte(strings.Replace(base, "name: fmnist", "name: &n fmnist", 1)))
	f.Add([]byte(strings.Replace(base, "cnn", "c\xffnn", 1)))
	f.Add([]byte(strings.Replace(base, "6h", "6h\x00", 1)))
	f.Add([]byte("b: *a\na: &a {c: 1}"))
	f.Add([]byte(strings.Repeat("k: 1\n", 100)))
	if files, _ := filepath.Glob("testdata/*.yaml"); len(files) > 0 {
		for _, fn := range files {
			if data, err := os.ReadFile(fn); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			if errs, ok := err.(Errors); ok && len(errs) > MaxErrors+1 {
				t.Fatalf("%d problems reported, more than MaxErrors", len(errs))
			}
			return
		}
		out, err := Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse("again.yaml", out)
		if err != nil {
			t.Fatalf("Parse(Marshal(r)): %v\n%s", err, out)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("Parse(Marshal(r)) differs (-want +got):\n%s", diff)
		}
	})
}

// TestTeam: a run names its team, or belongs to DefaultTeam.
func TestTeam(t *testing.T) {
	for _, tt := range []struct{ name, doc, want string }{
		{"default", base, DefaultTeam},
		{"named", edit(t, "spec:\n", "spec:\n  team: research\n"), "research"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse(file, []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if r.Spec.Team != tt.want {
				t.Errorf("Parse(...).Spec.Team = %q, want %q", r.Spec.Team, tt.want)
			}
		})
	}
}

// TestTeamNamespace: the longest team validTeam accepts still names a
// namespace, team-<team>.
func TestTeamNamespace(t *testing.T) {
	team := strings.Repeat("a", MaxTeamLength)
	r, err := Parse(file, []byte(edit(t, "spec:\n", "spec:\n  team: "+team+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := TeamNamespace(r.Spec.Team), "team-"+team; got != want {
		t.Errorf("TeamNamespace(%q) = %q, want %q", r.Spec.Team, got, want)
	}
}
