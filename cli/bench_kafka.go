package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/bench"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchKafkaCmd) }

func newBenchKafkaCmd(asJSON *bool) *cobra.Command {
	var cfg bench.KafkaConfig
	var dir string
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "Points/s and MB/s of the kafka sink (at-least-once, exactly-once) vs a raw franz-go producer of the same records",
		Long: `Exports the demo workload (100 devices, 5 measurements of mixed types) to an in-process
broker (kfake) and compares, in each round, with a raw franz-go producer sending the very
records the sink encodes (topic, key, headers, value) to the same broker with the same
producer options; the figures are medians over the rounds, and a ratio is the median of
the rounds' ratios (both sides of a round run back to back, so a slow spell of a shared
machine weighs on both):

  kafka-sink-at-least-once   the sink fed the tablets as events, --batch per send (SendAsync,
                             as a pipe's task does, until every event is acknowledged), vs a
                             raw idempotent producer producing every record, then one flush
  kafka-sink-exactly-once    the same with one transaction per send (records + progress), vs a
                             raw transactional producer committing the same records per transaction
  kafka-pipe-*  (--pipe)     a wal → kafka pipe draining a region holding the rows

The broker discards what it acknowledges unless --store, so that its storage is out of
both sides' figures. MB/s counts key and value bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case cfg.Points <= 0:
				return fmt.Errorf("--points must be > 0")
			case cfg.Rounds <= 0 || cfg.Rounds > 100:
				return fmt.Errorf("--rounds must be in 1..100, got %d", cfg.Rounds)
			case cfg.RowsPerTablet <= 0 || cfg.RowsPerTablet > 1_000_000:
				return fmt.Errorf("--rows must be in 1..1000000, got %d", cfg.RowsPerTablet)
			case cfg.BatchEvents <= 0 || cfg.BatchEvents > 1_000_000:
				return fmt.Errorf("--batch must be in 1..1000000, got %d", cfg.BatchEvents)
			case cfg.Format != "json" && cfg.Format != "arrow":
				return fmt.Errorf("--format must be json or arrow, got %q", cfg.Format)
			}
			switch cfg.Compression {
			case "none", "gzip", "snappy", "lz4", "zstd":
			default:
				return fmt.Errorf("--compression must be none, gzip, snappy, lz4 or zstd, got %q", cfg.Compression)
			}
			return runBench(cmd, dir, *asJSON, func(tmp string) ([]bench.Result, error) {
				cfg.Dir = tmp
				cfg.Progress = benchProgress(cmd)
				return bench.Kafka(cfg)
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&cfg.Points, "points", 5_000_000, "points to export")
	f.IntVar(&cfg.RowsPerTablet, "rows", 100, "rows per event (with json, the records of one event)")
	f.IntVar(&cfg.BatchEvents, "batch", 256, "events per send (the pipe's batch.max-events; with exactly-once, per transaction)")
	f.StringVar(&cfg.Format, "format", "json", "json|arrow")
	f.StringVar(&cfg.Compression, "compression", "none", "none|gzip|snappy|lz4|zstd")
	f.IntVar(&cfg.Rounds, "rounds", 5, "rounds (figures are medians; a ratio is the median of the rounds' ratios)")
	f.BoolVar(&cfg.Store, "store", false, "keep the records in the broker (default: acknowledge and discard)")
	f.BoolVar(&cfg.Pipe, "pipe", false, "also measure whole wal → kafka pipes")
	f.StringVar(&dir, "dir", "", "scratch directory for --pipe (default: a temporary one)")
	return cmd
}
