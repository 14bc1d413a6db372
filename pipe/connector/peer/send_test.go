package peer_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"google.golang.org/grpc"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/peerwire"
	"github.com/weir-dev/weir/tsfile"
)

// manualReceiver says welcome, passes on the seqs of what it receives and acknowledges
// only what the test tells it to.
type manualReceiver struct {
	flight.BaseFlightServer
	got  chan uint64
	acks chan uint64
}

func (m *manualReceiver) DoExchange(stream flight.FlightService_DoExchangeServer) error {
	if _, err := stream.Recv(); err != nil { // hello
		return err
	}
	if err := stream.Send(&flight.FlightData{AppMetadata: (&peerwire.Msg{Type: peerwire.TypeWelcome}).Encode()}); err != nil {
		return err
	}
	go func() {
		for {
			fd, err := stream.Recv()
			if err != nil {
				return
			}
			if msg, err := peerwire.Decode(fd.AppMetadata); err == nil && msg.Seq > 0 {
				select {
				case m.got <- msg.Seq:
				case <-stream.Context().Done():
					return
				}
			}
		}
	}()
	for {
		select {
		case t := <-m.acks:
			if err := stream.Send(&flight.FlightData{AppMetadata: (&peerwire.Msg{Type: peerwire.TypeAck, Through: t}).Encode()}); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// TestSendSyncWaitsForItsOwnBatch: a Send that returned early (its context ended) leaves
// its events on the stream; their acks must not count for the next Send's batch, which
// returns only once its own events are applied.
func TestSendSyncWaitsForItsOwnBatch(t *testing.T) {
	src := openRegion(t, t.TempDir(), 1, 16<<10)
	defer src.Close()
	mr := &manualReceiver{got: make(chan uint64, 16), acks: make(chan uint64, 16)}
	g := grpc.NewServer(grpc.ForceServerCodec(peerwire.Codec{}))
	flight.RegisterFlightServiceServer(g, mr)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()

	c, err := pipe.NewConnector("peer")
	if err != nil {
		t.Fatal(err)
	}
	env := &pipe.Env{Pipe: "sync", Region: src, Logger: quiet(), Params: pipe.NewParams(map[string]string{"node-urls": lis.Addr().String()})}
	if err := c.Open(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deletion := func(id uint64) []*pipe.Event {
		return []*pipe.Event{{Kind: pipe.KindDeletion, CommitID: id, Origin: 1, OriginIndex: id, Progress: pipe.ProgressIndex{1: id},
			Deletion: &engine.Deletion{Pattern: tsfile.MustPattern("root.sg.**"), MinTime: 0, MaxTime: 10}}}
	}
	expect := func(seq uint64) {
		t.Helper()
		select {
		case got := <-mr.got:
			if got != seq {
				t.Fatalf("received seq %d, want %d", got, seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("seq %d never arrived", seq)
		}
	}

	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- c.Send(ctx1, deletion(1)) }()
	expect(1)
	cancel1()
	if err := <-first; err == nil {
		t.Fatal("the first Send succeeded without an ack")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := make(chan error, 1)
	go func() { second <- c.Send(ctx, deletion(2)) }()
	expect(2)
	mr.acks <- 1 // the first batch's event only
	select {
	case err := <-second:
		t.Fatalf("the second Send returned (%v) when only the first batch was acknowledged", err)
	case <-time.After(time.Second):
	}
	mr.acks <- 2
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second Send did not return after its ack")
	}
}
