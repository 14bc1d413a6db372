package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/bench"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchPeerCmd) }

func newBenchPeerCmd(asJSON *bool) *cobra.Command {
	var cfg bench.PeerConfig
	var dir string
	cmd := &cobra.Command{
		Use:   "peer",
		Short: "Points/s the peer sink delivers over loopback (tablet and file mode) vs ingest alone and raw loopback TCP of the same bytes; tablet lag p50/p99 at half the ingest rate",
		Long: `Sender and receiver run in this process and talk Arrow Flight over 127.0.0.1. Each round
writes the points (100 devices, 1,000-row tablets, 5 DOUBLE measurements) into a region
(ingest alone, batch durability), then ships them from the start to a fresh receiver:

  peer-tablet   a hybrid pipe in stream mode: Arrow record batches, until the last ack
  peer-file     the same points flushed, shipped by a tsfile pipe as TsFile chunks

Each is compared with the ingest alone and with a raw TCP connection on 127.0.0.1 carrying
the bytes that mode put on the wire (discarded, and written to a file with the receiver's
fsync cadence). Then a live stream pipe runs while writes are paced at half the ingest-alone
rate, and again at a quarter of the tablet-mode delivery, and the lag from each write to the
receiver's region holding it is reported (p50, p99), with the cores the process used
meanwhile (on a shared machine, less than the machine's). Figures are medians over the
rounds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case cfg.Points <= 0:
				return fmt.Errorf("--points must be > 0")
			case cfg.Rounds <= 0 || cfg.Rounds > 100:
				return fmt.Errorf("--rounds must be in 1..100, got %d", cfg.Rounds)
			case cfg.LagDuration < 100*time.Millisecond || cfg.LagDuration > time.Hour:
				return fmt.Errorf("--lag-duration must be in 100ms..1h, got %s", cfg.LagDuration)
			}
			switch cfg.Compressor {
			case "none", "lz4", "zstd":
			default:
				return fmt.Errorf("--compressor must be none, lz4 or zstd, got %q", cfg.Compressor)
			}
			return runBench(cmd, dir, *asJSON, func(tmp string) ([]bench.Result, error) {
				cfg.Dir = tmp
				cfg.Progress = benchProgress(cmd)
				return bench.Peer(cfg)
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&cfg.Points, "points", 5_000_000, "points to ship in each mode")
	f.IntVar(&cfg.Rounds, "rounds", 3, "rounds (figures are medians)")
	f.StringVar(&cfg.Compressor, "compressor", "none", "the sink's compressor: none|lz4|zstd")
	f.DurationVar(&cfg.LagDuration, "lag-duration", 3*time.Second, "how long the lag phase writes")
	f.StringVar(&dir, "dir", "", "scratch directory (default: a temporary one)")
	return cmd
}
