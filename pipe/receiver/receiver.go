// Package receiver is the Flight (gRPC) receiver of the peer sink: it takes the events a
// peer pipe ships (package pipe/peerwire documents the exchange) and applies them to a
// local region, in order, skipping what the region's progress already covers.
//
// Tablets are written with Region.WriteReplicated and deletions with DeleteReplicated, so
// they keep their origin and index: a forwarding=false pipe on this node never ships them
// back. A file is staged under the region's directory (incoming/peer-<sender>/) as it
// arrives, chunk by checked chunk, and loaded with Region.LoadFile once its size and
// CRC32C match, after the deletions it carries that the region has not seen. A
// half-received file survives a restart of either side; the sender resumes at its end.
//
// A node starts the receiver with Serve, or registers a Server on its own grpc.Server.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe/peerwire"
)

// Resolver returns the local region that receives a sender region's events. database is
// the database the sender's region belongs to (e.g. root.demo) and region the sender's
// region name (e.g. root.demo/0); a node that keeps one region per database may look at
// database only (see ByDatabase). An error rejects the stream, naming it.
type Resolver func(database, region string) (*engine.Region, error)

// ByDatabase adapts a function of the database alone to a Resolver.
func ByDatabase(f func(database string) (*engine.Region, error)) Resolver {
	return func(database, _ string) (*engine.Region, error) { return f(database) }
}

// Defaults of Options.
const (
	DefaultMaxMessageBytes = 256 << 20
	DefaultHelloTimeout    = 30 * time.Second
)

// Options configure a Server.
type Options struct {
	// Resolve finds the local region for a sender (required).
	Resolve Resolver
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MaxMessageBytes bounds one received message (a tablet or a file chunk), and what
	// one tablet may take in memory once decompressed; default 256 MiB.
	MaxMessageBytes int
	// HelloTimeout is how long a new stream may take to say who it is; default 30s.
	HelloTimeout time.Duration
	// Admit, when set, is asked about each stream once it said who it is, before its
	// region is resolved: the database it writes into, the sending pipe and the sender
	// region's origin. An error refuses the stream with that error.
	Admit func(database, pipe string, origin uint32) error
}

// Stats are the receiver's counters (for metrics).
type Stats struct {
	Sessions  int64 `json:"sessions"`   // open streams
	Streams   int64 `json:"streams"`    // streams accepted so far
	Tablets   int64 `json:"tablets"`    // tablets written
	Points    int64 `json:"points"`     // points written by tablets
	Deletions int64 `json:"deletions"`  // deletions applied
	Files     int64 `json:"files"`      // files loaded
	FileBytes int64 `json:"file_bytes"` // bytes of files loaded
	Skipped   int64 `json:"skipped"`    // events the region's progress already covered
	Resumed   int64 `json:"resumed"`    // file bytes not sent again thanks to a resume
	Rejected  int64 `json:"rejected"`   // streams ended by bad input or a failed apply
	Bytes     int64 `json:"bytes"`      // message bytes received
}

// Server is the receiver: a Flight service whose DoExchange takes a peer stream.
type Server struct {
	flight.BaseFlightServer

	o   Options
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	sessions map[string]*sessionSlot // by (pipe, sender region, origin)
	all      map[*sessionSlot]bool
	wg       sync.WaitGroup // handlers and their goroutines

	stats struct {
		sessions, streams, tablets, points, deletions, files, fileBytes, skipped, resumed, rejected, bytes atomic.Int64
	}
}

// sessionSlot is a running stream: a newer stream of the same sender cancels it and waits.
type sessionSlot struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Server; it serves nothing until registered on a grpc.Server (Register).
func New(o Options) (*Server, error) {
	if o.Resolve == nil {
		return nil, errors.New("receiver: Options.Resolve is nil")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = DefaultHelloTimeout
	}
	return &Server{o: o, log: o.Logger, sessions: map[string]*sessionSlot{}, all: map[*sessionSlot]bool{}}, nil
}

// ServerOptions are the grpc.Server options the receiver wants: its message size limit,
// the peerwire codec (which decodes FlightData without copying its body), large
// flow-control windows and keepalive enforcement that allows the sender's pings. A server
// given these must not set a shared receive buffer pool.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.o.MaxMessageBytes),
		grpc.ForceServerCodec(peerwire.Codec{}), // FlightData bodies are used in place
		grpc.InitialWindowSize(peerwire.WindowSize),
		grpc.InitialConnWindowSize(2 * peerwire.WindowSize),
		grpc.ReadBufferSize(256 << 10),
		grpc.WriteBufferSize(64 << 10),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}

// Register adds the receiver's Flight service to g.
func (s *Server) Register(g *grpc.Server) { flight.RegisterFlightServiceServer(g, s) }

// Stats returns the receiver's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Sessions: s.stats.sessions.Load(), Streams: s.stats.streams.Load(), Tablets: s.stats.tablets.Load(),
		Points: s.stats.points.Load(), Deletions: s.stats.deletions.Load(), Files: s.stats.files.Load(),
		FileBytes: s.stats.fileBytes.Load(), Skipped: s.stats.skipped.Load(), Resumed: s.stats.resumed.Load(), Rejected: s.stats.rejected.Load(),
		Bytes: s.stats.bytes.Load(),
	}
}

// Close ends every stream (their senders reconnect elsewhere or later) and waits for the
// handlers; streams arriving afterwards are refused. Call it before stopping the
// grpc.Server, or after: either order works.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for sl := range s.all {
		sl.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// enter registers a running handler unless the server is closed.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// acquire makes sl the running stream of key, cancelling and waiting for the previous one:
// one stream per sender applies at a time, so events keep their order across reconnects.
func (s *Server) acquire(ctx context.Context, key string, sl *sessionSlot) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return errClosed
		}
		old := s.sessions[key]
		if old == nil {
			s.sessions[key] = sl
			s.mu.Unlock()
			return nil
		}
		old.cancel()
		s.mu.Unlock()
		select {
		case <-old.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Server) track(sl *sessionSlot) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.all[sl] = true
	return true
}

func (s *Server) release(key string, sl *sessionSlot) {
	s.mu.Lock()
	if s.sessions[key] == sl {
		delete(s.sessions, key)
	}
	delete(s.all, sl)
	s.mu.Unlock()
	close(sl.done)
}

var errClosed = errors.New("receiver closed")

// Serve listens on addr (host:port; port 0 picks a free one) and serves the receiver until
// ctx ends or stop is called. It returns the address it is bound to. stop ends the open
// streams, stops the gRPC server and waits for every goroutine of it; it returns the error
// that ended serving, if any, and may be called more than once.
func Serve(ctx context.Context, addr string, resolve Resolver, logger *slog.Logger) (bound string, stop func() error, err error) {
	s, err := New(Options{Resolve: resolve, Logger: logger})
	if err != nil {
		return "", nil, err
	}
	return s.Serve(ctx, addr)
}

// Serve listens on addr and serves s on a grpc.Server of its own; see the package-level Serve.
func (s *Server) Serve(ctx context.Context, addr string) (bound string, stop func() error, err error) {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("receiver: listen %s: %w", addr, err)
	}
	g := grpc.NewServer(s.ServerOptions()...)
	s.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	stopped := make(chan struct{})
	var once sync.Once
	var serveErr error
	shutdown := func() {
		once.Do(func() {
			s.Close()
			g.Stop()
			if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				serveErr = fmt.Errorf("receiver: serve %s: %w", lis.Addr(), err)
			}
			close(stopped)
		})
	}
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		select {
		case <-ctx.Done():
			shutdown()
		case <-stopped:
		}
	}()
	s.log.Info("peer receiver listening", "addr", lis.Addr().String())
	return lis.Addr().String(), func() error { shutdown(); watch.Wait(); return serveErr }, nil
}

// DoExchange implements the Flight service: one peer stream.
func (s *Server) DoExchange(stream flight.FlightService_DoExchangeServer) error {
	if !s.enter() {
		return statusErr(errClosed)
	}
	defer s.wg.Done()
	s.stats.streams.Add(1)
	s.stats.sessions.Add(1)
	defer s.stats.sessions.Add(-1)
	err := s.exchange(stream)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		s.stats.rejected.Add(1)
		s.log.Warn("peer stream ended", "err", err)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return statusErr(err)
}
