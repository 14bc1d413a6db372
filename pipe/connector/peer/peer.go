// Package peer holds the peer sink: it ships a pipe's events to another node's receiver
// (package pipe/receiver) over Arrow Flight (gRPC), as IoTDB's iotdb-thrift-sink ships to
// another IoTDB. Tablets travel as Arrow record batches, deletions as metadata messages and
// TsFiles as checked chunks that resume at the receiver's offset after a reconnect or a
// restart; the receiver acknowledges by sequence, which the sink turns into acks of the
// events' commit ids (package pipe/peerwire documents the exchange).
//
// The sink keeps one stream open. When it breaks, the sink reconnects by itself (trying
// each of node-urls in turn) and sends again every event not yet acknowledged; the
// receiver skips what it already applied. While no stream is up, Send fails, so the task
// shows the error and retries with backoff from its durable progress.
package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
)

// Parameter keys of the peer sink.
const (
	ParamNodeURLs       = "node-urls"
	ParamCompressor     = "compressor"
	ParamRateLimit      = "rate-limit-bytes-per-second"
	ParamConnectTimeout = "connect-timeout"
	ParamChunkSize      = "chunk-size"
)

// DefaultChunkSize is the size of the pieces a file is sent in.
const DefaultChunkSize = 1 << 20

// Params declares the peer sink's parameters (then the runtime ones every sink takes).
var Params = append([]pipe.ParamSpec{
	{Key: ParamNodeURLs, Type: pipe.String, Required: true,
		Doc: "the receivers' Flight addresses, comma-separated host:port; the sink uses the first that answers and fails over to the next"},
	{Key: ParamCompressor, Type: pipe.Enum, Enum: []string{"none", "lz4", "zstd"}, Default: "none",
		Doc: "compression of tablets' Arrow IPC buffers; files travel as they are (TsFiles are compressed already)"},
	{Key: ParamRateLimit, Type: pipe.Float, Default: "-1",
		Doc: "most bytes per second sent (tablets and file chunks); 0 or less: no limit"},
	{Key: ParamConnectTimeout, Type: pipe.Duration, Default: "10s", Min: pipe.MinOf(0.001),
		Doc: "how long connecting to a receiver and its welcome may take"},
	{Key: ParamChunkSize, Type: pipe.Bytes, Default: "1MiB", Min: pipe.MinOf(4096),
		Doc: "size of the pieces a TsFile is sent in (each checked by its CRC32C)"},
}, runtimeParams()...)

// runtimeParams are pipe.SinkRuntimeParams with batch.linger defaulting to 0: SendAsync
// only queues, and the stream pipelines, so waiting for a batch to fill only adds lag.
func runtimeParams() []pipe.ParamSpec {
	out := append([]pipe.ParamSpec(nil), pipe.SinkRuntimeParams...)
	for i := range out {
		if out[i].Key == pipe.ParamBatchLinger {
			out[i].Default = "0s"
			out[i].Doc = "how long a batch waits to fill before it is handed to the stream; the peer sink pipelines, so 0 (the default) sends at once"
		}
	}
	return out
}

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{
		Name:    "peer",
		Aliases: []string{"iotdb-thrift", "iotdb-thrift-sync", "iotdb-thrift-async"},
		Doc:     "Ships events to another node's receiver over Arrow Flight: tablets as record batches, TsFiles as resumable checked chunks; the receiver applies them in order and skips what its region's progress covers.",
		Params:  Params,
	}, func() pipe.Connector { return &Connector{} })
}

// Connector is the peer sink. It implements pipe.AsyncConnector.
type Connector struct {
	pipeName string
	region   *engine.Region
	urls     []string
	comp     string
	chunk    int
	timeout  time.Duration
	rate     float64
	log      *slog.Logger
	outDir   string
	sender   string
	meta     []byte // chunk metadata, reused (the serving goroutine's)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn
	urlIdx int

	mu      sync.Mutex
	wake    chan struct{}
	items   []*item // unacknowledged events in commit order; items[:sent] are on the stream
	sent    int
	ack     func(ids ...uint64)
	broken  error         // why no stream is up, while none is
	changed chan struct{} // closed (and replaced) when the stream breaks
}

// item is an event on its way: seq is its last message's sequence on the current stream.
type item struct {
	e    *pipe.Event
	seq  uint64
	file *outFile // the file to send, prepared once
}

var _ pipe.AsyncConnector = (*Connector)(nil)

// ParseNodeURLs parses a comma-separated list of host:port addresses.
func ParseNodeURLs(s string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		host, port, err := net.SplitHostPort(u)
		if err != nil {
			return nil, fmt.Errorf("%q is not host:port: %w", u, err)
		}
		if host == "" {
			return nil, fmt.Errorf("%q has no host", u)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("%q: port %q is not in 1..65535", u, port)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q names no address (want host:port[,host:port...])", s)
	}
	return out, nil
}

// Open implements pipe.Connector: it checks the parameters and connects to the first
// receiver that answers.
func (c *Connector) Open(ctx context.Context, env *pipe.Env) error {
	p := env.Params
	urls, err := ParseNodeURLs(p.String(ParamNodeURLs))
	if err != nil {
		return pipe.Permanent(fmt.Errorf("sink.%s: %w", ParamNodeURLs, err))
	}
	c.urls = urls
	c.comp = "none"
	if v, ok := p.Raw(ParamCompressor); ok && v != "" {
		switch v {
		case "none", "lz4", "zstd":
			c.comp = v
		default:
			return pipe.Permanent(fmt.Errorf("sink.%s: %q is not one of none, lz4, zstd", ParamCompressor, v))
		}
	}
	c.rate = -1
	if _, ok := p.Raw(ParamRateLimit); ok {
		c.rate = p.Float(ParamRateLimit)
	}
	c.timeout = 10 * time.Second
	if _, ok := p.Raw(ParamConnectTimeout); ok {
		if c.timeout = p.Duration(ParamConnectTimeout); c.timeout <= 0 {
			return pipe.Permanent(fmt.Errorf("sink.%s: %q is not a positive duration", ParamConnectTimeout, p.String(ParamConnectTimeout)))
		}
	}
	c.chunk = DefaultChunkSize
	if _, ok := p.Raw(ParamChunkSize); ok {
		n := p.Bytes(ParamChunkSize)
		if n < 4096 || n > 64<<20 {
			return pipe.Permanent(fmt.Errorf("sink.%s: %q is not in 4KiB..64MiB", ParamChunkSize, p.String(ParamChunkSize)))
		}
		c.chunk = int(n)
	}
	if env.Region == nil {
		return pipe.Permanent(errors.New("sink peer: no source region"))
	}
	c.pipeName, c.region = env.Pipe, env.Region
	c.log = env.Logger
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("sink", "peer")
	host, _ := os.Hostname()
	c.sender = fmt.Sprintf("%s/%d", host, os.Getpid())
	c.outDir = filepath.Join(c.region.Dir(), "outgoing")
	c.removeOutgoing()
	c.conns = map[string]*grpc.ClientConn{}
	c.wake = make(chan struct{}, 1)
	c.changed = make(chan struct{})
	c.ctx, c.cancel = context.WithCancel(context.Background())

	st, err := c.connect()
	if err != nil {
		c.closeConns()
		c.cancel()
		return fmt.Errorf("sink.%s: %w", ParamNodeURLs, err)
	}
	c.wg.Add(1)
	go c.run(st)
	return nil
}

// SendAsync implements pipe.AsyncConnector: it queues the batch for the stream and returns;
// ack is called as the receiver applies the events. It fails while no stream is up.
func (c *Connector) SendAsync(ctx context.Context, batch []*pipe.Event, ack func(ids ...uint64)) error {
	c.mu.Lock()
	c.ack = ack
	if c.broken != nil {
		err := c.broken
		c.mu.Unlock()
		return fmt.Errorf("peer %s: %w", strings.Join(c.urls, ","), err)
	}
	for _, e := range batch {
		c.items = append(c.items, &item{e: e})
	}
	c.mu.Unlock()
	c.signal()
	return nil
}

// Send implements pipe.Connector: SendAsync, then it waits until the receiver applied the
// whole batch, the stream breaks or ctx ends.
func (c *Connector) Send(ctx context.Context, batch []*pipe.Event) error {
	if len(batch) == 0 {
		return nil
	}
	// acks of events an earlier Send left on the stream (it returned early) come here too:
	// only this batch's count
	var mu sync.Mutex
	left := make(map[uint64]bool, len(batch))
	for _, e := range batch {
		left[e.CommitID] = true
	}
	done := make(chan struct{})
	err := c.SendAsync(ctx, batch, func(ids ...uint64) {
		mu.Lock()
		defer mu.Unlock()
		if len(left) == 0 {
			return
		}
		for _, id := range ids {
			delete(left, id)
		}
		if len(left) == 0 {
			close(done)
		}
	})
	if err != nil {
		return err
	}
	for {
		c.mu.Lock()
		broken, changed := c.broken, c.changed
		c.mu.Unlock()
		if broken != nil {
			return fmt.Errorf("peer %s: %w", strings.Join(c.urls, ","), broken)
		}
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-changed: // the stream broke: look again
		}
	}
}

func (c *Connector) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// setBroken records why no stream is up and wakes Send's waiters.
func (c *Connector) setBroken(err error) {
	c.mu.Lock()
	c.broken = err
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *Connector) clearBroken() {
	c.mu.Lock()
	c.broken = nil
	c.mu.Unlock()
}

// Close implements pipe.Connector: it ends the stream and waits for its goroutines.
// Events not acknowledged are redelivered by the task from its durable progress.
func (c *Connector) Close() error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	c.wg.Wait()
	c.closeConns()
	c.mu.Lock()
	items := c.items
	c.items, c.sent = nil, 0
	c.mu.Unlock()
	for _, it := range items {
		it.file.remove()
	}
	return nil
}
