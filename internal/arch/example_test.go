package arch_test

import (
	"fmt"

	"github.com/aerie-ml/aerie/internal/arch"
)

func ExampleSpec_Plan() {
	data := []byte(`apiVersion: aerie.dev/v1alpha1
kind: Architecture
metadata:
  name: tiny
layers:
  - conv: {filters: 16, kernel: 3, stride: 1, padding: same}
  - batchnorm
  - relu
  - residual:
      layers:
        - conv: {filters: 32, stride: 2, bias: false}
        - batchnorm
  - relu
  - globalavgpool
  - dropout: {rate: 0.2}
  - dense: {units: classes}
`)
	spec, err := arch.Parse("models/tiny.yaml", data)
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := spec.Plan(arch.Input{H: 28, W: 28, C: 1}, 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(plan)
	for _, p := range plan.Params {
		fmt.Println(p.Name, p.Shape)
	}
	// Output:
	// tiny on 28×28×1, 10 classes, input normalized by mean [0.5] std [0.5]
	// line  layer                         output  params      FLOPs  activation KiB
	//       input                        28×28×1       0          0             3.1
	//    6  conv1 conv 3×3 16           28×28×16     160    238,336            76.6
	//    7  bn1 batchnorm               28×28×16      32     25,088            98.0
	//    8  relu                        28×28×16       0     12,544            49.0
	//    9  res1 residual + proj 1×1/2  14×14×32     544    213,248            61.2
	//   11    conv2 conv 3×3/2 32       14×14×32   4,608  1,806,336           134.8
	//   12    bn2 batchnorm             14×14×32      64     12,544            49.0
	//   13  relu                        14×14×32       0      6,272            24.5
	//   14  globalavgpool                     32       0      6,272             0.1
	//   15  dropout 0.2                       32       0          0             0.1
	//   16  fc1 dense classes                 10     330        650             0.0
	//       total                             10   5,738  2,321,290           496.4
	// conv1.weight [3 3 1 16]
	// conv1.bias [16]
	// bn1.scale [16]
	// bn1.offset [16]
	// conv2.weight [3 3 16 32]
	// bn2.scale [32]
	// bn2.offset [32]
	// res1.proj.weight [1 1 16 32]
	// res1.proj.bias [32]
	// fc1.weight [32 10]
	// fc1.bias [10]
}
