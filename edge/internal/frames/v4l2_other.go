//go:build !(linux && (arm64 || amd64))

package frames

import (
	"context"
	"errors"
)

// V4L2 is only implemented for 64-bit Linux.
type V4L2 struct{}

// OpenV4L2 reports that V4L2 capture is not built for this platform.
func OpenV4L2(dev string, width, height int) (*V4L2, error) {
	return nil, errors.New("v4l2 capture is implemented for linux/arm64 and linux/amd64 only")
}

// Next is never reached.
func (v *V4L2) Next(ctx context.Context) (Frame, error) { return Frame{}, errors.ErrUnsupported }

// Close does nothing.
func (v *V4L2) Close() error { return nil }
