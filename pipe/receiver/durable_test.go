package receiver

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe/peerwire"
)

// faultyReceiver serves region root.sg/0 (origin 2, its WAL synced on fs, which a test can
// make fail) and returns fs, the region, and exchange, which opens a stream to the receiver
// (every stream ends within 30 seconds of the call). All is closed at the end of the test.
func faultyReceiver(t *testing.T) (fs *vfs.Faulty, r *engine.Region, exchange func() flight.FlightService_DoExchangeClient) {
	t.Helper()
	fs = vfs.NewFaulty(nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := engine.Open(engine.Options{Dir: filepath.Join(t.TempDir(), "dst"), Name: "root.sg/0", Origin: 2, FS: fs,
		Durability: wal.Sync, FlushAge: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	srv, err := New(Options{Logger: log, Resolve: func(string, string) (*engine.Region, error) { return r, nil }})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop, err := srv.Serve(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return fs, r, func() flight.FlightService_DoExchangeClient {
		t.Helper()
		cs, err := flight.NewFlightServiceClient(conn).DoExchange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
}

// TestTabletsAckedOnlyWhenDurable: tablets are taken without waiting for each one's WAL
// write, but an ack covers a tablet only once it is durable; a tablet whose WAL sync fails
// is never acknowledged, and its stream ends.
func TestTabletsAckedOnlyWhenDurable(t *testing.T) {
	fs, r, exchange := faultyReceiver(t)
	cs := exchange()
	send := func(m *peerwire.Msg, header, body []byte) {
		t.Helper()
		if err := cs.Send(&flight.FlightData{AppMetadata: m.Encode(), DataHeader: header, DataBody: body}); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	// acks returns the highest ack until the stream ends (or through is reached)
	acks := func(through uint64) (uint64, error) {
		var hi uint64
		for {
			fd, err := cs.Recv()
			if err != nil {
				return hi, err
			}
			m, err := peerwire.Decode(fd.AppMetadata)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type == peerwire.TypeAck && m.Through > hi {
				hi = m.Through
			}
			if through > 0 && hi >= through {
				return hi, nil
			}
		}
	}
	send(&peerwire.Msg{Type: peerwire.TypeHello, Pipe: "p", Region: "root.sg/0", Origin: 1, Sender: "test"}, nil, nil)
	if _, err := cs.Recv(); err != nil {
		t.Fatal(err)
	}
	schema, header, body := tabletMessages(t)
	send(schema, nil, nil)
	const n = 50
	for i := uint64(1); i <= n; i++ {
		send(&peerwire.Msg{Type: peerwire.TypeTablet, Seq: i, Commit: i, Origin: 1, OriginIndex: i, Device: "root.sg.d1", SchemaID: 1}, header, body)
	}
	if hi, err := acks(n); err != nil || hi != n {
		t.Fatalf("acks through %d (%v), want %d", hi, err, n)
	}
	if p := r.Progress()[1]; p != n {
		t.Fatalf("progress %d, want %d", p, n)
	}

	fs.FailSyncAfter(0)
	send(&peerwire.Msg{Type: peerwire.TypeTablet, Seq: n + 1, Commit: n + 1, Origin: 1, OriginIndex: n + 1, Device: "root.sg.d1", SchemaID: 1}, header, body)
	hi, err := acks(0)
	if err == nil || hi > n {
		t.Fatalf("after a failed sync: ack through %d, stream error %v", hi, err)
	}
	t.Logf("stream ended: %v", err)
}

// TestFailedWriteNotCoveredByWelcome: a tablet whose WAL sync failed was taken by the
// region (its progress counts it) but never became durable: the next stream of the
// sender must not be told that the region covers it, or the sender would take it for
// delivered (it skips and acknowledges what the welcome covers) and it would be lost.
func TestFailedWriteNotCoveredByWelcome(t *testing.T) {
	fs, _, exchange := faultyReceiver(t)
	hello := &peerwire.Msg{Type: peerwire.TypeHello, Pipe: "p", Region: "root.sg/0", Origin: 1, Sender: "test"}
	open := func() (flight.FlightService_DoExchangeClient, *peerwire.Msg, error) {
		cs := exchange()
		if err := cs.Send(&flight.FlightData{AppMetadata: hello.Encode()}); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		fd, err := cs.Recv()
		if err != nil {
			return cs, nil, err
		}
		w, err := peerwire.Decode(fd.AppMetadata)
		if err != nil {
			t.Fatal(err)
		}
		return cs, w, nil
	}
	cs, _, err := open()
	if err != nil {
		t.Fatal(err)
	}
	schema, header, body := tabletMessages(t)
	if err := cs.Send(&flight.FlightData{AppMetadata: schema.Encode()}); err != nil {
		t.Fatal(err)
	}
	fs.FailSyncAfter(0)
	tablet := &peerwire.Msg{Type: peerwire.TypeTablet, Seq: 1, Commit: 1, Origin: 1, OriginIndex: 1, Device: "root.sg.d1", SchemaID: 1}
	if err := cs.Send(&flight.FlightData{AppMetadata: tablet.Encode(), DataHeader: header, DataBody: body}); err != nil {
		t.Fatal(err)
	}
	for {
		fd, err := cs.Recv()
		if err != nil {
			t.Logf("stream ended: %v", err)
			break
		}
		if m, _ := peerwire.Decode(fd.AppMetadata); m != nil && m.Type == peerwire.TypeAck && m.Through >= 1 {
			t.Fatal("the tablet whose sync failed was acknowledged")
		}
	}
	_, w, err := open()
	if err == nil && w.Progress[1] >= 1 {
		t.Fatalf("welcome progress %v covers the tablet that never became durable", w.Progress)
	}
	t.Logf("next stream: welcome %v, err %v", w, err)
}
