package exitcode

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, OK},
		{"plain", errors.New("boom"), Internal},
		{"config", Errorf(Config, "bad flag"), Config},
		{"wrapped twice", fmt.Errorf("run: %w", Wrap(PeerLost, errors.New("rank 2 closed"))), PeerLost},
		{"outermost wins", Wrap(Data, Wrap(StorageDown, errors.New("x"))), Data},
		{"cancelled", fmt.Errorf("train: %w", context.Canceled), Interrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err); got != tt.want {
				t.Errorf("Of(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for code, want := range map[int]bool{OK: false, Internal: false, Config: false, Data: false, 127: false,
		PeerLost: true, StorageDown: true, Interrupted: true, 255: true} {
		if got := Retryable(code); got != want {
			t.Errorf("Retryable(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestWrapNil(t *testing.T) {
	if err := Wrap(Config, nil); err != nil {
		t.Errorf("Wrap(Config, nil) = %v, want nil", err)
	}
}
