package dataset_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/dataset"
)

// tinyShard returns the first train shard of the tiny dataset and where it
// sits in its split.
func tinyShard(t testing.TB) ([]byte, dataset.ShardInfo) {
	dir, b := writeTiny(t, 10, 4)
	m, err := dataset.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	train, _ := m.Split("train")
	info := dataset.ShardInfo{Shape: m.Shape, NumClasses: len(m.Classes), Shard: train.Shards[1], First: 4}
	return mustRead(t, filepath.Join(dir, info.Shard.File)), info
}

// TestShardIsWebDataset reads a shard with archive/tar: members come in key
// order, .cls then .u8, and hold the class and the pixels.
func TestShardIsWebDataset(t *testing.T) {
	b, info := tinyShard(t)
	tr := tar.NewReader(bytes.NewReader(b))
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, h.Name)
		var j int
		fmt.Sscanf(h.Name, "%d", &j)
		switch {
		case strings.HasSuffix(h.Name, ".cls"):
			if want := fmt.Sprintf("%05d", classOf("train", j)); string(body) != want {
				t.Errorf("%s = %q, want %q", h.Name, body, want)
			}
		case !bytes.Equal(body, pixels(tinyShape, "train", j)):
			t.Errorf("%s: pixels differ", h.Name)
		}
	}
	want := []string{"000000004.cls", "000000004.u8", "000000005.cls", "000000005.u8", "000000006.cls", "000000006.u8", "000000007.cls", "000000007.u8"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	if int64(len(b)) != info.Shard.Bytes {
		t.Errorf("shard is %d bytes, manifest says %d", len(b), info.Shard.Bytes)
	}
}

func TestReadShard(t *testing.T) {
	b, info := tinyShard(t)
	var seen []int
	classes, err := dataset.ReadShard(bytes.NewReader(b), info, func(i, class int, px []byte) error {
		seen = append(seen, class)
		if !bytes.Equal(px, pixels(tinyShape, "train", 4+i)) {
			t.Errorf("sample %d: pixels differ", i)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []int{classOf("train", 4), classOf("train", 5), classOf("train", 6), classOf("train", 7)}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
	if len(classes) != 4 {
		t.Errorf("ReadShard returned %d classes, want 4", len(classes))
	}
}

func TestReadShardErrors(t *testing.T) {
	good, info := tinyShard(t)
	rec := int(dataset.RecordBytes(tinyShape))
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name   string
		in     []byte
		sample int64 // -1: the shard as a whole
		want   string
	}{
		{"truncated in a sample", good[:2*rec+700], 6, "truncated: 700 of 2048 bytes"},
		{"truncated end blocks", good[:4*rec+100], -1, "end-of-archive blocks are missing"},
		{"empty", nil, 4, "truncated: 0 of"},
		{"appended", append(bytes.Clone(good), 1), -1, "bytes after the end of the archive"},
		{"pixel flipped", edit(func(b []byte) []byte { b[rec+3*512+5] ^= 1; return b }), 5, "do not match the CRC32C"},
		{"class out of range", edit(func(b []byte) []byte { copy(b[2*rec+512:], "00007"); return b }), 6, `class "00007" is not a class index below 3`},
		{"class not digits", edit(func(b []byte) []byte { copy(b[512:], "+0001"); return b }), 4, `class "+0001"`},
		{"renamed member", edit(func(b []byte) []byte { b[3*rec] = 'x'; return b }), 7, "000000007.cls header is not the one expected"},
		{"padding", edit(func(b []byte) []byte { b[rec-1] = 1; return b }), 4, "padding after 000000004.u8"},
		{"end blocks", edit(func(b []byte) []byte { b[len(b)-1] = 1; return b }), -1, "end-of-archive blocks are not zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dataset.ReadShard(bytes.NewReader(tt.in), info, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadShard() = %v, want an error containing %q", err, tt.want)
			}
			se, ok := errors.AsType[*dataset.SampleError](err)
			if !ok {
				t.Fatalf("ReadShard() = %T, want a *SampleError", err)
			}
			if se.Shard != "train-000001.tar" || se.Sample != tt.sample {
				t.Errorf("error names shard %s sample %d, want train-000001.tar sample %d", se.Shard, se.Sample, tt.sample)
			}
			if !errors.Is(err, dataset.ErrShard) {
				t.Errorf("ReadShard() = %v, want ErrShard", err)
			}
		})
	}
	// A damaged byte the layout checks cannot see still fails the sha256.
	info.Shard.SHA256 = strings.Repeat("0", 64)
	if _, err := dataset.ReadShard(bytes.NewReader(good), info, nil); err == nil || !strings.Contains(err.Error(), "the manifest says 0000") {
		t.Errorf("ReadShard with another sha256 = %v, want a mismatch", err)
	}
}

func FuzzReadShard(f *testing.F) {
	good, info := tinyShard(f)
	f.Add(good)
	f.Add(good[:1000])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Verify the layout only: the fuzzer cannot forge a sha256, so the
		// checks before it are what is exercised.
		in := info
		in.Shard.Samples = 4
		classes, err := dataset.ReadShard(bytes.NewReader(b), in, func(i, class int, px []byte) error {
			if class < 0 || class >= in.NumClasses || len(px) != tinyShape.Bytes() {
				t.Fatalf("sample %d: class %d, %d pixel bytes", i, class, len(px))
			}
			return nil
		})
		if err == nil {
			if !bytes.Equal(b, good) {
				t.Fatalf("accepted a shard other than the one its sha256 names")
			}
			if len(classes) != 4 {
				t.Fatalf("%d classes", len(classes))
			}
			return
		}
		if _, ok := errors.AsType[*dataset.SampleError](err); !ok {
			t.Fatalf("error %v is a %T, want *SampleError", err, err)
		}
	})
}

// TestRecordHeaders checks the template-made headers against archive/tar's
// for keys and CRCs of every width.
func TestRecordHeaders(t *testing.T) {
	for _, j := range []int64{0, 7, 123456789, 999999999} {
		for _, crc := range []uint32{0, 1, 0xdeadbeef, 0xffffffff} {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			key := dataset.Key(j)
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: key + ".cls", Mode: 0o444, Size: 5, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR})
			tw.Write([]byte("00002"))
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: key + ".u8", Mode: 0o444, Size: int64(tinyShape.Bytes()), ModTime: time.Unix(int64(crc), 0), Format: tar.FormatUSTAR})
			cls, u8 := dataset.RecordHeadersForTest(tinyShape, j, []byte("00002"), crc)
			if diff := cmp.Diff(b.Bytes()[:512], cls[:]); diff != "" {
				t.Errorf("key %s: .cls header (-tar +ours):\n%s", key, diff)
			}
			if diff := cmp.Diff(b.Bytes()[1024:1536], u8[:]); diff != "" {
				t.Errorf("key %s crc %x: .u8 header (-tar +ours):\n%s", key, crc, diff)
			}
		}
	}
}
