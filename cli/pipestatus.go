package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/weir-dev/weir/pipe"
)

// printPipeTable prints pipes as a table: one row per pipe and region (in a cluster's
// merged view, with the node that runs the region's task).
func printPipeTable(w io.Writer, sts []pipe.Status) {
	nodes := false
	for _, s := range sts {
		for _, r := range s.Regions {
			nodes = nodes || r.Node != 0
		}
	}
	node := func(r pipe.RegionStatus) string {
		if !nodes {
			return ""
		}
		if r.Node == 0 {
			return "-\t"
		}
		return fmt.Sprintf("%d\t", r.Node)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "NAME\tSTATE\tREGION\t"
	if nodes {
		head += "NODE\t"
	}
	fmt.Fprintln(tw, head+"SOURCE\tSINK\tCARRIER\tSWITCHES\tCOMMITTED\tLAG EVENTS\tLAG S\tEVENTS/S\tPINNED WAL\tLAST ERROR")
	for _, s := range sts {
		if len(s.Regions) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s%s\t%s\t-\t%d\t%d\t%d\t%.1f\t%.0f\t%s\t%s\n", s.Name, s.State, node(pipe.RegionStatus{}), s.Source, s.Sink, s.Switches, s.CommittedEvents, s.LagEvents, s.LagSeconds, s.EventsPerSec, humanBytes(s.PinnedWALBytes), short(s.LastError))
			continue
		}
		for _, r := range s.Regions {
			state := string(s.State)
			if r.Phase == pipe.PhaseFailed {
				state += " (FAILED)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\t%s\t%s\t%d\t%d\t%d\t%.1f\t%.0f\t%s\t%s\n", s.Name, state, r.Region, node(r), s.Source, s.Sink, r.Carrier, r.Switches, r.CommittedEvents, r.LagEvents, r.LagSeconds, r.EventsPerSec, humanBytes(r.PinnedWALBytes), short(r.LastError))
		}
	}
	tw.Flush()
}

// printPipeSummary prints pipes as a table: one row per pipe, its regions aggregated
// (lag events summed, lag seconds the largest, the carriers its regions use).
func printPipeSummary(w io.Writer, sts []pipe.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSOURCE\tSINK\tCARRIER\tLAG EVENTS\tLAG S\tEVENTS/S\tLAST ERROR")
	for _, s := range sts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%.1f\t%.0f\t%s\n", s.Name, stateText(s), s.Source, s.Sink, carriers(s), s.LagEvents, s.LagSeconds, s.EventsPerSec, short(s.LastError))
	}
	tw.Flush()
}

// stateText is a pipe's state in a summary row, with how many of its regions' tasks failed
// for good, if any: they stay failed until the pipe is stopped and started.
func stateText(s pipe.Status) string {
	failed := 0
	for _, r := range s.Regions {
		if r.Phase == pipe.PhaseFailed {
			failed++
		}
	}
	if failed == 0 {
		return string(s.State)
	}
	return fmt.Sprintf("%s (%d/%d FAILED)", s.State, failed, len(s.Regions))
}

// carriers names the carriers a pipe's regions ship with ("tablet", "tablet+tsfile"), or "-".
func carriers(s pipe.Status) string {
	set := map[string]bool{}
	for _, r := range s.Regions {
		if r.Carrier != "" {
			set[r.Carrier] = true
		}
	}
	if len(set) == 0 {
		return "-"
	}
	cs := make([]string, 0, len(set))
	for c := range set {
		cs = append(cs, c)
	}
	sort.Strings(cs)
	return strings.Join(cs, "+")
}

func short(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	if s == "" {
		return "-"
	}
	return s
}
