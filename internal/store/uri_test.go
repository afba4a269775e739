package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/store"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		uri  string
		want store.Location
	}{
		{"gs://aerie-models", store.Location{Scheme: "gs", Bucket: "aerie-models"}},
		{"gs://aerie-models/", store.Location{Scheme: "gs", Bucket: "aerie-models"}},
		{"gs://aerie-models/prod", store.Location{Scheme: "gs", Bucket: "aerie-models", Prefix: "prod/"}},
		{"gs://aerie-models/prod/eu/", store.Location{Scheme: "gs", Bucket: "aerie-models", Prefix: "prod/eu/"}},
		{"gs://my.bucket_1/a b", store.Location{Scheme: "gs", Bucket: "my.bucket_1", Prefix: "a b/"}},
		{"file:///var/lib/aerie", store.Location{Scheme: "file", Path: "/var/lib/aerie"}},
		{"file:///var/lib/aerie/", store.Location{Scheme: "file", Path: "/var/lib/aerie"}},
		{"file:/var/lib/aerie", store.Location{Scheme: "file", Path: "/var/lib/aerie"}},
		{"file://localhost/var/lib/aerie", store.Location{Scheme: "file", Path: "/var/lib/aerie"}},
		{"file:///tmp/a%20b/../c", store.Location{Scheme: "file", Path: "/tmp/c"}},
		{"file:///", store.Location{Scheme: "file", Path: "/"}},
	}
	for _, tt := range tests {
		got, err := store.ParseURI(tt.uri)
		if err != nil {
			t.Errorf("ParseURI(%q) = %v", tt.uri, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseURI(%q) (-want +got):\n%s", tt.uri, diff)
		}
	}
}

func TestParseURIErrors(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"", "no scheme"},
		{"/var/lib/aerie", "no scheme"},
		{"s3://bucket/x", `unknown scheme "s3"`},
		{"gs:bucket", "gs: must be followed by //bucket"},
		{"gs://", "empty bucket name"},
		{"gs:///prefix", "empty bucket name"},
		{"gs://ab", "3 to 222"},
		{"gs://Upper", "start and end with a letter or digit"},
		{"gs://bucket-", "start and end"},
		{"gs://buck$et", `character '$'`},
		{"gs://googlebucket", `"goog"`},
		{"gs://my..bucket", "dot-separated parts"},
		{"gs://" + strings.Repeat("a", 64), "without dots"},
		{"gs://bucket//x", "starts with a slash"},
		{"gs://bucket/a//x", "empty path element"},
		{"gs://bucket/a/../b", `".." path element`},
		{"gs://bucket/.aerie-tmp", "reserved"},
		{"gs://bucket/a\nb", "control character"},
		{"file://host/x", `host "host"`},
		{"file:relative/x", `relative path "relative/x"`},
		{"file:///x?y=1", "no user, query or fragment"},
		{"file:///x#frag", "no user, query or fragment"},
		{"file:///x%00y", "control character"},
		{"file:///x%zz", "invalid URL escape"},
		{"gs://bucket/\xff", "UTF-8"},
	}
	for _, tt := range tests {
		_, err := store.ParseURI(tt.uri)
		if !errors.Is(err, store.ErrBadURI) {
			t.Errorf("ParseURI(%q) = %v, want ErrBadURI", tt.uri, err)
			continue
		}
		for _, want := range []string{tt.want, "gs://bucket[/prefix] or file:///absolute/path"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ParseURI(%q) = %q, want it to mention %q", tt.uri, err, want)
			}
		}
	}
}

func TestOpenBadURI(t *testing.T) {
	_, err := store.Open(t.Context(), "gs:/bucket")
	if !errors.Is(err, store.ErrBadURI) || !errors.Is(err, store.ErrPermanent) || !strings.Contains(err.Error(), "open gs:/bucket:") {
		t.Errorf("Open(gs:/bucket) = %v, want ErrBadURI (and ErrPermanent) naming the URI", err)
	}
}

// FuzzParseURI: a URI that parses has a canonical form that parses to the
// same location, and the location's keys are valid.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"gs://b-1/p/q/", "file:///tmp/x", "file:/a%20b", "file://localhost/x/../y", "gs://a.b.c/d", "gs://x", "file:///"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		loc, err := store.ParseURI(uri)
		if err != nil {
			if !errors.Is(err, store.ErrBadURI) {
				t.Fatalf("ParseURI(%q) = %v, not ErrBadURI", uri, err)
			}
			return
		}
		canon := loc.String()
		again, err := store.ParseURI(canon)
		if err != nil {
			t.Fatalf("ParseURI(%q) = %+v, but its String %q does not parse: %v", uri, loc, canon, err)
		}
		if diff := cmp.Diff(loc, again); diff != "" {
			t.Fatalf("ParseURI(%q) then String %q: location changed (-first +second):\n%s", uri, canon, diff)
		}
		switch loc.Scheme {
		case "gs":
			if loc.Prefix != "" {
				if err := store.CheckKey(strings.TrimSuffix(loc.Prefix, "/")); err != nil {
					t.Fatalf("ParseURI(%q).Prefix: %v", uri, err)
				}
			}
		case "file":
			if !strings.HasPrefix(loc.Path, "/") {
				t.Fatalf("ParseURI(%q).Path %q is not absolute", uri, loc.Path)
			}
		default:
			t.Fatalf("ParseURI(%q).Scheme = %q", uri, loc.Scheme)
		}
	})
}

func TestLayout(t *testing.T) {
	tests := []struct{ got, want string }{
		{store.DatasetPrefix("fashion-mnist", "f37b"), "datasets/fashion-mnist/f37b/"},
		{store.CheckpointPrefix("run-1", 1200), "checkpoints/run-1/000000001200/"},
		{store.ModelPrefix("run-1", "0123456789abcdef"), "models/run-1/0123456789abcdef/"},
		{store.DeviceStatusKey("pi-7"), "status/devices/pi-7.json"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
		if err := store.CheckKey(strings.TrimSuffix(tt.got, "/")); err != nil {
			t.Errorf("layout key %q: %v", tt.got, err)
		}
	}
	// Bad components make keys that every operation rejects.
	for _, key := range []string{
		store.DatasetPrefix("..", "x") + "f",
		store.CheckpointPrefix("", 1) + "f",
		store.ModelPrefix("r", ".") + "f",
		store.DeviceStatusKey("../../etc/passwd"),
	} {
		if err := store.CheckKey(key); !errors.Is(err, store.ErrBadURI) {
			t.Errorf("CheckKey(%q) = %v, want ErrBadURI", key, err)
		}
	}
}

func TestTeamRoot(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	tests := []struct{ root, want string }{
		{"gs://bucket", "gs://bucket/teams/vision"},
		{"gs://bucket/", "gs://bucket/teams/vision"},
		{"gs://bucket/aerie", "gs://bucket/aerie/teams/vision"},
		{"file://" + dir, "file://" + dir + "/teams/vision"},
	}
	for _, tt := range tests {
		if got := store.TeamRoot(tt.root, "vision"); got != tt.want {
			t.Errorf("TeamRoot(%q, vision) = %q, want %q", tt.root, got, tt.want)
		}
	}
	// A team's store is the root's teams/<team>/ prefix.
	root, err := store.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	team, err := store.Open(ctx, store.TeamRoot(root.URI(""), "vision"))
	if err != nil {
		t.Fatal(err)
	}
	defer team.Close()
	key := store.ModelPrefix("run-1", "0123456789abcdef") + "manifest.json"
	if err := team.Put(ctx, key, strings.NewReader("{}"), store.PutOptions{IfNotExists: true}); err != nil {
		t.Fatal(err)
	}
	objs, err := root.List(ctx, "teams/vision/models/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "teams/vision/"+key {
		t.Errorf("root lists %+v under teams/vision/models/, want the one key teams/vision/%s", objs, key)
	}
}

func TestCheckpointStep(t *testing.T) {
	type result struct {
		Run  string
		Step int64
		OK   bool
	}
	tests := []struct {
		key  string
		want result
	}{
		{store.CheckpointPrefix("r", 42) + "state.bin", result{"r", 42, true}},
		{"checkpoints/r/7/x", result{"r", 7, true}},
		{"checkpoints/r/-1/x", result{}},
		{"checkpoints/r/abc/x", result{}},
		{"checkpoints/r/1", result{}},
		{"models/r/1/x", result{}},
	}
	for _, tt := range tests {
		run, step, ok := store.CheckpointStep(tt.key)
		if diff := cmp.Diff(tt.want, result{run, step, ok}); diff != "" {
			t.Errorf("CheckpointStep(%q) (-want +got):\n%s", tt.key, diff)
		}
	}
}
