package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/pipe/connector/kafka/kafkaserve"
)

func init() { register(newKafkaCmd) }

func newKafkaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "Kafka tools: an embedded broker to export to",
	}
	var o kafkaserve.Options
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run an embedded Kafka broker (franz-go's kfake) until interrupted",
		Long: `Runs a one-broker Kafka cluster in this process, so that a kafka sink works on a laptop
with nothing installed. Standard Kafka clients produce to and consume from it, with
transactions and read_committed; producers may create topics. With --data the broker
keeps its topics, offsets and transactions in DIR and reloads them when started again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Partitions < 1 || o.Partitions > 10_000 {
				return fmt.Errorf("--partitions must be in 1..10000, got %d", o.Partitions)
			}
			if o.DataDir != "" {
				if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
					return fmt.Errorf("--data: %w", err)
				}
			}
			ctx, stopSignals := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stopSignals()
			return serveKafka(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := serve.Flags()
	f.StringVar(&o.Listen, "listen", kafkaserve.DefaultListen, "host:port to listen on (port 0 picks one); clients must reach this host")
	f.StringVar(&o.DataDir, "data", "", "directory that keeps the broker's data across restarts (default: in memory)")
	f.IntVar(&o.Partitions, "partitions", 1, "partitions of topics created without a count (by producers, or the kafka sink's default)")
	f.BoolVar(&o.SyncWrites, "sync", false, "fsync every produced batch (with --data)")
	cmd.AddCommand(serve)
	return cmd
}

// serveKafka runs the broker until ctx ends, printing where it listens and how to use it.
func serveKafka(ctx context.Context, out io.Writer, o kafkaserve.Options) error {
	o.Logger = slog.Default()
	addr, stop, err := kafkaserve.Serve(ctx, o)
	if err != nil {
		return err
	}
	defer stop()
	where := "in memory"
	if o.DataDir != "" {
		where = "data in " + o.DataDir
	}
	fmt.Fprintf(out, "kafka broker listening on %s (%s; %d partition(s) per new topic)\n", addr, where, o.Partitions)
	fmt.Fprintf(out, "export to it:  sink: {plugin: kafka, brokers: %q, delivery: exactly-once}\n", addr)
	fmt.Fprintf(out, "consume with any Kafka client, e.g.\n")
	fmt.Fprintf(out, "  kcat -b %s -C -t TOPIC -X isolation.level=read_committed\n", addr)
	fmt.Fprintf(out, "  kafka-console-consumer.sh --bootstrap-server %s --topic TOPIC --from-beginning --isolation-level read_committed\n", addr)
	fmt.Fprintf(out, "Ctrl-C stops it.\n")
	<-ctx.Done()
	return nil
}
