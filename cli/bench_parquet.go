package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/bench"
	parquetsink "github.com/weir-dev/weir/pipe/connector/parquet"
)

func init() {
	benchSubcommands = append(benchSubcommands, func(*bool) *cobra.Command { return newBenchParquetCmd() })
}

func newBenchParquetCmd() *cobra.Command {
	var points int64
	var comp, dir string
	var rounds int
	cmd := &cobra.Command{
		Use:   "parquet",
		Short: "Points/s and MB/s of the parquet sink, alone and in a wal → parquet pipe, vs a raw parquet-go write of the same rows",
		Long: `Writes the demo workload (100 devices, 5 measurements of mixed types, 1,000-row tablets)
three ways in each round, and reports medians over the rounds:

  raw            parquet-go's GenericWriter of a struct with the sink's schema, rows built
                 beforehand, the same compression and row-group size, one file, fsynced (the baseline)
  parquet-sink   the sink fed the tablets as events, 256 per batch, until every file is finished
  parquet-pipe   a wal → parquet pipe draining the tablets from a region until all is committed

MB/s counts the rows' Arrow size; bytes_per_point is the Parquet output's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if points <= 0 {
				return fmt.Errorf("--points must be > 0")
			}
			if rounds <= 0 || rounds > 100 {
				return fmt.Errorf("--rounds must be in 1..100, got %d", rounds)
			}
			if _, err := parquetsink.Codec(comp); err != nil {
				return fmt.Errorf("--compression: %w", err)
			}
			asJSON, err := cmd.Flags().GetBool("json")
			if err != nil {
				return err
			}
			return runBench(cmd, dir, asJSON, func(tmp string) ([]bench.Result, error) {
				return bench.Parquet(bench.ParquetConfig{Dir: tmp, Points: points, Compression: comp, Rounds: rounds, Progress: benchProgress(cmd)})
			})
		},
	}
	cmd.Flags().Int64Var(&points, "points", 10_000_000, "points to export")
	cmd.Flags().StringVar(&comp, "compression", "zstd", "zstd|snappy|none")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds (figures are medians)")
	cmd.Flags().StringVar(&dir, "dir", "", "scratch directory (default: a temporary one)")
	return cmd
}
