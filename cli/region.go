package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/engine"
)

func init() { register(newRegionCmd) }

func newRegionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "region", Short: "Offline tools for a region directory"}
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
	cmd.AddCommand(recover)
	return cmd
}
