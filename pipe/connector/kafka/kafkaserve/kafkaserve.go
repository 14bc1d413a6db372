// Package kafkaserve runs an embedded Kafka broker (franz-go's kfake) in the process, for
// demos, examples and tests: standard Kafka clients produce to and consume from it, with
// transactions and read_committed. With a data directory its topics survive a restart.
//
//	addr, stop, err := kafkaserve.Serve(ctx, kafkaserve.Options{Listen: "127.0.0.1:9092"})
//	defer stop()
package kafkaserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultListen is the address Serve listens on when Options.Listen is empty: Kafka's usual
// port, on loopback only.
const DefaultListen = "127.0.0.1:9092"

// Options configure Serve.
type Options struct {
	// Listen is host:port; port 0 picks a free port. Default DefaultListen. The host must be
	// one that clients can reach, since the broker advertises it: not 0.0.0.0 or ::.
	Listen string
	// DataDir, if set, persists the broker's topics, offsets and transactions there and
	// reloads them when a broker starts on the same directory.
	DataDir string
	// Partitions is the partition count of topics created without one (auto-created by a
	// producer, or created with -1); default 1.
	Partitions int
	// SyncWrites fsyncs every produced batch (slower; without it a crash of the machine
	// may lose the last writes, like Kafka's default).
	SyncWrites bool
	// Logger receives the broker's warnings and errors; nil discards them.
	Logger *slog.Logger
}

// Serve starts a one-broker Kafka cluster and returns the address clients bootstrap from
// and a stop function that shuts it down (persisting its state when DataDir is set) and
// waits for it. The broker also stops when ctx ends; stop is safe to call more than once.
func Serve(ctx context.Context, o Options) (addr string, stop func(), err error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return "", nil, fmt.Errorf("listen %q: %w", o.Listen, err)
	}
	if p, perr := strconv.Atoi(port); perr != nil || p < 0 || p > 65535 {
		return "", nil, fmt.Errorf("listen %q: bad port %q", o.Listen, port)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", nil, fmt.Errorf("listen %q: give a host that clients can reach (the broker advertises it), e.g. 127.0.0.1", o.Listen)
	}
	if o.Partitions < 0 {
		return "", nil, fmt.Errorf("partitions %d: must be positive", o.Partitions)
	}
	if o.Partitions == 0 {
		o.Partitions = 1
	}
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, o.Listen) }),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(o.Partitions),
		kfake.ClusterID("weir"),
	}
	if o.Logger != nil {
		opts = append(opts, kfake.WithLogger(slogLogger{o.Logger}))
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
		if o.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	unlock := func() {}
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return "", nil, fmt.Errorf("data dir: %w", err)
		}
		if unlock, err = lockDir(o.DataDir); err != nil {
			return "", nil, err
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		unlock()
		return "", nil, fmt.Errorf("start broker on %s: %w", o.Listen, err)
	}
	if o.DataDir != "" {
		persistAutoCreatedTopics(c)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		unlock()
		return "", nil, errors.New("start broker: no listener")
	}
	done := make(chan struct{})
	var once sync.Once
	shut := func() { once.Do(func() { c.Close(); unlock(); close(done) }) }
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-ctx.Done():
			shut()
		case <-done:
		}
	}()
	return addrs[0], func() { shut(); <-exited }, nil
}

// persistAutoCreatedTopics makes the topics that producers create on the fly survive a
// crash: kfake writes their records to disk as they come but its list of topics only at
// an orderly shutdown (it persists topics created with CreateTopics, not those a metadata
// request creates), so after a SIGKILL the broker restarted without them. Before kfake
// answers a metadata request that may create topics, this creates them with
// Cluster.CreateTopic, which saves the list at once.
func persistAutoCreatedTopics(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.Metadata), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req, ok := r.(*kmsg.MetadataRequest)
		if !ok || !req.AllowAutoTopicCreation {
			return nil, nil, false
		}
		for _, t := range req.Topics {
			if t.Topic != nil && t.TopicID == [16]byte{} {
				// An existing or invalid topic: kfake answers as usual.
				_ = c.CreateTopic(*t.Topic, -1, nil)
			}
		}
		return nil, nil, false // kfake answers the request
	})
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	var lv slog.Level
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	case kfake.LogLevelInfo:
		lv = slog.LevelInfo
	default:
		lv = slog.LevelDebug
	}
	if !s.l.Enabled(context.Background(), lv) {
		return
	}
	s.l.Log(context.Background(), lv, "kafka broker: "+fmt.Sprintf(msg, args...))
}
