package install

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/edge/internal/modeltest"
	"github.com/aerie-ml/aerie/internal/pins"
)

func setup(t *testing.T) (*Installer, modeltest.Dir) {
	t.Helper()
	in := &Installer{Dir: t.TempDir()}
	if err := in.Init(); err != nil {
		t.Fatal(err)
	}
	return in, modeltest.Dir(t.TempDir())
}

func pin(v modeltest.Version) pins.Version {
	return pins.Version{URI: "file:///x/" + v.Key, ManifestDigest: v.Digest, MinSelfTestAccuracy: 0.5}
}

func TestInstallActivatePrune(t *testing.T) {
	ctx := context.Background()
	in, st := setup(t)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in.Now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	var hexes []string
	for i := range 4 {
		v := modeltest.Write(t, st, "run", "small", modeltest.CentroidWeights(t, float32(i+1)), nil)
		got, err := in.Install(ctx, st.Sub(v.Key), pin(v), Policy{})
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Activate(got.Hex); err != nil {
			t.Fatal(err)
		}
		if cur, _ := in.Current(); cur != got.Hex {
			t.Fatalf("Current() = %s, want %s", cur, got.Hex)
		}
		hexes = append(hexes, got.Hex)
		// Installing again is a no-op that re-verifies the disk copy.
		if _, err := in.Install(ctx, nil, pin(v), Policy{}); err != nil {
			t.Fatalf("Install of an installed version: %v", err)
		}
	}
	if err := in.Prune(2); err != nil {
		t.Fatal(err)
	}
	got, err := in.Installed()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{hexes[3], hexes[2]}, got); diff != "" {
		t.Errorf("Installed after Prune(2) diff (-want +got):\n%s", diff)
	}
	if err := in.Remove(hexes[3]); err == nil {
		t.Error("Remove(active) = nil error")
	}
}

func TestInstallRejects(t *testing.T) {
	ctx := context.Background()
	pub, key, _ := ed25519.GenerateKey(nil)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	keys := []pins.Key{{Name: "fleets/keys/release.pub", Key: pub}}
	tests := []struct {
		name    string
		key     ed25519.PrivateKey
		corrupt func(t *testing.T, st modeltest.Dir, v modeltest.Version) pins.Version
		pol     Policy
		want    error
	}{
		{"corrupted weights", nil, func(t *testing.T, st modeltest.Dir, v modeltest.Version) pins.Version {
			b := append([]byte(nil), v.Weights...)
			b[len(b)-1] ^= 1
			st.Put(ctx, v.Key+"model.safetensors", bytesReader(b))
			return pin(v)
		}, Policy{}, ErrFileMismatch},
		{"truncated weights", nil, func(t *testing.T, st modeltest.Dir, v modeltest.Version) pins.Version {
			st.Put(ctx, v.Key+"model.safetensors", bytesReader(v.Weights[:100]))
			return pin(v)
		}, Policy{}, ErrFileMismatch},
		{"digest", nil, func(t *testing.T, st modeltest.Dir, v modeltest.Version) pins.Version {
			p := pin(v)
			p.ManifestDigest = "sha256:" + "ab" + p.ManifestDigest[9:]
			return p
		}, Policy{}, ErrDigestMismatch},
		{"missing version", nil, func(t *testing.T, st modeltest.Dir, v modeltest.Version) pins.Version {
			os.RemoveAll(filepath.Join(string(st), v.Key))
			return pin(v)
		}, Policy{}, ErrNotFound},
		{"unsigned", nil, func(t *testing.T, st modeltest.Dir, v modeltest.Version) pins.Version { return pin(v) },
			Policy{RequireSignature: true, Keys: keys}, pins.ErrNoSignature},
		{"untrusted signer", otherKey, func(t *testing.T, st modeltest.Dir, v modeltest.Version) pins.Version { return pin(v) },
			Policy{RequireSignature: true, Keys: keys}, pins.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, st := setup(t)
			good := modeltest.Write(t, st, "good", "small", modeltest.CentroidWeights(t, 1), key)
			gv, err := in.Install(ctx, st.Sub(good.Key), pin(good), tt.pol)
			if err != nil {
				t.Fatal(err)
			}
			if err := in.Activate(gv.Hex); err != nil {
				t.Fatal(err)
			}
			v := modeltest.Write(t, st, "bad", "small", modeltest.CentroidWeights(t, 2), tt.key)
			p := tt.corrupt(t, st, v)
			_, err = in.Install(ctx, st.Sub(v.Key), p, tt.pol)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Install() = %v, want %v", err, tt.want)
			}
			if cur, _ := in.Current(); cur != gv.Hex {
				t.Errorf("Current() = %s, want the previous %s", cur, gv.Hex)
			}
			if got, _ := in.Installed(); len(got) != 1 {
				t.Errorf("Installed() = %v, want only the good version", got)
			}
			if ents, _ := os.ReadDir(filepath.Join(in.Dir, "staging")); len(ents) != 0 {
				t.Errorf("staging not empty: %v", ents)
			}
		})
	}
}

func TestSignedInstall(t *testing.T) {
	ctx := context.Background()
	pub, key, _ := ed25519.GenerateKey(nil)
	in, st := setup(t)
	v := modeltest.Write(t, st, "run", "small", modeltest.CentroidWeights(t, 1), key)
	got, err := in.Install(ctx, st.Sub(v.Key), pin(v), Policy{RequireSignature: true, Keys: []pins.Key{{Name: "k.pub", Key: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	if got.SignedBy != "k.pub" {
		t.Errorf("SignedBy = %q, want k.pub", got.SignedBy)
	}
}

func TestRotOnDiskIsRedownloaded(t *testing.T) {
	ctx := context.Background()
	in, st := setup(t)
	v := modeltest.Write(t, st, "run", "small", modeltest.CentroidWeights(t, 1), nil)
	got, err := in.Install(ctx, st.Sub(v.Key), pin(v), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(got.Dir, "model.safetensors")
	os.Chmod(w, 0o644)
	if err := os.WriteFile(w, []byte("rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Open(got.Hex, Policy{}); !errors.Is(err, ErrFileMismatch) {
		t.Errorf("Open(rotten) = %v, want ErrFileMismatch", err)
	}
	if _, err := in.Install(ctx, st.Sub(v.Key), pin(v), Policy{}); err != nil {
		t.Fatalf("Install over a rotten copy: %v", err)
	}
	if _, err := in.Open(got.Hex, Policy{}); err != nil {
		t.Errorf("Open after re-download: %v", err)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
