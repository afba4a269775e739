package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/fleet"
)

func fleetCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "fleet",
		Short: "Show what a fleet's devices run",
	}
	group(c)
	var storeURI string
	var out *outputFormat
	status := &cobra.Command{
		Use:   "status FLEET --store URI",
		Short: "Per device: the version it runs, its conditions and when it was last seen",
		Long: `Status joins the fleet's pins (fleets/<fleet>.yaml) with the status
documents its devices upload (status/devices/<id>.json under --store, the
agents' store.statusURI): per device the version it runs against the one
the pins want, its Ready condition and when it last reconciled, then the
rollout's progress.`,
		Example:           "  aerie fleet status quadcopters --store gs://aerie-models\n  aerie fleet status demo --store file:///var/lib/aerie -o yaml",
		Args:              exactArgs("FLEET"),
		ValidArgsFunction: e.completeFleets,
		RunE: e.do(func(ctx context.Context, args []string) error {
			root, err := e.root()
			if err != nil {
				return err
			}
			p, err := fleet.ReadPins(root, args[0])
			if err != nil {
				return err
			}
			s, err := store.Open(ctx, storeURI)
			if err != nil {
				return err
			}
			defer s.Close()
			r, err := fleet.Status(ctx, p, s)
			if err != nil {
				return err
			}
			return out.print(e.stdout, r, func(w io.Writer) { writeFleet(w, r, e.now()) })
		}),
	}
	out = addOutput(status)
	status.Flags().StringVar(&storeURI, "store", "", "store root `URI` the devices upload status to (their store.statusURI)")
	status.MarkFlagRequired("store")
	c.AddCommand(status)
	return c
}

func writeFleet(w io.Writer, r *fleet.Report, now time.Time) {
	pin := func(p fleet.Pin) string {
		if p.Placeholder {
			return "none yet (placeholder)"
		}
		return p.Run + "/" + p.Version
	}
	fmt.Fprintf(w, "Fleet:\t%s\n", r.Fleet)
	fmt.Fprintf(w, "Stable:\t%s\n", pin(r.Stable))
	if r.Canary != nil {
		fmt.Fprintf(w, "Canary:\t%s for %d%% (%d of %d devices)\n", pin(*r.Canary), r.Canary.Percent, r.Rollout.WantCanary, r.Rollout.Total)
	}
	ro := r.Rollout
	fmt.Fprintf(w, "Rollout:\t%d on stable, %d on canary, %d on neither; %d of %d run their pin and are Ready\n\n", ro.OnStable, ro.OnCanary, ro.Other, ro.Converged, ro.Total)
	fmt.Fprintln(w, "DEVICE\tVERSION\tTRACK\tWANTS\tREADY\tREASON\tLAST SEEN")
	for _, d := range r.Devices {
		seen := "never"
		if d.LastSeen != nil {
			seen = duration.HumanDuration(now.Sub(*d.LastSeen)) + " ago"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, orDash(d.Version), d.Track, d.Wants, d.Ready, orDash(d.Reason), seen)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// completeFleets completes fleet names from fleets.
func (e *env) completeFleets(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	root, err := e.root()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names, _ := fleet.Fleets(root)
	return names, cobra.ShellCompDirectiveNoFileComp
}
