// Package model builds the gomlx graph of any architecture plan
// (internal/arch: a models/*.yaml file on a dataset's image shape and
// classes), and holds the weights file format and an inference-only
// classifier. The trainer and the edge agent build the same graph with Net;
// the edge agent imports this package, so it holds no training code: no
// optimizer, no loss, no data pipeline.
//
// # The graph
//
// Feature maps are channel-first inside, [C, batch, H, W]. Convolutions
// (any square kernel, stride, padding, groups, bias or not) are im2col and
// one matmul, a batched one for groups: on gomlx's pure-Go backend this is
// about 10× faster than its convolution op. Padding is a Concatenate of
// zeros (Pad has no gradient). Pooling whose window tiles (stride = size)
// is a reshape and a reduction, other windows the elementwise Max or sum of
// strided slices. ReLU runs after a max-pool that follows it (max commutes
// with ReLU, so the function is the same) on fewer elements. A residual
// block adds its branch to its input, or to a 1×1 strided convolution of
// it when the shapes differ. The op formulation sits in small functions
// (conv2d, maxPool, avgPool, batchNorm) so a backend with fast native
// kernels can swap it.
//
// Batch norm trains on the statistics of ghost batches: fixed-size groups
// of consecutive images, so an image's output does not depend on how the
// trainer splits a batch across workers and lanes. The training graph
// returns each ghost batch's mean and unbiased variance summed; the trainer
// reduces them like gradients and UpdateState moves the running statistics
// (State) toward their average by the layer's momentum, PyTorch's
// convention. Inference uses the running statistics, folded into one scale
// and shift.
//
// Classify pads each batch to a power of two up to 64 images, so at most
// seven graphs are ever compiled.
//
// # Inputs
//
// An image is H×W×C 8-bit, row-major (height, width, channel), of the
// plan's input. It is normalized by the plan's Normalization (the
// architecture file's, by default p/127.5 − 1, in [−1, 1]), and fed as
// NHWC [batch, H, W, C].
//
// # Weights file: model.safetensors
//
// The safetensors format (https://github.com/huggingface/safetensors):
//
//	8 bytes   little-endian uint64 N, the header length
//	N bytes   JSON object, padded with spaces to an 8-byte boundary:
//	            "__metadata__": {"architecture": "cnn", ...}   (the plan's name; strings only)
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
// A weights file holds exactly the plan's Params and State, named as the
// plan names them (all F32):
//
//	<conv>.weight      [k, k, in/groups, out]  kernel height, width, input and output channels (HWIO)
//	<conv>.bias        [out]
//	<fc>.weight        [in, out]               y = x·W + b (the transpose of PyTorch's Linear.weight)
//	<fc>.bias          [out]
//	<bn>.scale, .offset, .mean, .variance  [features]  the last two are State, not trained
//	<res>.proj.weight  [1, 1, in, out]         a residual block's projection, and its .bias
//
// A dense layer after flatten takes the feature map in (height, width,
// channel) order, not PyTorch's (channel, height, width). Checkpoints use
// the same container with more tensors (optimizer state, counters).
package model
