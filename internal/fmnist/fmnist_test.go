package fmnist

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func idxImages(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	img := make([]byte, n*4)
	for i := range img {
		img[i] = byte(i)
	}
	if err := WriteImages(&b, img, 2, 2); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func idxLabels(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(i % NumClasses)
	}
	if err := WriteLabels(&b, labels); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func tinyFS(t testing.TB) fstest.MapFS {
	return fstest.MapFS{
		TrainImages + ".gz": {Data: gz(t, idxImages(t, 6))},
		TrainLabels:         {Data: idxLabels(t, 6)},
		TestImages:          {Data: idxImages(t, 3)},
		TestLabels + ".gz":  {Data: gz(t, idxLabels(t, 3))},
	}
}

func TestLoad(t *testing.T) {
	fsys := tinyFS(t)
	ds, err := Load(fsys, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ds.Train.Len(), 6; got != want {
		t.Errorf("train Len() = %d, want %d", got, want)
	}
	if diff := cmp.Diff([]byte{4, 5, 6, 7}, ds.Train.Image(1)); diff != "" {
		t.Errorf("Image(1) diff (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]byte{0, 1, 2}, ds.Test.Labels); diff != "" {
		t.Errorf("test labels diff (-want +got):\n%s", diff)
	}
	again, err := Load(fsys, strings.ToUpper(ds.Digest))
	if err != nil {
		t.Fatalf("Load with its own digest: %v", err)
	}
	if again.Digest != ds.Digest {
		t.Errorf("digest changed between loads: %s, %s", ds.Digest, again.Digest)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(fstest.MapFS)
		digest  string
		wantErr string
	}{
		{
			name:    "wrong digest",
			digest:  strings.Repeat("0", 64),
			wantErr: "dataset digest mismatch",
		},
		{
			name:    "missing file",
			edit:    func(f fstest.MapFS) { delete(f, TestLabels+".gz") },
			wantErr: "t10k-labels-idx1-ubyte[.gz]: file does not exist",
		},
		{
			name: "truncated images",
			edit: func(f fstest.MapFS) {
				b := idxImages(t, 3)
				f[TestImages] = &fstest.MapFile{Data: b[:len(b)-5]}
			},
			wantErr: "t10k-images-idx3-ubyte: truncated: 7 of 12 data bytes",
		},
		{
			name:    "label count mismatch",
			edit:    func(f fstest.MapFS) { f[TrainLabels] = &fstest.MapFile{Data: idxLabels(t, 5)} },
			wantErr: "train-labels-idx1-ubyte: 5 labels for 6 images in train-images-idx3-ubyte.gz",
		},
		{
			name:    "labels as images",
			edit:    func(f fstest.MapFS) { f[TestImages] = &fstest.MapFile{Data: idxLabels(t, 3)} },
			wantErr: "t10k-images-idx3-ubyte: images need 3 dimensions, got 1",
		},
		{
			name:    "not idx",
			edit:    func(f fstest.MapFS) { f[TrainLabels] = &fstest.MapFile{Data: []byte("<html>")} },
			wantErr: "train-labels-idx1-ubyte: not an IDX file",
		},
		{
			name:    "corrupt gzip",
			edit:    func(f fstest.MapFS) { f[TrainImages+".gz"] = &fstest.MapFile{Data: []byte{0x1f, 0x8b, 1, 2, 3}} },
			wantErr: "train-images-idx3-ubyte.gz: gzip",
		},
		{
			name: "label out of range",
			edit: func(f fstest.MapFS) {
				var b bytes.Buffer
				WriteLabels(&b, []byte{0, 1, 10})
				f[TestLabels+".gz"] = &fstest.MapFile{Data: b.Bytes()}
			},
			wantErr: "t10k-labels-idx1-ubyte.gz: label 2 is 10, want 0 to 9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := tinyFS(t)
			if tt.edit != nil {
				tt.edit(fsys)
			}
			_, err := Load(fsys, tt.digest)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load() error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDigestMismatchIs(t *testing.T) {
	_, err := Load(tinyFS(t), "abc")
	if !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("Load() error = %v, want ErrDigestMismatch", err)
	}
}

func TestDigestIsSha256sumListing(t *testing.T) {
	// printf 'a' | sha256sum; printf 'b' | sha256sum; then the listing hashed.
	got := Digest(map[string][]byte{"b": []byte("b"), "a": []byte("a")})
	if sums := DigestOfSums(map[string]string{"a": sha256hex("a"), "b": sha256hex("b")}); sums != got {
		t.Errorf("DigestOfSums() = %s, Digest() = %s, want equal", sums, got)
	}
	listing := "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  a\n" +
		"3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  b\n"
	if got != sha256hex(listing) {
		t.Errorf("Digest() = %s, want sha256 of the sorted listing %s", got, sha256hex(listing))
	}
}

func TestDebianPackage(t *testing.T) {
	if _, err := os.Stat(DebianDir); err != nil {
		t.Skipf("Debian package dataset-fashion-mnist is not installed (%v); .ci/run installs it", err)
	}
	if testing.Short() {
		t.Skip("reads 30 MB; skipped with -short")
	}
	ds, err := Load(os.DirFS(DebianDir), "")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Train.Len() != 60000 || ds.Test.Len() != 10000 || ds.Train.Rows != 28 || ds.Train.Cols != 28 {
		t.Errorf("got %d train and %d test images of %dx%d, want 60000 and 10000 of 28x28",
			ds.Train.Len(), ds.Test.Len(), ds.Train.Rows, ds.Train.Cols)
	}
	t.Logf("digest %s", ds.Digest)
}

func FuzzReadImages(f *testing.F) {
	f.Add(idxImages(f, 2))
	f.Add(gz(f, idxImages(f, 1)))
	f.Add(idxLabels(f, 3))
	f.Add([]byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		images, n, rows, cols, err := ReadImages(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(images) != n*rows*cols {
			t.Fatalf("%d bytes for %d images of %dx%d", len(images), n, rows, cols)
		}
		var out bytes.Buffer
		if err := WriteImages(&out, images, rows, cols); err != nil {
			t.Fatal(err)
		}
		again, _, _, _, err := ReadImages(&out)
		if err != nil || !bytes.Equal(again, images) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzReadLabels(f *testing.F) {
	f.Add(idxLabels(f, 4))
	f.Add(gz(f, idxLabels(f, 2)))
	f.Fuzz(func(t *testing.T, b []byte) {
		labels, err := ReadLabels(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, l := range labels {
			if l >= NumClasses {
				t.Fatalf("label %d accepted", l)
			}
		}
	})
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
