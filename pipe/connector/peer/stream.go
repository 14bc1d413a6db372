package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/peerwire"
)

// stream is one open exchange with a receiver.
type stream struct {
	url      string
	cs       flight.FlightService_DoExchangeClient
	cancel   context.CancelFunc
	progress pipe.ProgressIndex // the target region's, at the welcome
	partials map[string]int64   // file id → bytes the receiver holds
}

// dial returns the client connection to url, made once (gRPC reconnects it as needed).
func (c *Connector) dial(url string) (*grpc.ClientConn, error) {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if cc := c.conns[url]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient(url,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(peerwire.WindowSize),
		grpc.WithInitialConnWindowSize(2*peerwire.WindowSize),
		grpc.WithWriteBufferSize(256<<10),
		grpc.WithReadBufferSize(64<<10),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(1<<30), grpc.ForceCodec(peerwire.Codec{})),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: c.timeout,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c.conns[url] = cc
	return cc, nil
}

func (c *Connector) closeConns() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	for u, cc := range c.conns {
		cc.Close()
		delete(c.conns, u)
	}
}

// connect opens a stream to the first of node-urls that answers, starting with the last
// one that did.
func (c *Connector) connect() (*stream, error) {
	var errs []error
	for i := range c.urls {
		k := (c.urlIdx + i) % len(c.urls)
		st, err := c.open(c.urls[k])
		if err == nil {
			c.urlIdx = k
			return st, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.urls[k], err))
		if c.ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// open opens a stream to url: hello, then the receiver's welcome within the connect timeout.
func (c *Connector) open(url string) (*stream, error) {
	cc, err := c.dial(url)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(c.ctx)
	timer := time.AfterFunc(c.timeout, cancel)
	cs, err := flight.NewFlightServiceClient(cc).DoExchange(ctx)
	var fd *flight.FlightData
	if err == nil {
		hello := &peerwire.Msg{Type: peerwire.TypeHello, Pipe: c.pipeName, Region: c.region.Name(),
			Database: peerwire.DatabaseOf(c.region.Name()), Origin: c.region.Origin(), Sender: c.sender}
		if err = cs.Send(&flight.FlightData{AppMetadata: hello.Encode()}); err == nil || errors.Is(err, io.EOF) {
			fd, err = cs.Recv()
		}
	}
	if !timer.Stop() && c.ctx.Err() == nil {
		err = fmt.Errorf("no welcome within %s (%v)", c.timeout, err)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	m, err := peerwire.Decode(fd.AppMetadata)
	if err == nil && m.Type != peerwire.TypeWelcome {
		err = fmt.Errorf("receiver answered %s, want welcome", m.Type)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	st := &stream{url: url, cs: cs, cancel: cancel, progress: m.Progress, partials: map[string]int64{}}
	for _, p := range m.Partials {
		st.partials[p.FileID] = p.Have
	}
	c.log.Debug("peer stream open", "url", url, "receiver_progress", st.progress.String(), "partials", len(m.Partials))
	return st, nil
}

// run serves streams until Close: when one breaks it reconnects with backoff and sends
// every unacknowledged event again.
func (c *Connector) run(st *stream) {
	defer c.wg.Done()
	bo := pipe.Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second}
	for {
		err := c.serve(st)
		if c.ctx.Err() != nil {
			return
		}
		c.setBroken(err)
		c.log.Warn("peer stream broke; reconnecting", "url", st.url, "err", err)
		for attempt := 0; ; attempt++ {
			t := time.NewTimer(bo.Delay(attempt))
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if st, err = c.connect(); err == nil {
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.setBroken(err)
		}
		c.clearBroken()
		c.log.Info("peer stream reconnected", "url", st.url)
	}
}

// serve sends the unacknowledged events on st, from the first, and then each new one,
// until the stream fails or the connector closes.
func (c *Connector) serve(st *stream) error {
	defer st.cancel()
	c.mu.Lock()
	for _, it := range c.items {
		it.seq = 0
	}
	c.sent = 0
	c.mu.Unlock()

	recvErr := make(chan error, 1)
	go func() { recvErr <- c.recvAcks(st) }()
	fail := func(err error) error {
		st.cancel()
		rerr := <-recvErr
		if errors.Is(err, io.EOF) && rerr != nil { // the receiver ended the stream: its reason
			return rerr
		}
		return err
	}
	enc := newTabletEncoder(c.comp)
	defer enc.release()
	lim := newLimiter(c.rate)
	var seq uint64
	for {
		c.mu.Lock()
		for c.sent >= len(c.items) {
			c.mu.Unlock()
			select {
			case <-c.wake:
			case err := <-recvErr:
				st.cancel()
				if err == nil {
					err = errors.New("receiver closed the stream")
				}
				return err
			case <-c.ctx.Done():
				return fail(c.ctx.Err())
			}
			c.mu.Lock()
		}
		it := c.items[c.sent]
		c.mu.Unlock()
		n := 0 // messages with a seq that it takes
		if !skipLocally(it.e, st.progress) {
			var err error
			if n, err = c.prepare(it, st.progress); err != nil {
				return fail(fmt.Errorf("prepare %s (commit %d): %w", it.e.Kind, it.e.CommitID, err))
			}
		}
		c.mu.Lock() // items before it may have been acked meanwhile; it is still items[sent]
		if n == 0 {
			// nothing to send (a heartbeat), or the receiver already has it: ack it now
			c.items = append(c.items[:c.sent], c.items[c.sent+1:]...)
			ack := c.ack
			c.mu.Unlock()
			it.file.remove()
			ack(it.e.CommitID)
			continue
		}
		it.seq = seq + uint64(n) // before it is sent: its ack may come back at once
		c.sent++
		c.mu.Unlock()
		if err := c.sendEvent(st, enc, lim, it, seq+1); err != nil {
			return fail(fmt.Errorf("send %s (commit %d): %w", it.e.Kind, it.e.CommitID, err))
		}
		seq += uint64(n)
	}
}

// skipLocally reports whether e needs no message: a heartbeat, or an event the receiver's
// progress (at its welcome) already covers.
func skipLocally(e *pipe.Event, have pipe.ProgressIndex) bool {
	switch e.Kind {
	case pipe.KindTablet, pipe.KindDeletion:
		return have.CoversIndex(e.Origin, e.OriginIndex)
	case pipe.KindTsFile:
		return len(e.Progress) > 0 && have.Covers(e.Progress)
	}
	return true
}

// recvAcks reads the receiver's acks and acknowledges the events they cover.
func (c *Connector) recvAcks(st *stream) error {
	for {
		fd, err := st.cs.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("receiver closed the stream")
			}
			return err
		}
		m, err := peerwire.Decode(fd.AppMetadata)
		if err != nil {
			return fmt.Errorf("from receiver: %w", err)
		}
		if m.Type != peerwire.TypeAck {
			return fmt.Errorf("receiver sent %s, want ack", m.Type)
		}
		c.mu.Lock()
		n := 0
		for n < c.sent && c.items[n].seq != 0 && c.items[n].seq <= m.Through {
			n++
		}
		done := append([]*item(nil), c.items[:n]...)
		c.items = append(c.items[:0:0], c.items[n:]...)
		c.sent -= n
		ack := c.ack
		c.mu.Unlock()
		if n == 0 {
			continue
		}
		ids := make([]uint64, n)
		for i, it := range done {
			ids[i] = it.e.CommitID
			it.file.remove()
		}
		ack(ids...)
	}
}
