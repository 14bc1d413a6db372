package extractor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/connector/writeback"
	"github.com/weir-dev/weir/tsfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// flipSelector returns whatever carrier the test sets, except when files are required.
type flipSelector struct{ want atomic.Int32 }

func (f *flipSelector) Select(in SelectorInput) (Carrier, string) {
	if in.Compacted {
		return File, "compacted"
	}
	w := Carrier(f.want.Load())
	if in.Current == File && in.FileReady && w == Tablet {
		return File, "" // finish the sealed files first
	}
	return w, "test"
}

type pair struct {
	src, dst *engine.Region
}

func openPair(t testing.TB, memsize int64) pair {
	src, err := engine.Open(engine.Options{Dir: t.TempDir(), Name: "src", Origin: 1, Durability: wal.Async, FlushAge: -1, MemtableSize: memsize})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := engine.Open(engine.Options{Dir: t.TempDir(), Name: "dst", Origin: 2, Durability: wal.Async, FlushAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	return pair{src, dst}
}

func (p pair) close() { p.src.Close(); p.dst.Close() }

// oneRow returns a tablet of device root.src.d1 with one row: value ts at time ts.
func oneRow(ts int64) *tsfile.Tablet {
	b := tsfile.NewTabletBuilder(nil, "root.src.d1", []tsfile.Column{{Name: "v", Type: tsfile.Int64}})
	_ = b.AppendRow(ts, ts)
	tb, _ := b.Build()
	b.Release()
	return tb
}

// writeRow writes oneRow(ts) to r.
func writeRow(t testing.TB, r *engine.Region, ts int64) {
	t.Helper()
	tb := oneRow(ts)
	defer tb.Release()
	if _, err := r.Write(tb); err != nil {
		t.Fatal(err)
	}
}

// writeRows writes n tablets of one row each to r, at times 0 to n-1 (one index each).
func writeRows(t testing.TB, r *engine.Region, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		writeRow(t, r, int64(i))
	}
}

func newEnv(p pair, params map[string]string, state []byte) *pipe.Env {
	return &pipe.Env{Pipe: "t", Region: p.src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Params: pipe.NewParams(params), State: state,
		Databases: func(string) (*engine.Region, error) { return p.dst, nil }}
}

// drain moves every available event through the write-back connector and commits it,
// until the extractor has caught up with the source (bounded by count and time).
func drain(t testing.TB, x *Extractor, c *writeback.Connector, src *engine.Region) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var st []byte
	for i := 0; i < 100000; i++ {
		x.mu.Lock()
		done := x.committed >= src.LastIndex() && len(x.queue) == 0
		x.mu.Unlock()
		if done {
			return st
		}
		e, err := x.Next(ctx)
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if err := c.Send(ctx, []*pipe.Event{e}); err != nil {
			t.Fatalf("send: %v", err)
		}
		st = x.Committed(e)
		e.Release()
	}
	t.Fatal("drain did not finish")
	return nil
}

func digest(t testing.TB, r *engine.Region) engine.Digest {
	d, err := r.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestHybridCopyEqualsSource: random writes, overwrites, deletions and flushes on the
// source while the hybrid extractor switches carriers at random and ships into another
// database through write-back; the digests end equal, also across an extractor restart.
func TestHybridCopyEqualsSource(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		p := openPair(t, int64(rapid.IntRange(0, 3000).Draw(rt, "memsize")))
		defer p.close()
		sel := &flipSelector{}
		x := &Extractor{kind: "hybrid"}
		params := map[string]string{}
		if err := x.Open(context.Background(), newEnv(p, params, nil)); err != nil {
			rt.Fatal(err)
		}
		x.sel = sel
		c := &writeback.Connector{}
		if err := c.Open(context.Background(), newEnv(p, map[string]string{"database": "root.copy"}, nil)); err != nil {
			rt.Fatal(err)
		}
		cols := []tsfile.Column{{Name: "a", Type: tsfile.Int64}, {Name: "b", Type: tsfile.Double}}
		var state []byte
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		for s := 0; s < steps; s++ {
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 5:
				dev := fmt.Sprintf("root.src.d%d", rapid.IntRange(0, 2).Draw(rt, "dev"))
				b := tsfile.NewTabletBuilder(nil, dev, cols)
				for i, n := 0, rapid.IntRange(1, 5).Draw(rt, "rows"); i < n; i++ {
					_ = b.AppendRow(int64(rapid.IntRange(0, 15).Draw(rt, "t")), int64(rapid.IntRange(0, 9).Draw(rt, "a")), float64(i))
				}
				tb, err := b.Build()
				b.Release()
				if err != nil {
					rt.Fatal(err)
				}
				if _, err := p.src.Write(tb); err != nil {
					rt.Fatal(err)
				}
				tb.Release()
			case op == 5:
				pat := tsfile.MustPattern(rapid.SampledFrom([]string{"root.src.d1", "root.src.**", "root.src.*.a"}).Draw(rt, "pat"))
				lo := int64(rapid.IntRange(0, 15).Draw(rt, "lo"))
				if _, err := p.src.Delete(pat, lo, lo+int64(rapid.IntRange(0, 5).Draw(rt, "len"))); err != nil {
					rt.Fatal(err)
				}
			case op == 6:
				if err := p.src.Flush(); err != nil {
					rt.Fatal(err)
				}
			case op == 7:
				sel.want.Store(int32(rapid.IntRange(0, 1).Draw(rt, "carrier")))
			case op == 8:
				if Carrier(sel.want.Load()) == File { // files only: the live epoch must be sealed
					if err := p.src.Flush(); err != nil {
						rt.Fatal(err)
					}
				}
				state = drain(t, x, c, p.src)
			case op == 9: // restart the extractor from its committed state
				x.Close()
				x = &Extractor{kind: "hybrid"}
				if err := x.Open(context.Background(), newEnv(p, params, state)); err != nil {
					rt.Fatal(err)
				}
				x.sel = sel
			}
		}
		// to finish, the last epoch must be either streamed or sealed
		if rapid.Bool().Draw(rt, "final-flush") {
			if err := p.src.Flush(); err != nil {
				rt.Fatal(err)
			}
		}
		sel.want.Store(int32(Tablet))
		drain(t, x, c, p.src)
		x.Close()
		ds, dd := digest(t, p.src), digest(t, p.dst)
		if ds != dd {
			rt.Fatalf("digest src %v != dst %v", ds, dd)
		}
	})
}

// TestSelectorDegradesAndReturns: a sink that stops reading makes the hybrid extractor
// switch to files and release its WAL pin; when the sink drains it returns to tablets.
func TestSelectorDegradesAndReturns(t *testing.T) {
	p := openPair(t, 8<<10)
	defer p.close()
	var pending atomic.Int64
	env := newEnv(p, map[string]string{"selector.max-pending-events": "50", "selector.resume-ratio": "0.1"}, nil)
	env.Params = pipe.NewParams(map[string]string{"selector.max-pending-events": "50", "selector.resume-ratio": "0.1", "selector.max-wal-bytes": "1GiB", "selector.max-lag": "1h"})
	env.Pending = func() int { return int(pending.Load()) }
	x := &Extractor{kind: "hybrid"}
	if err := x.Open(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	c := &writeback.Connector{}
	if err := c.Open(context.Background(), newEnv(p, map[string]string{"database": "root.copy"}, nil)); err != nil {
		t.Fatal(err)
	}
	gen := func(n int) {
		for i := 0; i < n; i++ {
			b := tsfile.NewTabletBuilder(nil, "root.src.d1", []tsfile.Column{{Name: "v", Type: tsfile.Int64}})
			for k := 0; k < 100; k++ {
				_ = b.AppendRow(int64(rand.Intn(1e6)), int64(k))
			}
			tb, _ := b.Build()
			b.Release()
			if _, err := p.src.Write(tb); err != nil {
				t.Fatal(err)
			}
			tb.Release()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// a slow sink: events pile up (we hold them without committing)
	gen(10)
	var held []*pipe.Event
	for i := 0; i < 200 && x.Status().Carrier == "tablet"; i++ {
		e, err := x.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, e)
		pending.Store(int64(len(held)))
		if len(held)%5 == 0 {
			gen(5)
		}
	}
	if st := x.Status(); st.Carrier != "tsfile" || st.Switches != 1 {
		t.Fatalf("want a switch to tsfile, got %+v", st)
	}
	if x.walPin != nil {
		t.Fatal("wal pin kept in file mode")
	}
	// the sink catches up
	for _, e := range held {
		if err := c.Send(ctx, []*pipe.Event{e}); err != nil {
			t.Fatal(err)
		}
		x.Committed(e)
		e.Release()
	}
	pending.Store(0)
	if err := p.src.Flush(); err != nil {
		t.Fatal(err)
	}
	gen(3)
	drain(t, x, c, p.src)
	if st := x.Status(); st.Carrier != "tablet" || st.Switches != 2 {
		t.Fatalf("want a return to tablets, got %+v", st)
	}
	if ds, dd := digest(t, p.src), digest(t, p.dst); ds != dd {
		t.Fatalf("digests differ: %v %v", ds, dd)
	}
	var both bool
	for _, c := range x.Epochs() {
		both = both || c == EpochBoth
	}
	if !both {
		t.Logf("epochs: %v", x.Epochs())
	}
}

var _ = os.Getenv

// An epoch partly shipped as tablets when the carrier turns to files is finished on tablets
// (from the WAL), not shipped again whole in its file: no row goes twice. The next epoch
// goes as its file.
func TestPartlyShippedEpochFinishesOnTablets(t *testing.T) {
	p := openPair(t, 64<<20)
	defer p.close()
	sel := &flipSelector{}
	x := &Extractor{kind: "hybrid"}
	if err := x.Open(context.Background(), newEnv(p, nil, nil)); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	x.sel = sel
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := func() *pipe.Event {
		for i := 0; i < 100; i++ {
			e, err := x.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if e != nil && e.Kind != pipe.KindHeartbeat {
				x.Committed(e)
				e.Release() // the fields read below stay
				return e
			}
		}
		t.Fatal("no event")
		return nil
	}
	writeRows(t, p.src, 6) // epoch 1: indexes 1..6
	for i := uint64(1); i <= 3; i++ {
		if e := next(); e.Kind != pipe.KindTablet || e.MaxIndex != i {
			t.Fatalf("event %d: %v %d", i, e.Kind, e.MaxIndex)
		}
	}
	if err := p.src.Flush(); err != nil {
		t.Fatal(err)
	}
	writeRows(t, p.src, 2) // epoch 2: indexes 7, 8
	if err := p.src.Flush(); err != nil {
		t.Fatal(err)
	}
	sel.want.Store(int32(File))
	x.switchTo(File, "test")
	for i := uint64(4); i <= 6; i++ {
		if e := next(); e.Kind != pipe.KindTablet || e.MaxIndex != i {
			t.Fatalf("after the switch, event %d: %v %d", i, e.Kind, e.MaxIndex)
		}
	}
	if e := next(); e.Kind != pipe.KindTsFile || e.MinIndex != 7 || e.MaxIndex != 8 {
		t.Fatalf("epoch 2: %v %d..%d", e.Kind, e.MinIndex, e.MaxIndex)
	}
	for ep, c := range x.Epochs() {
		if c == EpochBoth {
			t.Errorf("epoch %d shipped both ways", ep)
		}
	}
}
