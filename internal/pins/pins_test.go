package pins

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

const valid = `apiVersion: aerie.dev/v1alpha1
kind: FleetPins
fleet: quadcopters
requireSignature: true
stable:
  uri: gs://aerie-models/models/fmnist-cnn/0123456789abcdef/
  manifestDigest: ` + digestA + `
  minSelfTestAccuracy: 0.8
canary:
  uri: file:///srv/aerie/models/fmnist-cnn/fedcba9876543210/
  manifestDigest: ` + digestB + `
  minSelfTestAccuracy: 0.85
  percent: 10
`

func TestParse(t *testing.T) {
	got, err := Parse("quadcopters.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	want := &Pins{
		APIVersion: APIVersion, Kind: Kind, Fleet: "quadcopters", RequireSignature: true,
		Stable: Version{URI: "gs://aerie-models/models/fmnist-cnn/0123456789abcdef/", ManifestDigest: digestA, MinSelfTestAccuracy: 0.8},
		Canary: &Canary{Version: Version{URI: "file:///srv/aerie/models/fmnist-cnn/fedcba9876543210/", ManifestDigest: digestB, MinSelfTestAccuracy: 0.85}, Percent: 10},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse() diff (-want +got):\n%s", diff)
	}
	// Marshal round-trips.
	b, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("quadcopters.yaml", b)
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v\n%s", err, b)
	}
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("round trip diff (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "quadcopters.yaml: empty file"},
		{"unknown field", strings.Replace(valid, "fleet: quadcopters", "fleet: quadcopters\ncolor: red", 1), "quadcopters.yaml:4: color: unknown field; check its spelling and indentation"},
		{"unknown nested", strings.Replace(valid, "  percent: 10", "  percent: 10\n  weight: 3", 1), "quadcopters.yaml:14: canary.weight: unknown field; check its spelling and indentation"},
		{"bad digest", strings.Replace(valid, digestA, "sha256:abc", 1), "quadcopters.yaml:7: stable.manifestDigest: \"sha256:abc\" is not sha256:<64 lowercase hex>"},
		{"percent", strings.Replace(valid, "percent: 10", "percent: 101", 1), "quadcopters.yaml:13: canary.percent: 101 is outside 0–100"},
		{"wrong type", strings.Replace(valid, "percent: 10", "percent: ten", 1), "quadcopters.yaml:13: canary.percent: want an integer, got a string \"ten\""},
		{"scheme", strings.Replace(valid, "gs://aerie-models", "http://aerie-models", 1), "quadcopters.yaml:6: stable.uri: \"http://aerie-models/models/fmnist-cnn/0123456789abcdef/\": unknown scheme \"http\" (want gs://bucket[/prefix] or file:///absolute/path): bad store URI"},
		// The store rejects these; a pin that names one would fail on every device.
		{"uppercase bucket", strings.Replace(valid, "gs://aerie-models", "gs://AB", 1), "quadcopters.yaml:6: stable.uri: \"gs://AB/models/fmnist-cnn/0123456789abcdef/\": bucket \"AB\": must be 3 to 222 characters (want gs://bucket[/prefix] or file:///absolute/path): bad store URI"},
		{"short bucket", strings.Replace(valid, "gs://aerie-models/models/fmnist-cnn/0123456789abcdef/", "gs://x", 1), "quadcopters.yaml:6: stable.uri: \"gs://x\": bucket \"x\": must be 3 to 222 characters (want gs://bucket[/prefix] or file:///absolute/path): bad store URI"},
		{"empty element", strings.Replace(valid, "gs://aerie-models/models", "gs://aerie-models//models", 1), "quadcopters.yaml:6: stable.uri: \"gs://aerie-models//models/fmnist-cnn/0123456789abcdef/\": prefix \"/models/fmnist-cnn/0123456789abcdef\": starts with a slash (want gs://bucket[/prefix] or file:///absolute/path): bad store URI"},
		{"file host", strings.Replace(valid, "file:///srv", "file://srv", 1), "quadcopters.yaml:10: canary.uri: \"file://srv/aerie/models/fmnist-cnn/fedcba9876543210/\": host \"srv\": only local paths are supported (want gs://bucket[/prefix] or file:///absolute/path): bad store URI"},
		{"missing stable", "apiVersion: aerie.dev/v1alpha1\nkind: FleetPins\nfleet: quadcopters\n", "quadcopters.yaml:1: stable.uri: is required"},
		{"accuracy", strings.Replace(valid, "0.8\n", "80\n", 1), "quadcopters.yaml:8: stable.minSelfTestAccuracy: 80 is outside (0, 1]"},
		{"kind", strings.Replace(valid, "kind: FleetPins", "kind: Pins", 1), "quadcopters.yaml:2: kind: \"Pins\", want \"FleetPins\""},
		{"two docs", valid + "---\nfleet: y\n", "quadcopters.yaml:14: more than one YAML document"},
		{"duplicate key", valid + "fleet: again\n", "quadcopters.yaml:14: mapping key \"fleet\" already defined at line 3"},
		{"same digests", strings.Replace(valid, digestB, digestA, 1), "quadcopters.yaml:11: canary.manifestDigest: equals stable.manifestDigest; drop the canary instead"},
		{"fleet name", strings.Replace(valid, "fleet: quadcopters", "fleet: Quad_Copters", 1), "quadcopters.yaml:3: fleet: \"Quad_Copters\" is not a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"},
		{"fleet not the file name", strings.Replace(valid, "fleet: quadcopters", "fleet: drones", 1), "quadcopters.yaml:3: fleet: \"drones\", but the file is quadcopters.yaml: name a fleet's pin file <fleet>.yaml"},
		{"too large", valid + "# " + strings.Repeat("x", MaxBytes) + "\n", fmt.Sprintf("quadcopters.yaml: %d bytes, more than %d: pin file too large", len(valid)+MaxBytes+3, MaxBytes)},
		{"syntax", "stable: [", "quadcopters.yaml:1: did not find expected node content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("quadcopters.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse() = nil error, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse() error = %q, want %q", err, tt.want)
			}
		})
	}
}

func TestBucketStable(t *testing.T) {
	// Fixed values: a change here moves devices between canary and stable.
	tests := []struct {
		fleet, device string
		want          int
	}{
		{"quadcopters", "pi-0001", Bucket("quadcopters", "pi-0001")},
	}
	for _, tt := range tests {
		if got := Bucket(tt.fleet, tt.device); got != tt.want || got < 0 || got >= 100 {
			t.Errorf("Bucket(%q, %q) = %d, want %d", tt.fleet, tt.device, got, tt.want)
		}
	}
	// About percent% of a large fleet is in the canary.
	p, err := Parse("quadcopters.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	in := 0
	for i := range 10000 {
		if p.InCanary("pi-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)) {
			in++
		}
	}
	if in < 800 || in > 1200 {
		t.Errorf("%d of 10000 devices in a 10%% canary", in)
	}
	p.Canary.Percent = 0
	if v, canary := p.Desired("pi-0001"); canary || v != p.Stable {
		t.Errorf("Desired with 0%% canary = %v, %v; want stable", v, canary)
	}
	p.Canary.Percent = 100
	if v, canary := p.Desired("pi-0001"); !canary || v != p.Canary.Version {
		t.Errorf("Desired with 100%% canary = %v, %v; want canary", v, canary)
	}
}

func TestBucketGolden(t *testing.T) {
	// Pinned so a refactor cannot silently reshuffle fleets.
	got := []int{Bucket("quadcopters", "pi-0001"), Bucket("quadcopters", "pi-0002"), Bucket("rovers", "pi-0001")}
	want := []int{98, 62, 45}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Bucket diff (-want +got):\n%s", diff)
	}
}

func TestSignature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	fsys := fstest.MapFS{
		"fleets/keys/release.pub": {Data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})},
		"fleets/keys/old.pub":     {Data: []byte(base64.StdEncoding.EncodeToString(otherPub) + "\n")},
		"fleets/keys/README.md":   {Data: []byte("not a key")},
	}
	keys, err := LoadKeys(fsys, KeysDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("LoadKeys = %d keys, want 2", len(keys))
	}
	manifest := []byte(`{"schemaVersion":"x"}`)
	sig := Sign(priv, manifest)
	name, err := VerifySignature(keys, manifest, sig)
	if err != nil || name != "fleets/keys/release.pub" {
		t.Errorf("VerifySignature = %q, %v; want fleets/keys/release.pub", name, err)
	}
	if _, err := VerifySignature(keys, append(manifest, ' '), sig); err == nil {
		t.Error("VerifySignature of altered manifest = nil error")
	}
	if _, err := VerifySignature(keys, manifest, []byte("garbage")); err == nil {
		t.Error("VerifySignature of garbage = nil error")
	}
	if _, err := VerifySignature(nil, manifest, sig); err == nil {
		t.Error("VerifySignature without keys = nil error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("stable: {uri: gs://b/m/, manifestDigest: " + digestA + "}"))
	f.Add([]byte("a: &x [*x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("quadcopters.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "quadcopters.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		// Whatever parses must survive a round trip.
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse("quadcopters.yaml", b); err != nil {
			t.Fatalf("Parse(Marshal(p)) = %v", err)
		}
		if b := Bucket(p.Fleet, "d"); b < 0 || b >= 100 {
			t.Fatalf("Bucket = %d", b)
		}
	})
}

// TestFleetFiles parses every committed pin file.
func TestFleetFiles(t *testing.T) {
	files, err := filepath.Glob("../../fleets/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fleet files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(f, b)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); p.Fleet != want {
			t.Errorf("%s: fleet %q, want %q (the file name)", f, p.Fleet, want)
		}
	}
}
