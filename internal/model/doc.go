// Package model is aerie's model architecture registry, its weights file
// format and an inference-only classifier. The edge agent imports it, so it
// holds no training code: no optimizer, no loss, no data pipeline.
//
// # Architectures
//
//   - cnn: the published prototype's network, 421,642 parameters.
//     Conv 1→32 3×3 same, ReLU, MaxPool 2, Dropout 0.25;
//     Conv 32→64 3×3 same, ReLU, MaxPool 2, Dropout 0.25;
//     Linear 3136→128, ReLU, Dropout 0.5; Linear 128→10.
//   - small: Conv 1→4, ReLU, MaxPool 2, Dropout 0.25, MaxPool 2,
//     Linear 196→10 (2,010 parameters), for tests.
//
// Convolutions are built as im2col and one matmul, and max-pooling as a
// reshape and ReduceMax: on gomlx's pure-Go backend this is about 10× faster
// than its convolution and pooling ops. ReLU runs after the pooling that
// follows it (max commutes with ReLU, so the function is the same) on a
// quarter of the elements.
//
// Classify pads each batch to a power of two up to 64 images, so at most
// seven graphs are ever compiled; a process that only infers at batch 1
// peaks at about 24 MB RSS on amd64.
//
// # Inputs
//
// An image is 28×28 8-bit grayscale, row-major. It is normalized to
// p/127.5 − 1, in [−1, 1], and fed as NHWC [batch, 28, 28, 1].
//
// # Weights file: model.safetensors
//
// The safetensors format (https://github.com/huggingface/safetensors):
//
//	8 bytes   little-endian uint64 N, the header length
//	N bytes   JSON object, padded with spaces to an 8-byte boundary:
//	            "__metadata__": {"architecture": "cnn", ...}   (strings only)
//	            "<tensor name>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}
//	rest      the tensors' little-endian bytes; offsets are relative to the
//	          start of this section, and the tensors tile it exactly
//
// Encode writes tensors in name order, so equal weights give equal bytes
// (the model version is derived from the file's sha256). Decode rejects a
// header above 1 MiB, data above 256 MiB, dtypes other than F32 and I64,
// duplicate names, shapes that do not match their byte range, and ranges
// that overlap, leave gaps, fall outside the data or leave trailing bytes.
//
// Tensor names and layouts (all F32):
//
//	conv<i>.weight  [3, 3, in, out]   kernel height, width, input and output channels (HWIO)
//	conv<i>.bias    [out]
//	fc<i>.weight    [in, out]         y = x·W + b (the transpose of PyTorch's Linear.weight)
//	fc<i>.bias      [out]
//
// fc1's input is the last feature map flattened in (height, width, channel)
// order, not PyTorch's (channel, height, width). Checkpoints use the same
// container with more tensors (optimizer state, counters).
package model
