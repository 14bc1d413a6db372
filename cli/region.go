package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/node/api"
)

func init() { register(newRegionCmd) }

func newRegionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "region", Short: "Move a region's leadership or change its replicas on a running cluster; recover a region directory"}
	var repair, asJSON bool
	recover := &cobra.Command{
		Use:   "recover DIR",
		Short: "Open a region directory (recovering its WAL and checking its files), report, and close it",
		Long: `Open a region as a node would: verify the manifest and every TsFile, truncate a torn WAL
tail, replay the WAL and flush what it held. A corrupt WAL entry in the middle, or a corrupt
TsFile, refuses to open; --repair keeps everything before the damage (the WAL is cut there,
bad TsFiles are moved to corrupt/) and logs what it dropped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := engine.Open(engine.Options{Dir: args[0], Repair: repair, FlushAge: -1})
			if err != nil {
				return err
			}
			ferr := r.Flush()
			st := r.Stats()
			d, derr := r.Digest()
			cerr := r.Close()
			for _, e := range []error{ferr, derr, cerr} {
				if e != nil {
					return e
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"dir": args[0], "stats": st, "digest": d})
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "region\t%s\n", args[0])
			fmt.Fprintf(tw, "files\t%d (%s)\n", st.Files, humanBytes(st.FileBytes))
			fmt.Fprintf(tw, "last index\t%d\n", st.LastIndex)
			fmt.Fprintf(tw, "flushed index\t%d\n", st.FlushedIndex)
			fmt.Fprintf(tw, "points\t%d\n", d.Points)
			fmt.Fprintf(tw, "digest\t%s\n", d.Hash)
			return tw.Flush()
		},
	}
	recover.Flags().BoolVar(&repair, "repair", false, "drop a corrupt WAL middle (keeping what precedes it) and set aside corrupt TsFiles")
	recover.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(recover, newRegionLeaderCmd(), newRegionReplicasCmd())
	return cmd
}

func newRegionLeaderCmd() *cobra.Command {
	var to uint32
	var timeout time.Duration
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "leader REGION --node ID",
		Short: "Move the leadership of a region (root.demo/1) to another of its replicas",
		Long: `Ask the region's leader (through any node) to hand the region to node ID, one of its
replicas. The old leader stops taking the region's writes, waits until its replication
pipes have drained (every follower has everything, within --timeout), closes them, and the
new leader opens its own; writes that arrived meanwhile go on to the new leader. A follower
that is down makes the move fail: the region stays where it was.`,
		Example: `  pipectl region leader root.demo/1 --node 3 --server http://127.0.0.1:7170`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == 0 {
				return fmt.Errorf("--node: the id of the new leader is required")
			}
			ch, err := cf.client().MoveLeader(cmd.Context(), args[0], to, timeout)
			if err != nil {
				return err
			}
			return printRegionChange(cmd, cf, ch)
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().Uint32Var(&to, "node", 0, "the id of the new leader (one of the region's replicas)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long the followers may take to drain")
	return cmd
}

func newRegionReplicasCmd() *cobra.Command {
	var add, remove uint32
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "replicas REGION (--add ID | --remove ID)",
		Short: "Add a node to a region's replicas, or remove one",
		Long: `--add ID: the region's leader starts a pipe to node ID, which ships the history as files
and then realtime, as the protocol does. --remove ID: the leader drops that node's pipe and
its WAL pins; the node keeps its copy on disk, which reads no longer use. The leader cannot
be removed: move the leadership first.`,
		Example: `  pipectl region replicas root.demo/1 --add 3
  pipectl region replicas root.demo/1 --remove 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (add == 0) == (remove == 0) {
				return fmt.Errorf("give one of --add ID and --remove ID")
			}
			ch, err := cf.client().ChangeReplicas(cmd.Context(), args[0], add, remove)
			if err != nil {
				return err
			}
			return printRegionChange(cmd, cf, ch)
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().Uint32Var(&add, "add", 0, "a node to add to the replicas")
	cmd.Flags().Uint32Var(&remove, "remove", 0, "a node to remove from the replicas")
	return cmd
}

func printRegionChange(cmd *cobra.Command, cf *clientFlags, ch api.RegionChange) error {
	out := cmd.OutOrStdout()
	if cf.asJSON {
		return printJSON(out, ch)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\tleader\treplicas\tterm\n")
	fmt.Fprintf(tw, "before\tnode %d\t%v\t%d\n", ch.Before.Leader, ch.Before.Replicas, ch.Before.Term)
	fmt.Fprintf(tw, "after\tnode %d\t%v\t%d\n", ch.After.Leader, ch.After.Replicas, ch.After.Term)
	if err := tw.Flush(); err != nil {
		return err
	}
	if ch.Before.Term == ch.After.Term {
		fmt.Fprintf(out, "%s: nothing to change\n", ch.Region)
	}
	if ch.WritesPausedMS > 0 {
		fmt.Fprintf(out, "%s: writes waited %.1f ms while the followers drained\n", ch.Region, ch.WritesPausedMS)
	}
	for _, m := range ch.Missed {
		fmt.Fprintf(out, "not told (it learns the change when it starts): %s\n", m)
	}
	return nil
}
