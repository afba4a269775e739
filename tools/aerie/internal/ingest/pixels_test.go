package ingest_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/ingest"
)

var update = flag.Bool("update", false, "rewrite the golden files the edge agent's preprocessing is checked against")

// pixelsTestdata holds source images of odd sizes (grey and colour PNG
// and JPEG, transparent, paletted), each alone in its class, and, per
// channel count, the pixels ingest makes of them at 17×13 in class order. edge/internal/frames checks that the
// device's preprocessing gives the same bytes from the same files.
const pixelsTestdata = "../../../../internal/pixels/testdata"

func TestPixelsGolden(t *testing.T) {
	for _, channels := range []int{1, 3} {
		t.Run(fmt.Sprint(channels), func(t *testing.T) {
			s, err := store.Open(t.Context(), "file://"+t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			res, err := ingest.Dataset(t.Context(), quiet, s, filepath.Join(pixelsTestdata, "imagefolder"),
				ingest.Options{Name: "odd", Height: 17, Width: 13, Channels: channels})
			if err != nil {
				t.Fatal(err)
			}
			r, err := openResult(t, res, nil).Reader("train", dataset.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			n := r.Shape().Bytes()
			got := make([]byte, int(r.Len())*n)
			buf := make([]byte, n)
			for j := range r.Len() {
				c, err := r.Sample(t.Context(), j, buf)
				if err != nil {
					t.Fatal(err)
				}
				copy(got[c*n:(c+1)*n], buf)
			}
			golden := filepath.Join(pixelsTestdata, fmt.Sprintf("ingested-17x13x%d.u8", channels))
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ingest's pixels differ from %s (rewrite with -update, then check edge/internal/frames)", golden)
			}
		})
	}
}
