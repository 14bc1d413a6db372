package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/bench"
	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/gctune"
	"github.com/weir-dev/weir/tsfile"
)

func init() { register(newBenchCmd) }

// benchSubcommands are added to `pipectl bench`; each gets the --json flag's value.
var benchSubcommands []func(asJSON *bool) *cobra.Command

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Weir against raw baselines run on the same machine in the same run",
	}
	var asJSON bool
	var cpuprofile string
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print one JSON object per result line")
	cmd.PersistentFlags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file")
	cmd.PersistentFlags().Bool("quiet", false, "no progress lines on stderr")
	var profFile *os.File
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if gc := gctune.Applied(); gc.PercentFrom != "" {
			if tell := benchProgress(cmd); tell != nil {
				tell("collector " + gc.String()) // the figures depend on it
			}
		}
		if cpuprofile == "" {
			return nil
		}
		f, err := os.Create(cpuprofile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		profFile = f
		return pprof.StartCPUProfile(f)
	}
	cmd.PersistentPostRun = func(*cobra.Command, []string) {
		if profFile != nil {
			pprof.StopCPUProfile()
			profFile.Close()
		}
	}

	var points int64
	var writers int
	var durability, dir string
	ingest := &cobra.Command{
		Use:   "ingest",
		Short: "Points/s through Region.Write (1,000-row tablets, 5 measurements) vs raw appends of the same bytes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := parseDurability(durability)
			if err != nil {
				return err
			}
			if points <= 0 {
				return fmt.Errorf("--points must be > 0")
			}
			if writers <= 0 || writers > 1024 {
				return fmt.Errorf("--writers must be in 1..1024, got %d", writers)
			}
			return runBench(cmd, dir, asJSON, func(tmp string) ([]bench.Result, error) {
				prog := newProgress(cmd.ErrOrStderr(), 3*points, "ingest "+durability+" (3 rounds)")
				res, err := bench.Ingest(bench.IngestConfig{Dir: tmp, Points: points, Durability: d, Writers: writers, Progress: prog.add})
				prog.finish()
				return res, err
			})
		},
	}
	ingest.Flags().Int64Var(&points, "points", 10_000_000, "points to write")
	ingest.Flags().StringVar(&durability, "durability", "batch", "WAL durability: sync|batch|async")
	ingest.Flags().IntVar(&writers, "writers", 4, "concurrent writers (they share the WAL's group commit)")
	ingest.Flags().StringVar(&dir, "dir", "", "scratch directory (default: a temporary one)")

	var fpoints int64
	var comp, fdir string
	flush := &cobra.Command{
		Use:   "flush",
		Short: "Points/s of a memtable flush vs a raw Arrow IPC write of the same records; TsFile scan vs raw IPC read",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := tsfile.ParseCompression(comp)
			if err != nil {
				return fmt.Errorf("--compression: %w", err)
			}
			if fpoints <= 0 {
				return fmt.Errorf("--points must be > 0")
			}
			return runBench(cmd, fdir, asJSON, func(tmp string) ([]bench.Result, error) {
				return bench.Flush(bench.FlushConfig{Dir: tmp, Points: fpoints, Compression: c})
			})
		},
	}
	flush.Flags().Int64Var(&fpoints, "points", 5_000_000, "points in the memtable to flush")
	flush.Flags().StringVar(&comp, "compression", "lz4", "zstd|lz4|none")
	flush.Flags().StringVar(&fdir, "dir", "", "scratch directory (default: a temporary one)")
	var ppoints int64
	var pdir string
	pipeCmd := &cobra.Command{
		Use:   "pipe",
		Short: "Ingest rate with a do-nothing pipe (wal, tsfile, hybrid) running, and each pipe's drain rate, vs ingest alone",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ppoints <= 0 {
				return fmt.Errorf("--points must be > 0")
			}
			return runBench(cmd, pdir, asJSON, func(tmp string) ([]bench.Result, error) {
				return bench.Pipe(bench.PipeConfig{Dir: tmp, Points: ppoints, Progress: benchProgress(cmd)})
			})
		},
	}
	pipeCmd.Flags().Int64Var(&ppoints, "points", 10_000_000, "points to write")
	pipeCmd.Flags().StringVar(&pdir, "dir", "", "scratch directory (default: a temporary one)")
	cmd.AddCommand(ingest, flush, pipeCmd)
	for _, f := range benchSubcommands {
		cmd.AddCommand(f(&asJSON))
	}
	return cmd
}

func benchDir(dir string) (string, func(), error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, err
		}
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "weir-bench-")
	if err != nil {
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// benchProgress returns the progress lines of a benchmark command on stderr ("bench
// NAME: phase"), or nil with --quiet.
func benchProgress(cmd *cobra.Command) func(phase string) {
	if quiet, _ := cmd.Flags().GetBool("quiet"); quiet {
		return nil
	}
	return func(phase string) { fmt.Fprintf(cmd.ErrOrStderr(), "bench %s: %s\n", cmd.Name(), phase) }
}

// runBench runs a benchmark in a scratch directory (dir, or a temporary one removed
// afterwards) and prints its results as a table, or JSON lines.
func runBench(cmd *cobra.Command, dir string, asJSON bool, run func(dir string) ([]bench.Result, error)) error {
	tmp, cleanup, err := benchDir(dir)
	if err != nil {
		return err
	}
	defer cleanup()
	res, err := run(tmp)
	if err != nil {
		return err
	}
	return printResults(cmd.OutOrStdout(), res, asJSON)
}

func printResults(w io.Writer, res []bench.Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range res {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCH\tMETRIC\tVALUE\tBASELINE\tBASELINE VALUE\tRATIO")
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\t%.4g %s\t%s\t%.4g\t%.2f\n", r.Bench, r.Metric, r.Value, r.Unit, r.Baseline, r.BaselineValue, r.Ratio)
	}
	return tw.Flush()
}

func init() { benchSubcommands = append(benchSubcommands, newBenchReplicateCmd) }

func newBenchReplicateCmd(asJSON *bool) *cobra.Command {
	var points int64
	var replicas, rounds int
	var paced float64
	var proto, dir string
	cmd := &cobra.Command{
		Use:   "replicate",
		Short: "Leader ingest with replicas kept by a consensus protocol, vs simple in the same run; lag, CPU, bytes per carrier",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if points <= 0 {
				return fmt.Errorf("--points must be > 0")
			}
			if replicas < 2 || replicas > 9 {
				return fmt.Errorf("--replicas must be in 2..9, got %d", replicas)
			}
			if rounds < 1 || rounds > 15 {
				return fmt.Errorf("--rounds must be in 1..15, got %d", rounds)
			}
			if paced < 0 || paced >= 1 {
				return fmt.Errorf("--paced must be in [0, 1) (a fraction of simple's ingest; 0: no paced rounds), got %g", paced)
			}
			protos := consensus.Protocols
			if proto != "all" {
				if _, err := consensus.New(proto, consensus.Options{}); err != nil {
					return fmt.Errorf("--consensus: %w", err)
				}
				protos = []string{proto}
			}
			return runBench(cmd, dir, *asJSON, func(tmp string) ([]bench.Result, error) {
				return bench.Replicate(bench.ReplicateConfig{Dir: tmp, Points: points, Protocols: protos, Replicas: replicas, Rounds: rounds, PacedFraction: paced,
					Progress: benchProgress(cmd)})
			})
		},
	}
	cmd.Flags().Int64Var(&points, "points", 10_000_000, "points to write")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds of every protocol, taking turns (figures are medians)")
	cmd.Flags().Float64Var(&paced, "paced", 0.1, "also run each protocol with the load paced at this fraction of simple's ingest, for the lag of followers that keep up (0: no)")
	cmd.Flags().IntVar(&replicas, "replicas", 3, "replicas (leader included)")
	cmd.Flags().StringVar(&proto, "consensus", "all", "protocol: simple|iot|fast|iotv2|all")
	cmd.Flags().StringVar(&dir, "dir", "", "scratch directory (default: a temporary one)")
	return cmd
}
