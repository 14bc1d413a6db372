package extractor

import (
	"context"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/connector/writeback"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// otherRegion opens, until the test ends, a region of another replica (origin 9) whose
// sealed files the tests hand to their source region as received.
func otherRegion(t *testing.T) *engine.Region {
	t.Helper()
	r, err := engine.Open(engine.Options{Dir: t.TempDir(), Name: "other", Origin: 9, Durability: wal.Async, FlushAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A task shipping a region's history ships the files the region received from another
// replica (they have no local WAL range) in their place among the local writes, and goes
// on doing so after a restart from its saved state.
func TestHistoryShipsReceivedFilesAcrossRestart(t *testing.T) {
	p := openPair(t, 0)
	defer p.close()
	other := otherRegion(t)
	cols := []tsfile.Column{{Name: "a", Type: tsfile.Int64}}
	write := func(r *engine.Region, dev string, ts int64) {
		b := tsfile.NewTabletBuilder(nil, dev, cols)
		_ = b.AppendRow(ts, ts)
		pipetest.WriteTablet(t, r, b)
	}
	receive := func(ts int64) {
		write(other, "root.src.r", ts)
		if err := other.Flush(); err != nil {
			t.Fatal(err)
		}
		fs := other.Files()
		f := fs[len(fs)-1]
		if _, err := p.src.LoadFile(other.FilePath(f.Name), f.Progress); err != nil {
			t.Fatal(err)
		}
	}
	write(p.src, "root.src.l", 1)
	receive(2)
	write(p.src, "root.src.l", 3)
	receive(4)
	write(p.src, "root.src.l", 5)

	c := &writeback.Connector{}
	if err := c.Open(context.Background(), newEnv(p, map[string]string{"database": "root.copy"}, nil)); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// ship until the first received file is committed (after the local file before it),
	// then restart from the saved state
	var state []byte
	x := &Extractor{kind: "hybrid"}
	if err := x.Open(ctx, newEnv(p, nil, nil)); err != nil {
		t.Fatal(err)
	}
	for {
		e, err := x.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			continue
		}
		if err := c.Send(ctx, []*pipe.Event{e}); err != nil {
			t.Fatal(err)
		}
		state = x.Committed(e)
		received := e.File != nil && e.File.Info.MaxIndex == 0
		e.Release()
		if received {
			break
		}
	}
	x.Close()
	x = &Extractor{kind: "hybrid"}
	if err := x.Open(ctx, newEnv(p, nil, state)); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	want := digest(t, p.src)
	for i := 0; i < 1000; i++ {
		if got := digest(t, p.dst); got.Points == want.Points {
			return
		}
		nctx, ncancel := context.WithTimeout(ctx, time.Second)
		e, err := x.Next(nctx)
		ncancel()
		if err != nil {
			break
		}
		if err := c.Send(ctx, []*pipe.Event{e}); err != nil {
			t.Fatal(err)
		}
		x.Committed(e)
		e.Release()
	}
	t.Fatalf("copy %+v, source %+v", digest(t, p.dst), want)
}
