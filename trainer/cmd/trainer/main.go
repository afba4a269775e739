// Command trainer trains aerie's models.
//
//	trainer train --run=/etc/aerie/run/run.yaml [overrides]
//	trainer train --arch=cnn --epochs=30 --data=DIR --output=file:///tmp/out ...
//
// Exit codes follow internal/exitcode: 2 for bad configuration, 3 for bad
// data, 143 when interrupted, 130/131 for lost peers and storage outages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "trainer:", err)
	}
	os.Exit(exitcode.Of(err))
}
