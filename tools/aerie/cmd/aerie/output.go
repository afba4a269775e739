package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// outputFormat is --output: how a command prints data.
type outputFormat string

var outputFormats = []string{"table", "json", "yaml"}

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }
func (o *outputFormat) Set(s string) error {
	for _, f := range outputFormats {
		if s == f {
			*o = outputFormat(s)
			return nil
		}
	}
	return fmt.Errorf("want table, json or yaml, got %q", s)
}

// addOutput adds -o/--output to c, with completion of its values.
func addOutput(c *cobra.Command) *outputFormat {
	o := outputFormat("table")
	c.Flags().VarP(&o, "output", "o", "output `format`: table, json or yaml")
	c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
	return &o
}

// print writes data as the format asks; table writes the table form
// through a tabwriter.
func (o outputFormat) print(w io.Writer, data any, table func(w io.Writer)) error {
	switch o {
	case "json":
		b, err := json.MarshalIndent(data, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(data)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}
