package data

// Mean and Std are the normalization of every channel of a batch:
// x = (p/255 - Mean) / Std, which maps pixels to [-1, 1]. A model version
// records them so that devices feed the model what training did.
const (
	Mean = 0.5
	Std  = 0.5
)
