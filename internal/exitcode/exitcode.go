// Package exitcode is the exit-code convention shared by the trainer and by
// the PyTorchJob that aerie run render writes with restartPolicy ExitCode.
//
// The Kubeflow training operator restarts a replica whose exit code is 128 or
// above and fails the job for codes 1 to 127. The trainer therefore exits:
//
//	0        success
//	1–127    permanent: retrying cannot help (bad configuration, bad data)
//	128–255  retryable: the same command may succeed later (a lost peer,
//	         preemption, an unavailable store)
package exitcode

import (
	"context"
	"errors"
	"fmt"
)

// Permanent codes.
const (
	OK       = 0
	Internal = 1 // an unexpected error
	Config   = 2 // bad flags, run declaration or environment
	Data     = 3 // bad or mismatching dataset
)

// Retryable codes.
const (
	PeerLost    = 130 // a distributed-training peer died, stalled or closed its connection
	StorageDown = 131 // the store failed transiently
	Interrupted = 143 // SIGTERM, as sent on preemption (128 + 15)
)

// Retryable reports whether the operator should restart a replica that
// exited with code.
func Retryable(code int) bool { return code >= 128 }

// Error carries the exit code a command should end with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap attaches code to err; it returns nil when err is nil.
func Wrap(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Errorf formats an error that carries code.
func Errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Of returns the exit code for err: 0 for nil, the code of the outermost
// *Error in its chain, Interrupted for a cancelled context, else Internal.
func Of(err error) int {
	if err == nil {
		return OK
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	if errors.Is(err, context.Canceled) {
		return Interrupted
	}
	return Internal
}
