//go:build !unix

package sysstat

import (
	"errors"
	"time"
)

func rusage() (time.Duration, int64, error) {
	return 0, 0, errors.ErrUnsupported
}
