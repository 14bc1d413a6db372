package parquet

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/pipe/processor"
	"github.com/weir-dev/weir/tsfile"
)

// Files the source region received from another replica (replication by fast or iotv2, a
// peer pipe into the node) have no WAL index of their own; a forwarding source ships them
// among the local writes. These tests drive a real source over a region holding such files
// by hand, so that restarts fall exactly where they hurt.

// recvRegion is a source region "src" (origin 1) and another replica's region (origin 9)
// whose sealed files src receives.
type recvRegion struct {
	src, other *engine.Region
	want       []row // every row src holds
	next       int64 // the next row's time
}

func openRecvRegion(t testing.TB) *recvRegion {
	dir := t.TempDir()
	r := &recvRegion{
		src:   pipetest.OpenRegion(t, engine.Options{Dir: filepath.Join(dir, "src"), Name: "src", Origin: 1, Durability: wal.Sync, FlushAge: -1}),
		other: pipetest.OpenRegion(t, engine.Options{Dir: filepath.Join(dir, "other"), Name: "other", Origin: 9, Durability: wal.Sync, FlushAge: -1}),
		next:  1_700_000_000_000,
	}
	t.Cleanup(func() { r.src.Close(); r.other.Close() })
	return r
}

func (r *recvRegion) write(t testing.TB, to *engine.Region, device string, n int) {
	t.Helper()
	tb, rows := makeTablet(t, device, testCols, r.next, 1000, n)
	defer tb.Release()
	r.next += int64(n) * 1000
	if _, err := to.Write(tb); err != nil {
		t.Fatal(err)
	}
	r.want = append(r.want, rows...)
}

// local writes n rows of device into src (one WAL index).
func (r *recvRegion) local(t testing.TB, device string, n int) { r.write(t, r.src, device, n) }

// receive writes n rows of each device into the other replica, seals them into a file and
// loads that file into src.
func (r *recvRegion) receive(t testing.TB, n int, devices ...string) engine.FileInfo {
	t.Helper()
	for _, d := range devices {
		r.write(t, r.other, d, n)
	}
	if err := r.other.Flush(); err != nil {
		t.Fatal(err)
	}
	fs := r.other.Files()
	f := fs[len(fs)-1]
	info, err := r.src.LoadFile(r.other.FilePath(f.Name), f.Progress)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// source is one run of a wal source over a region, driven by hand.
type source struct {
	x pipe.Extractor
}

func openSource(t testing.TB, r *engine.Region, state []byte) *source {
	t.Helper()
	x, err := pipe.NewExtractor("wal")
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Open(context.Background(), &pipe.Env{Pipe: "export", Region: r, Params: pipe.NewParams(nil), State: state, Logger: pipetest.Quiet()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return &source{x: x}
}

// next returns the source's next event (failing the test after 20 s without one).
func (s *source) next(t testing.TB) *pipe.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := s.x.Next(ctx)
	if err != nil {
		t.Fatalf("source: %v", err)
	}
	return e
}

func isReceived(e *pipe.Event) bool {
	return e.Kind == pipe.KindTsFile && e.File != nil && e.File.Info.MaxIndex == 0
}

// sendAll sends n events of s to c one at a time (each in finished files when Send
// returns), commits them, and returns the source state after the last.
func sendAll(t testing.TB, s *source, c *Connector, n int, state []byte) []byte {
	t.Helper()
	for i := 0; i < n; i++ {
		e := s.next(t)
		if err := c.Send(context.Background(), []*pipe.Event{e}); err != nil {
			t.Fatalf("event %d (%v, index %d..%d): %v", i, e.Kind, e.MinIndex, e.MaxIndex, err)
		}
		state = s.x.Committed(e)
		e.Release()
	}
	return state
}

// A received file shipped after a restart, right after the local write whose rows a
// finished file holds, is exported (it is not taken for another output of that write).
func TestReceivedFileAfterRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			r := openRecvRegion(t)
			r.local(t, "root.src.l", 10)
			r.receive(t, 10, "root.src.r")
			r.local(t, "root.src.l", 10)
			dir := t.TempDir()

			s := openSource(t, r.src, nil)
			c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
			state := sendAll(t, s, c, 1, nil) // the first local write: finished and committed
			e := s.next(t)
			if !isReceived(e) || !e.FromReceivedFile() || e.MaxIndex != 1 || e.Epoch != e.File.Info.Version {
				t.Fatalf("second event: %v %d..%d epoch %d, want the received file", e.Kind, e.MinIndex, e.MaxIndex, e.Epoch)
			}
			where := [2]uint64{e.MaxIndex, e.Epoch}
			if crash { // its rows in the open file when the process dies
				if err := c.SendAsync(context.Background(), []*pipe.Event{e}, func(...uint64) {}); err != nil {
					t.Fatal(err)
				}
				c.crash()
			} else { // a clean stop before it reached the sink
				c.Close()
			}
			e.Release()
			s.x.Close()

			s = openSource(t, r.src, state)
			c = openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
			defer c.Close()
			e = s.next(t) // the replay ships it at the same place
			if !e.FromReceivedFile() || [2]uint64{e.MaxIndex, e.Epoch} != where {
				t.Fatalf("replayed: %v %d..%d epoch %d, want index and epoch %v", e.Kind, e.MinIndex, e.MaxIndex, e.Epoch, where)
			}
			if err := c.Send(context.Background(), []*pipe.Event{e}); err != nil {
				t.Fatal(err)
			}
			state = s.x.Committed(e)
			e.Release()
			sendAll(t, s, c, 1, state)
			sameRows(t, readRows(t, dir), r.want)
		})
	}
}

// A file received before the region took any write of its own is exported, and a replay
// of it from the start writes nothing again.
func TestReceivedFileBeforeAnyLocalWrite(t *testing.T) {
	r := openRecvRegion(t)
	f := r.receive(t, 10, "root.src.r")
	r.local(t, "root.src.l", 10)
	dir := t.TempDir()
	s := openSource(t, r.src, nil)
	c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
	sendAll(t, s, c, 2, nil)
	c.Close()
	sameRows(t, readRows(t, dir), r.want)
	files := finalFiles(t, dir)
	want := FileName{Region: "src", First: 0, Last: Position{Index: 0, Received: f.Version}}.String()
	if len(files) != 2 || files[0] != want {
		t.Fatalf("files %v, want %s first", files, want)
	}
	before := snapshot(t, dir)

	s.x.Close()
	s = openSource(t, r.src, nil)
	c = openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
	defer c.Close()
	sendAll(t, s, c, 2, nil)
	sameFiles(t, snapshot(t, dir), before)
}

// splitFile is a processor that reads every TsFile and emits its rows as tablets (one per
// record batch), the way processors that look at rows do.
func splitFile(t testing.TB, e *pipe.Event) []*pipe.Event {
	t.Helper()
	var out []*pipe.Event
	err := processor.Map(context.Background(), e, func(o *pipe.Event) { out = append(out, o) }, 1, nil,
		func(tb *tsfile.Tablet) (*tsfile.Tablet, error) { return tb, nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The outputs a processor derives from a received file, split over finished files by a
// roll: a replay after a crash writes exactly those not in a finished file.
func TestReceivedFileOutputsReplay(t *testing.T) {
	r := openRecvRegion(t)
	r.local(t, "root.src.l", 10)
	r.receive(t, 10, "root.src.a", "root.src.b", "root.src.c")
	r.local(t, "root.src.l", 10)
	dir := t.TempDir()
	s := openSource(t, r.src, nil)
	c := openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
	state := sendAll(t, s, c, 1, nil)
	e := s.next(t)
	if !isReceived(e) {
		t.Fatalf("second event: %v %d..%d, want the received file", e.Kind, e.MinIndex, e.MaxIndex)
	}
	outs := splitFile(t, e)
	if len(outs) != 3 {
		t.Fatalf("%d outputs", len(outs))
	}
	for _, o := range outs {
		o.CommitID = 2
	}
	if err := c.Send(context.Background(), outs[:1]); err != nil { // finished
		t.Fatal(err)
	}
	if err := c.SendAsync(context.Background(), outs[1:2], func(...uint64) {}); err != nil {
		t.Fatal(err)
	}
	c.crash() // the second output's rows were in the open file
	for _, o := range outs {
		o.Release()
	}
	e.Release()
	s.x.Close()

	s = openSource(t, r.src, state)
	c = openConn(t, New(Options{}), params(dir, ParamRollInterval, "0"))
	defer c.Close()
	e = s.next(t)
	outs = splitFile(t, e)
	for _, o := range outs {
		o.CommitID = 1
	}
	if err := c.Send(context.Background(), outs); err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		o.Release()
	}
	state = s.x.Committed(e)
	e.Release()
	sendAll(t, s, c, 1, state)
	sameRows(t, readRows(t, dir), r.want)
}

// failed reports whether a task of the pipe failed for good.
func failed(st pipe.Status) bool {
	for _, r := range st.Regions {
		if r.Phase == pipe.PhaseFailed {
			return true
		}
	}
	return false
}

// A whole pipe over a region whose history interleaves received files (the first before
// any local write) with local writes, stopped and started at random moments while it
// exports: every row is exported exactly once.
func TestPipeReceivedFilesRestarts(t *testing.T) {
	for _, by := range []string{"none", "device"} {
		t.Run(by, func(t *testing.T) {
			rng := rand.New(rand.NewSource(time.Now().UnixNano()))
			r := openRecvRegion(t)
			devs := []string{"root.src.a", "root.src.b", "root.src.c"}
			for i := 0; i < 60; i++ {
				if i%5 == 0 {
					r.receive(t, 1+rng.Intn(20), devs[:1+rng.Intn(len(devs))]...)
				} else {
					r.local(t, devs[rng.Intn(len(devs))], 1+rng.Intn(20))
				}
			}
			dir := t.TempDir()
			mgr, err := pipe.NewManager(pipetest.ManagerOptions(filepath.Join(dir, "pipes"), r.src))
			if err != nil {
				t.Fatal(err)
			}
			defer mgr.Close()
			out := filepath.Join(dir, "out")
			pipetest.CreatePipe(t, mgr, fmt.Sprintf("name: export\nsource: {plugin: wal}\nsink: {plugin: parquet, path: %q, partition-by: %s, batch.max-events: 2, roll-interval: 2ms, roll-size: 4KiB}\n", out, by), false)
			for i := 0; i < 6; i++ {
				// let it export some, at most until caught up
				pipetest.WaitStatus(t, mgr, "export", time.Duration(1+rng.Intn(20))*time.Millisecond, pipetest.CaughtUp)
				if err := mgr.Stop("export"); err != nil {
					t.Fatal(err)
				}
				if err := mgr.Start("export"); err != nil {
					t.Fatal(err)
				}
			}
			st, ok := pipetest.WaitStatus(t, mgr, "export", time.Minute, func(st pipe.Status) bool {
				return pipetest.CaughtUp(st) && st.CommittedEvents > 0 || failed(st)
			})
			if !ok || failed(st) {
				t.Fatalf("pipe did not catch up: %+v", st)
			}
			sameRows(t, readRows(t, out), r.want)
		})
	}
}
