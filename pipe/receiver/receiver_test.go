package receiver_test

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe/peerwire"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/pipe/receiver"
	"github.com/weir-dev/weir/tsfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func openRegion(t testing.TB, dir string, origin uint32) *engine.Region {
	t.Helper()
	r, err := engine.Open(engine.Options{Dir: dir, Name: "root.sg/0", Origin: origin, Durability: wal.Sync, FlushAge: -1, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// env is a receiver of region dst, and a sealed file of region src to send it.
type env struct {
	src, dst *engine.Region
	addr     string
	srv      *receiver.Server
	file     engine.FileInfo
	bytes    []byte
}

func setup(t *testing.T) *env {
	t.Helper()
	d := t.TempDir()
	e := &env{src: openRegion(t, filepath.Join(d, "src"), 1), dst: openRegion(t, filepath.Join(d, "dst"), 2)}
	cols := []tsfile.Column{{Name: "v", Type: tsfile.Int64}, {Name: "s", Type: tsfile.Text}}
	for dev := 0; dev < 3; dev++ {
		b := tsfile.NewTabletBuilder(nil, fmt.Sprintf("root.sg.d%d", dev), cols)
		for i := 0; i < 3000; i++ {
			_ = b.AppendRow(int64(i), int64(i*dev), fmt.Sprintf("value %d of %d", i, dev))
		}
		pipetest.WriteTablet(t, e.src, b)
	}
	if err := e.src.Flush(); err != nil {
		t.Fatal(err)
	}
	e.file = e.src.Files()[0]
	var err error
	if e.bytes, err = os.ReadFile(e.src.FilePath(e.file.Name)); err != nil {
		t.Fatal(err)
	}
	e.srv, err = receiver.New(receiver.Options{Logger: quiet(), Resolve: receiver.ByDatabase(func(db string) (*engine.Region, error) {
		if db != "root.sg" {
			return nil, fmt.Errorf("no database %s", db)
		}
		return e.dst, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop, err := e.srv.Serve(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	e.addr = addr
	return e
}

// client is a raw peer stream, for sending exactly what a test wants.
type client struct {
	t      *testing.T
	conn   *grpc.ClientConn
	cs     flight.FlightService_DoExchangeClient
	cancel context.CancelFunc
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cs, err := flight.NewFlightServiceClient(conn).DoExchange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn, cs: cs, cancel: cancel}
	t.Cleanup(c.close)
	return c
}

func (c *client) close() {
	c.cancel()
	c.conn.Close()
}

func (c *client) send(m *peerwire.Msg, body []byte) {
	c.t.Helper()
	if err := c.cs.Send(&flight.FlightData{AppMetadata: m.Encode(), DataBody: body}); err != nil && !errors.Is(err, io.EOF) {
		c.t.Fatal(err)
	}
}

func (c *client) recv() (*peerwire.Msg, error) {
	fd, err := c.cs.Recv()
	if err != nil {
		return nil, err
	}
	return peerwire.Decode(fd.AppMetadata)
}

// hello opens the stream and returns the welcome.
func (c *client) hello() *peerwire.Msg {
	c.t.Helper()
	c.send(&peerwire.Msg{Type: peerwire.TypeHello, Pipe: "p", Region: "root.sg/0", Origin: 1, Sender: "test"}, nil)
	m, err := c.recv()
	if err != nil || m.Type != peerwire.TypeWelcome {
		c.t.Fatalf("welcome: %v %v", m, err)
	}
	return m
}

// waitAck reads until an ack of at least seq, failing on anything else.
func (c *client) waitAck(seq uint64) {
	c.t.Helper()
	for {
		m, err := c.recv()
		if err != nil {
			c.t.Fatalf("waiting for ack %d: %v", seq, err)
		}
		if m.Type == peerwire.TypeAck && m.Through >= seq {
			return
		}
	}
}

// waitErr reads until the stream fails and returns its status.
func (c *client) waitErr() *status.Status {
	c.t.Helper()
	for {
		_, err := c.recv()
		if err != nil {
			st, _ := status.FromError(err)
			return st
		}
	}
}

func (e *env) fileID() string { return fmt.Sprintf("f-%d-%08x", e.file.Size, e.file.CRC32C) }

func (e *env) begin(seq uint64, offset int64) *peerwire.Msg {
	return &peerwire.Msg{Type: peerwire.TypeFileBegin, Seq: seq, Commit: seq, Progress: e.file.Progress, FileID: e.fileID(),
		Name: e.file.Name, Size: e.file.Size, CRC: e.file.CRC32C, Offset: offset}
}

func chunk(seq uint64, off int64, b []byte) (*peerwire.Msg, []byte) {
	return &peerwire.Msg{Type: peerwire.TypeFileChunk, Seq: seq, Offset: off, CRC: crc32.Checksum(b, castagnoli)}, b
}

func partialHave(w *peerwire.Msg, id string) (int64, bool) {
	for _, p := range w.Partials {
		if p.FileID == id {
			return p.Have, true
		}
	}
	return 0, false
}

// TestFileResumesAtReceiverOffset: a stream that ends mid-file leaves the bytes it sent;
// the next stream's welcome reports them and the file completes from there.
func TestFileResumesAtReceiverOffset(t *testing.T) {
	e := setup(t)
	half := int64(len(e.bytes) / 2)
	c := dial(t, e.addr)
	if w := c.hello(); len(w.Partials) != 0 {
		t.Fatalf("partials at first: %+v", w.Partials)
	}
	c.send(e.begin(1, 0), nil)
	c.send(chunk(1, 0, e.bytes[:half]))
	c.cs.CloseSend() // the sender goes away mid-file
	if st := c.waitErr(); st.Code() != codes.OK && st.Code() != codes.Unknown {
		t.Logf("first stream ended: %v", st)
	}
	c.close()

	c = dial(t, e.addr)
	w := c.hello()
	have, ok := partialHave(w, e.fileID())
	if !ok || have != half {
		t.Fatalf("welcome partials %+v, want %s with %d bytes", w.Partials, e.fileID(), half)
	}
	c.send(e.begin(1, have), nil)
	c.send(chunk(1, have, e.bytes[have:]))
	c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: 1}, nil)
	c.waitAck(1)
	if got, want := digestOf(t, e.dst), digestOf(t, e.src); got != want {
		t.Fatalf("digest %v, want %v", got, want)
	}
	if w := dial(t, e.addr).hello(); len(w.Partials) != 0 || !covers(w.Progress, e.file.Progress) {
		t.Fatalf("after the load: welcome %+v", w)
	}
}

func covers(have, want map[uint32]uint64) bool {
	for o, v := range want {
		if have[o] < v {
			return false
		}
	}
	return true
}

func digestOf(t *testing.T, r *engine.Region) engine.Digest {
	t.Helper()
	d, err := r.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestBadChunkCRCKeepsGoodBytes: a chunk whose CRC does not match is rejected with the
// stream; the bytes before it stay, and the sender resumes from there.
func TestBadChunkCRCKeepsGoodBytes(t *testing.T) {
	e := setup(t)
	q := int64(len(e.bytes) / 4)
	c := dial(t, e.addr)
	c.hello()
	c.send(e.begin(1, 0), nil)
	c.send(chunk(1, 0, e.bytes[:q]))
	m, body := chunk(1, q, e.bytes[q:2*q])
	bad := append([]byte(nil), body...)
	bad[10] ^= 0xff // corrupted on the way
	c.send(m, bad)
	if st := c.waitErr(); st.Code() != codes.InvalidArgument {
		t.Fatalf("corrupt chunk: %v, want InvalidArgument", st)
	}
	if len(e.dst.Files()) != 0 {
		t.Fatal("a file was loaded")
	}
	c = dial(t, e.addr)
	if have, _ := partialHave(c.hello(), e.fileID()); have != q {
		t.Fatalf("receiver kept %d bytes, want the %d good ones", have, q)
	}
	c.send(e.begin(1, q), nil)
	c.send(chunk(1, q, e.bytes[q:]))
	c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: 1}, nil)
	c.waitAck(1)
	if got, want := digestOf(t, e.dst), digestOf(t, e.src); got != want {
		t.Fatalf("digest %v, want %v", got, want)
	}
}

// TestWrongFileCRCRejected: a file whose whole CRC32C differs from the declared one is not
// loaded, and its staged bytes are dropped so that it is sent again from the start.
func TestWrongFileCRCRejected(t *testing.T) {
	e := setup(t)
	c := dial(t, e.addr)
	c.hello()
	b := e.begin(1, 0)
	b.CRC ^= 1
	c.send(b, nil)
	c.send(chunk(1, 0, e.bytes))
	c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: 1}, nil)
	st := c.waitErr()
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("wrong CRC: %v, want InvalidArgument", st)
	}
	t.Logf("rejected: %s", st.Message())
	if len(e.dst.Files()) != 0 || digestOf(t, e.dst).Points != 0 {
		t.Fatal("the file was loaded")
	}
	if w := dial(t, e.addr).hello(); len(w.Partials) != 0 {
		t.Fatalf("staged bytes kept: %+v", w.Partials)
	}
	if e.srv.Stats().Rejected == 0 {
		t.Fatal("rejection not counted")
	}
}

// TestGarbageRejected: garbage metadata, a bad IPC message, a schema that is not a
// tablet's, an unsafe file id and out-of-order sequences each end their stream with
// InvalidArgument; the receiver keeps serving and its region is untouched.
func TestGarbageRejected(t *testing.T) {
	e := setup(t)
	cases := []struct {
		name string
		send func(c *client)
	}{
		{"metadata", func(c *client) {
			c.cs.Send(&flight.FlightData{AppMetadata: []byte("W\x01\x03\xff\xff\xff")})
		}},
		{"unknown-schema", func(c *client) {
			c.send(&peerwire.Msg{Type: peerwire.TypeTablet, Seq: 1, Origin: 1, OriginIndex: 99, Device: "root.sg.d1", SchemaID: 7}, nil)
		}},
		{"schema", func(c *client) {
			c.send(&peerwire.Msg{Type: peerwire.TypeSchema, SchemaID: 1, Columns: []peerwire.Column{{Name: "time", Type: tsfile.Int64}}}, nil)
		}},
		{"ipc-garbage", func(c *client) {
			c.send(&peerwire.Msg{Type: peerwire.TypeSchema, SchemaID: 1, Columns: []peerwire.Column{{Name: "v", Type: tsfile.Int64}}}, nil)
			c.cs.Send(&flight.FlightData{AppMetadata: (&peerwire.Msg{Type: peerwire.TypeTablet, Seq: 1, Origin: 1, OriginIndex: 99, Device: "root.sg.d1", SchemaID: 1}).Encode(),
				DataHeader: []byte("not a flatbuffer header at all"), DataBody: []byte("nor a body")})
		}},
		{"file-id", func(c *client) {
			b := e.begin(1, 0)
			b.FileID = "../../MANIFEST"
			c.send(b, nil)
		}},
		{"seq", func(c *client) {
			c.send(&peerwire.Msg{Type: peerwire.TypeDeletion, Seq: 5, Origin: 1, OriginIndex: 99, Pattern: "root.sg.**", MinTime: 0, MaxTime: 10}, nil)
		}},
		{"chunk-past-size", func(c *client) {
			c.send(e.begin(1, 0), nil)
			c.send(chunk(1, 0, append(append([]byte(nil), e.bytes...), 1, 2, 3)))
		}},
		{"hello-missing", func(c *client) {
			c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: 1}, nil)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, e.addr)
			if tc.name != "hello-missing" {
				c.hello()
			}
			tc.send(c)
			if st := c.waitErr(); st.Code() != codes.InvalidArgument {
				t.Fatalf("%v, want InvalidArgument", st)
			}
		})
	}
	if d := digestOf(t, e.dst); d.Points != 0 {
		t.Fatalf("garbage reached the region: %v", d)
	}
	// and a good stream still works
	c := dial(t, e.addr)
	c.hello()
	c.send(e.begin(1, 0), nil)
	c.send(chunk(1, 0, e.bytes))
	c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: 1}, nil)
	c.waitAck(1)
}

// TestNewerStreamSupersedes: a second stream of the same sender ends the first before it
// applies anything, so that events keep their order.
func TestNewerStreamSupersedes(t *testing.T) {
	e := setup(t)
	a := dial(t, e.addr)
	a.hello()
	b := dial(t, e.addr)
	b.hello()
	if st := a.waitErr(); st.Code() != codes.Canceled {
		t.Fatalf("older stream: %v, want Canceled", st)
	}
	b.send(&peerwire.Msg{Type: peerwire.TypeDeletion, Seq: 1, Origin: 1, OriginIndex: 1, Pattern: "root.sg.**", MinTime: 0, MaxTime: 10}, nil)
	b.waitAck(1)
}

// TestCoveredEventsSkipped: what the region's progress covers is acknowledged, not applied.
func TestCoveredEventsSkipped(t *testing.T) {
	e := setup(t)
	c := dial(t, e.addr)
	c.hello()
	c.send(e.begin(1, 0), nil)
	c.send(chunk(1, 0, e.bytes))
	c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: 1}, nil)
	c.send(e.begin(2, 0), nil) // redelivered
	c.send(chunk(2, 0, e.bytes))
	c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: 2}, nil)
	c.waitAck(2)
	if n := len(e.dst.Files()); n != 1 {
		t.Fatalf("%d files loaded, want 1", n)
	}
	if s := e.srv.Stats(); s.Skipped != 1 || s.Files != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestInterruptedLoadNotCovered: a file whose epoch ended with a deletion (so the file's
// progress is the deletion's index) is applied once, with its deletion, however the
// receiver stops around the load: stopped before it, neither the deletion nor the file is
// applied, the next welcome does not cover the file, and sending it again loads it; stopped
// after it (before the acknowledgement), the file sent again is found covered. The
// deletion is held with the file (not a write of its own), once.
func TestInterruptedLoadNotCovered(t *testing.T) {
	e := setup(t)
	// an epoch that ends with a deletion: the file's progress is the deletion's index
	if _, err := e.src.Delete(tsfile.MustPattern("root.sg.d1"), 100, 200); err != nil {
		t.Fatal(err)
	}
	if err := e.src.Flush(); err != nil {
		t.Fatal(err)
	}
	files := e.src.Files()
	f := files[len(files)-1]
	dels := e.src.Deletions(e.file.MaxIndex, f.MaxIndex)
	if len(dels) != 1 || f.Progress[1] != dels[0].OriginIndex {
		t.Fatalf("file %+v, deletions %+v", f, dels)
	}
	body, err := os.ReadFile(e.src.FilePath(f.Name))
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("g-%d-%08x", f.Size, f.CRC32C)
	send := func(c *client, seq uint64, file engine.FileInfo, id string, b []byte, dels []peerwire.Deletion) {
		c.send(&peerwire.Msg{Type: peerwire.TypeFileBegin, Seq: seq, Commit: seq, Progress: file.Progress, FileID: id,
			Name: file.Name, Size: file.Size, CRC: file.CRC32C, Deletions: dels}, nil)
		c.send(chunk(seq, 0, b))
		c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: seq}, nil)
	}
	wd := []peerwire.Deletion{{Origin: dels[0].Origin, OriginIndex: dels[0].OriginIndex, Pattern: dels[0].Pattern.String(), MinTime: dels[0].MinTime, MaxTime: dels[0].MaxTime}}

	c := dial(t, e.addr)
	c.hello()
	send(c, 1, e.file, e.fileID(), e.bytes, nil) // the first epoch
	c.waitAck(1)
	receiver.SetBeforeLoadHook(func() error { return errors.New("stopped before the load") })
	send(c, 2, f, id, body, wd)
	st := c.waitErr()
	receiver.SetBeforeLoadHook(nil)
	if !strings.Contains(st.Message(), "stopped before the load") {
		t.Fatalf("stream ended with %v", st)
	}
	if p := e.dst.Progress(); p[1] >= f.Progress[1] {
		t.Fatalf("the deletion was applied without the file: progress %v", p)
	}

	c = dial(t, e.addr)
	w := c.hello()
	if covers(w.Progress, f.Progress) {
		t.Fatalf("welcome progress %v covers the file that was not loaded (%v)", w.Progress, f.Progress)
	}
	receiver.SetAfterLoadHook(func() error { return errors.New("stopped after the load") })
	send(c, 1, f, id, body, wd)
	st = c.waitErr()
	receiver.SetAfterLoadHook(nil)
	if !strings.Contains(st.Message(), "stopped after the load") {
		t.Fatalf("stream ended with %v", st)
	}
	c = dial(t, e.addr)
	if w := c.hello(); !covers(w.Progress, f.Progress) {
		t.Fatalf("after the load the welcome says %v", w.Progress)
	}
	send(c, 1, f, id, body, wd) // sent again: covered
	c.waitAck(1)
	if got, want := digestOf(t, e.dst), digestOf(t, e.src); got != want {
		t.Fatalf("digest %v, want %v", got, want)
	}
	loaded := 0
	for _, g := range e.dst.Files() {
		if g.CRC32C == f.CRC32C && g.Size == f.Size {
			loaded++
			if fd := e.dst.FileDeletions(g.Name); len(fd) != 1 || fd[0].Origin != dels[0].Origin || fd[0].OriginIndex != dels[0].OriginIndex {
				t.Errorf("the file's deletions %+v, sent %+v", fd, dels)
			}
		}
	}
	if loaded != 1 {
		t.Fatalf("the file was loaded %d times: %+v", loaded, e.dst.Files())
	}
	if d := e.dst.Deletions(0, e.dst.LastIndex()); len(d) != 0 {
		t.Fatalf("deletions of their own: %+v", d)
	}
	if s := e.srv.Stats(); s.Deletions != 1 || s.Files != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestFileAdoptedInPlace: a received file is not copied into the region: the staged file
// itself (the same inode) becomes the region's file, and nothing stays staged. No
// pending-load record is written.
func TestFileAdoptedInPlace(t *testing.T) {
	e := setup(t)
	var staged os.FileInfo
	receiver.SetBeforeLoadHook(func() error {
		parts, _ := filepath.Glob(filepath.Join(e.dst.Dir(), "incoming", "*", "*.part"))
		if len(parts) != 1 {
			return fmt.Errorf("staged files %v", parts)
		}
		// deletions go in with the file: nothing to record as pending
		if rec, _ := filepath.Glob(filepath.Join(e.dst.Dir(), "incoming", "*", "*.loading")); len(rec) != 0 {
			return fmt.Errorf("pending-load record %v for a file without deletions", rec)
		}
		var err error
		staged, err = os.Stat(parts[0])
		return err
	})
	defer receiver.SetBeforeLoadHook(nil)
	c := dial(t, e.addr)
	c.hello()
	c.send(e.begin(1, 0), nil)
	half := len(e.bytes) / 2
	c.send(chunk(1, 0, e.bytes[:half]))
	c.send(chunk(1, int64(half), e.bytes[half:]))
	c.send(&peerwire.Msg{Type: peerwire.TypeFileEnd, Seq: 1}, nil)
	c.waitAck(1)
	files := e.dst.Files()
	if len(files) != 1 || files[0].CRC32C != e.file.CRC32C || files[0].Size != e.file.Size {
		t.Fatalf("files %+v, sent %+v", files, e.file)
	}
	loaded, err := os.Stat(e.dst.FilePath(files[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	if staged == nil || !os.SameFile(staged, loaded) {
		t.Fatal("the region's file is not the staged one")
	}
	if left, _ := filepath.Glob(filepath.Join(e.dst.Dir(), "incoming", "*", "*")); len(left) != 0 {
		t.Fatalf("left staged: %v", left)
	}
	if got, want := digestOf(t, e.dst), digestOf(t, e.src); got != want {
		t.Fatalf("digest %v, want %v", got, want)
	}
}

// TestStopDoesNotWaitForHello: a stream that is open but has not said hello yet is ended
// by stop like any other; stop does not wait for its hello timeout.
func TestStopDoesNotWaitForHello(t *testing.T) {
	d := t.TempDir()
	dst := openRegion(t, filepath.Join(d, "dst"), 2)
	srv, err := receiver.New(receiver.Options{Logger: quiet(), HelloTimeout: time.Hour,
		Resolve: func(string, string) (*engine.Region, error) { return dst, nil }})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop, err := srv.Serve(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	defer func() {
		select {
		case <-stopped:
		case <-time.After(time.Minute):
			t.Error("stop never returned")
		}
	}()
	c := dial(t, addr) // says nothing
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Streams == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream never reached the receiver")
		}
		time.Sleep(time.Millisecond)
	}
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		stopped <- err
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		c.close() // lets stop return
		t.Fatal("stop waited for a stream that had not said hello")
	}
}
