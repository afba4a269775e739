package ingest_test

import (
	"os"
	"testing"
	"time"

	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/ingest"
)

// BenchmarkIngestFashionMNIST ingests Debian's 70,000 Fashion-MNIST images
// into a file:// store: read and gunzip the IDX files, shuffle, shard,
// hash, upload. MB/s counts the shard bytes written.
//
//	go test ./tools/aerie/internal/ingest -run '^$' -bench Ingest -benchtime 1x
func BenchmarkIngestFashionMNIST(b *testing.B) {
	if _, err := os.Stat(ingest.DebianDir); err != nil {
		b.Skip("Debian's dataset-fashion-mnist is not installed")
	}
	var bytes int64
	for b.Loop() {
		s, err := store.Open(b.Context(), "file://"+b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		res, err := ingest.Dataset(b.Context(), quiet, s, ingest.DebianDir, ingest.Options{Name: "fashion-mnist", WorkDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		bytes = 0
		for _, f := range res.Files {
			bytes += f.Size
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/ingest")
		b.ReportMetric(70000/time.Since(start).Seconds(), "images/s")
	}
	b.SetBytes(bytes)
}
