// Package dataset is aerie's format for any labelled image dataset, its
// writer, its verified reader and the world-size-independent sample order
// that training uses.
//
// # Layout in the store
//
// A dataset lives under datasets/<name>/<digest>/ (store.DatasetPrefix):
//
//	<split>-000000.tar ...   the shards of each split (train, test, ...)
//	dataset.json            the manifest, written last
//
// The digest is the sha256 of dataset.json's bytes. The manifest lists, for
// each shard, its size and sha256, so one digest pins every byte. Parse
// accepts only the canonical encoding (Manifest.Encode: two-space indented
// JSON, fields in a fixed order, splits sorted by name, final newline), so
// the same content always has the same digest; it also rejects unknown
// fields, other schemas than Schema and anything over the Max* limits.
//
// The manifest (schema "aerie.dataset/v1"):
//
//	{
//	  "schema": "aerie.dataset/v1",
//	  "classes": ["T-shirt/top", ...],         class names; a label is an index
//	  "shape": {"height": 28, "width": 28, "channels": 1},
//	  "splits": [{
//	    "name": "test",
//	    "samples": 10000,
//	    "classCounts": [1000, ...],           one per class, summing to samples
//	    "shards": [{"file": "test-000000.tar", "bytes": 25601024,
//	                "sha256": "…", "samples": 10000}]
//	  }, ...]
//	}
//
// # Shards
//
// A shard is a ustar archive in the WebDataset convention: sample j of a
// split (numbered across its shards) has the key %09d and two members,
// <key>.cls (the class index, 5 zero-padded decimal digits) and <key>.u8
// (Height×Width×Channels uint8 pixels, row-major, channels interleaved).
// Pixels are decoded and resized once, at ingest; training only copies
// bytes. All headers are written the same way, so every sample takes
// RecordBytes(shape) bytes (3 blocks of 512 plus the pixels padded to 512)
// and sample i of a shard is at i×RecordBytes: random access is a single
// read. The mtime of each .u8 header holds the CRC32C of its pixels, so a
// damaged sample is named without another file. Any tar tool lists a shard;
// webdataset reads it with a raw-bytes decoder for .u8.
//
// # Reading
//
// Open reads and checks the manifest against the declared digest.
// Dataset.Reader reads one split: each shard is fetched once from the store
// into a local cache directory while every byte is checked (layout, class
// indices, per-sample CRC32C, size, sha256), and only a shard that checked
// out is used; at most Config.CacheShards shards are kept (least recently
// used goes first), so a replica's disk and memory do not grow with the
// dataset. Samples are then single reads at computed offsets. Errors name
// the shard and the sample (SampleError) and carry internal/exitcode codes:
// Data for a missing, truncated or corrupt shard or manifest, the store's
// StorageDown (retryable) when the store is unavailable.
//
// # Order
//
// NewOrder gives an epoch's sample sequence from the seed and the epoch
// alone: shards permuted, cut into windows of Window shards, samples
// permuted within each window. Global batch s is the sequence's positions
// [s×B, (s+1)×B); rank r of W takes Part(B, r, W) of it. So the union of the
// ranks' samples at step s is the same for every world size, and a run
// resumed at step s with another world size sees the same remaining samples.
// A rank reads the shards of at most two windows for one batch. An Order
// holds two ints a shard and one window's permutation (8 bytes a sample of
// the window), whatever the split's size.
package dataset
