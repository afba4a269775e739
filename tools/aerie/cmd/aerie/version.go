package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aerie-ml/aerie/internal/buildinfo"
)

func versionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version aerie was built from",
		Args:  cobra.NoArgs,
		RunE: e.do(func(context.Context, []string) error {
			_, err := fmt.Fprintln(e.stdout, "aerie", buildinfo.Read())
			return err
		}),
	}
}
