// Package arch reads model architectures declared as data: a YAML file in
// Git (models/<name>.yaml, named by a TrainingRun's
// spec.model.architecture) or a layer list given inline. Parse reads a file
// strictly and reports problems as file:line: field: message; Plan applies
// the layers to a dataset's image shape and class count and computes every
// layer's output shape, its parameters (names, shapes and initialization,
// in the order a model builder creates them), its forward FLOPs and the
// activation bytes training keeps for the backward pass.
//
// An architecture file:
//
//	apiVersion: aerie.dev/v1alpha1
//	kind: Architecture
//	metadata:
//	  name: tiny            # the file's name without .yaml
//	layers:
//	  - conv: {filters: 16, kernel: 3, stride: 1, padding: same}
//	  - batchnorm
//	  - relu
//	  - residual:           # output = branch(x) + x, or + a 1×1 projection of x
//	      layers:
//	        - conv: {filters: 32, stride: 2, bias: false}
//	        - batchnorm
//	  - relu
//	  - globalavgpool
//	  - dropout: {rate: 0.2}
//	  - dense: {units: classes}
//
// README.md describes every layer and field, the cost conventions and the
// figures of the files in models/.
package arch
