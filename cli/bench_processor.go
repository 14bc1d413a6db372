package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/bench"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchProcessorCmd) }

func newBenchProcessorCmd(asJSON *bool) *cobra.Command {
	var points int64
	var rounds int
	var dir string
	var only []string
	cmd := &cobra.Command{
		Use:   "processor",
		Short: "Points/s through each built-in processor in a pipe, vs a do-nothing pipe in the same run",
		Long: `Writes the demo workload (100 devices; temp, pressure, count, state, ok; 1,000-row tablets)
into a region held in memory, then for each processor drains it from the start through a
wal → processor → do-nothing pipe. The baseline is the same pipe with the do-nothing
processor, run before and after each case in each round (a case's ratio in a round is
against the mean of the two runs around it); the figures are medians over the rounds:

  pipe_points_per_second    the whole pipe with the processor (the ratio is the cost of the
                            processor in a pipe)
  alone_points_per_second   the processor alone (Process in a loop on the same tablets, no
                            runtime), against the same baseline: above 1, the processor is
                            not what limits the pipe

The cases: ` + caseNames() + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if points <= 0 {
				return fmt.Errorf("--points must be > 0")
			}
			if rounds <= 0 || rounds > 100 {
				return fmt.Errorf("--rounds must be in 1..100, got %d", rounds)
			}
			cases := bench.DefaultProcessorCases
			if len(only) > 0 {
				cases = []bench.ProcessorCase{cases[0]} // the baseline (a new slice: appending must not write into the defaults)
				for _, name := range only {
					found := false
					for _, c := range bench.DefaultProcessorCases[1:] {
						if c.Name == name {
							cases, found = append(cases, c), true
						}
					}
					if !found {
						return fmt.Errorf("--only: unknown case %q (known: %s)", name, caseNames())
					}
				}
			}
			return runBench(cmd, dir, *asJSON, func(tmp string) ([]bench.Result, error) {
				return bench.Processor(bench.ProcessorConfig{Dir: tmp, Points: points, Cases: cases, Rounds: rounds, Progress: benchProgress(cmd)})
			})
		},
	}
	cmd.Flags().Int64Var(&points, "points", 10_000_000, "points to write and drain through each processor")
	cmd.Flags().IntVar(&rounds, "rounds", 5, "rounds (figures are medians)")
	cmd.Flags().StringVar(&dir, "dir", "", "scratch directory (default: a temporary one)")
	cmd.Flags().StringSliceVar(&only, "only", nil, "measure only these cases (besides the do-nothing baseline)")
	return cmd
}

func caseNames() string {
	s := ""
	for i, c := range bench.DefaultProcessorCases {
		if i > 0 {
			s += ", "
		}
		s += c.Name
	}
	return s
}
