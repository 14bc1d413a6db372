package engine

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/tsfile"
)

func openTest(t *testing.T, dir string, mod ...func(*Options)) *Region {
	t.Helper()
	o := Options{Dir: dir, Durability: wal.Batch, FlushAge: -1}
	for _, m := range mod {
		m(&o)
	}
	r, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return r
}

func tab(t *testing.T, dev string, cols []tsfile.Column, rows ...[]any) *tsfile.Tablet {
	t.Helper()
	b := tsfile.NewTabletBuilder(nil, dev, cols)
	defer b.Release()
	for _, row := range rows {
		if err := b.AppendRow(row[0].(int64), row[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

var tempCol = []tsfile.Column{{Name: "temp", Type: tsfile.Double}}

// points returns device -> time -> measurement -> value of a scan.
type fataler interface {
	Helper()
	Fatalf(string, ...any)
}

func points(t fataler, r *Region, q Query) map[string]map[int64]map[string]any {
	t.Helper()
	out := map[string]map[int64]map[string]any{}
	err := r.Scan(q, func(dev string, rec arrow.Record) error {
		ts := rec.Column(0)
		for i := 0; i < int(rec.NumRows()); i++ {
			tm := tsfile.Value(ts, i).(int64)
			for c := 1; c < int(rec.NumCols()); c++ {
				v := tsfile.Value(rec.Column(c), i)
				if v == nil {
					continue
				}
				if out[dev] == nil {
					out[dev] = map[int64]map[string]any{}
				}
				if out[dev][tm] == nil {
					out[dev][tm] = map[string]any{}
				}
				out[dev][tm][rec.Schema().Field(c).Name] = v
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}

func mustWrite(t *testing.T, r *Region, tb *tsfile.Tablet) uint64 {
	t.Helper()
	idx, err := r.Write(tb)
	tb.Release()
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return idx
}

func TestWriteScanFlushReopen(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir)
	i1 := mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}, []any{int64(2), 2.0}))
	i2 := mustWrite(t, r, tab(t, "root.db.d2", tempCol, []any{int64(1), 10.0}))
	if i1 != 1 || i2 != 2 {
		t.Fatalf("indexes %d %d", i1, i2)
	}
	got := points(t, r, Query{})
	if got["root.db.d1"][2]["temp"] != 2.0 || got["root.db.d2"][1]["temp"] != 10.0 {
		t.Fatalf("scan before flush: %v", got)
	}
	d1, _ := r.Digest()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Files()); n != 1 {
		t.Fatalf("files after flush: %d", n)
	}
	// overwrite in the memtable: last write wins over the file
	mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(2), 20.0}, []any{int64(3), 3.0}))
	got = points(t, r, Query{})
	if got["root.db.d1"][2]["temp"] != 20.0 || got["root.db.d1"][1]["temp"] != 1.0 {
		t.Fatalf("overwrite: %v", got)
	}
	d2, _ := r.Digest()
	if d1 == d2 || d2.Points != 4 {
		t.Fatalf("digest %v %v", d1, d2)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = openTest(t, dir)
	defer r.Close()
	d3, err := r.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d3 != d2 {
		t.Fatalf("digest after reopen %v, want %v", d3, d2)
	}
	if r.LastIndex() != 3 {
		t.Fatalf("last index after reopen %d", r.LastIndex())
	}
	if idx := mustWrite(t, r, tab(t, "root.db.d3", tempCol, []any{int64(1), 1.0})); idx != 4 {
		t.Fatalf("index after reopen %d", idx)
	}
	if errs := VerifyDir(dir); len(errs) != 0 {
		t.Fatalf("verify: %v", errs)
	}
}

func TestTypeConflict(t *testing.T) {
	r := openTest(t, t.TempDir())
	defer r.Close()
	mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}))
	tb := tab(t, "root.db.d2", []tsfile.Column{{Name: "temp", Type: tsfile.Int64}}, []any{int64(1), int64(1)})
	defer tb.Release()
	_, err := r.Write(tb)
	var tc *TypeConflictError
	if !errors.As(err, &tc) || tc.Have != tsfile.Double || tc.Got != tsfile.Int64 || tc.Device != "root.db.d2" {
		t.Fatalf("want type conflict, got %v", err)
	}
	if want := "type conflict: root.db.d2.temp is DOUBLE, this write has INT64"; err.Error() != want {
		t.Fatalf("message %q", err)
	}
}

func TestDeleteTombstones(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir)
	cols := []tsfile.Column{{Name: "a", Type: tsfile.Int64}, {Name: "b", Type: tsfile.Int64}}
	mustWrite(t, r, tab(t, "root.db.d1", cols, []any{int64(1), int64(1), int64(1)}, []any{int64(2), int64(2), int64(2)}, []any{int64(3), int64(3), int64(3)}))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, r, tab(t, "root.db.d1", cols, []any{int64(4), int64(4), int64(4)}))
	// deletes a in [2,4]: file data via tombstone, memtable data in place
	if _, err := r.Delete(tsfile.MustPattern("root.db.d1.a"), 2, 4); err != nil {
		t.Fatal(err)
	}
	// a write after the deletion survives it
	mustWrite(t, r, tab(t, "root.db.d1", cols, []any{int64(3), int64(30), nil}))
	check := func(r *Region) {
		got := points(t, r, Query{})["root.db.d1"]
		if got[1]["a"] != int64(1) || got[2]["a"] != nil || got[3]["a"] != int64(30) || got[4]["a"] != nil {
			t.Fatalf("a after delete: %v", got)
		}
		if got[2]["b"] != int64(2) || got[4]["b"] != int64(4) {
			t.Fatalf("b must survive: %v", got)
		}
	}
	check(r)
	d1, _ := r.Digest()
	r.Close()
	r = openTest(t, dir)
	check(r)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	check(r)
	d2, _ := r.Digest()
	if d1 != d2 {
		t.Fatalf("digest changed across reopen+flush: %v %v", d1, d2)
	}
	r.Close()
	r = openTest(t, dir)
	defer r.Close()
	check(r)
}

func TestPatternAndTimeScan(t *testing.T) {
	r := openTest(t, t.TempDir())
	defer r.Close()
	cols := []tsfile.Column{{Name: "temp", Type: tsfile.Double}, {Name: "state", Type: tsfile.Text}}
	for _, dev := range []string{"root.f.l1.p1", "root.f.l1.p2", "root.f.l2.p1"} {
		mustWrite(t, r, tab(t, dev, cols, []any{int64(10), 1.0, "a"}, []any{int64(20), 2.0, "b"}, []any{int64(30), 3.0, nil}))
	}
	got := points(t, r, Query{Pattern: tsfile.MustPattern("root.f.*.p1"), MinTime: 15, MaxTime: 30})
	if len(got) != 2 || len(got["root.f.l1.p1"]) != 2 || got["root.f.l2.p1"][30]["temp"] != 3.0 {
		t.Fatalf("pattern scan: %v", got)
	}
	got = points(t, r, Query{Pattern: tsfile.MustPattern("root.f.**"), Measurements: []string{"state"}})
	if len(got["root.f.l1.p2"]) != 2 {
		t.Fatalf("measurement scan: %v", got)
	}
}

func TestSubscribe(t *testing.T) {
	r := openTest(t, t.TempDir(), func(o *Options) { o.RecentBytes = 1 })
	defer r.Close()
	for i := 0; i < 5; i++ {
		mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(i), float64(i)}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// from 1: entries come from disk (the memory window holds one entry)
	sub := r.Subscribe(1)
	defer sub.Close()
	for i := 1; i <= 5; i++ {
		e, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e.Index != uint64(i) || e.Tablet.Times()[0] != int64(i-1) {
			t.Fatalf("entry %d: %+v", i, e)
		}
		e.Release()
	}
	// a live entry arrives
	go func() {
		tb := tab(t, "root.db.d1", tempCol, []any{int64(100), 1.0})
		r.Write(tb)
		tb.Release()
	}()
	e, err := sub.Next(ctx)
	if err != nil || e.Index != 6 {
		t.Fatalf("live entry: %v %+v", err, e)
	}
	e.Release()
	// after a flush with no pin the old segments go away
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	sub2 := r.Subscribe(1)
	defer sub2.Close()
	if _, err := sub2.Next(ctx); !errors.Is(err, ErrCompacted) {
		t.Fatalf("want ErrCompacted, got %v", err)
	}
}

func TestPinKeepsWAL(t *testing.T) {
	r := openTest(t, t.TempDir())
	defer r.Close()
	pin := r.PinWAL(1)
	mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	w, _ := r.PinnedBytes()
	if w == 0 {
		t.Fatal("pinned wal bytes = 0 with a pin at 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub := r.Subscribe(1)
	e, err := sub.Next(ctx)
	sub.Close()
	if err != nil || e.Index != 1 {
		t.Fatalf("pinned entry: %v", err)
	}
	e.Release()
	pin.Release()
	if w, _ := r.PinnedBytes(); w != 0 {
		t.Fatalf("pinned after release: %d", w)
	}
	fp, err := r.PinFile(r.Files()[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, f := r.PinnedBytes(); f != r.Files()[0].Size {
		t.Fatalf("pinned file bytes %d", f)
	}
	fp.Release()
}

func TestSealListenerAndAutoFlush(t *testing.T) {
	r := openTest(t, t.TempDir(), func(o *Options) { o.MemtableSize = 1 })
	defer r.Close()
	got := make(chan FileInfo, 10)
	remove := r.AddSealListener(func(fi FileInfo) { got <- fi })
	defer remove()
	mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}))
	select {
	case fi := <-got:
		if fi.MinIndex != 1 || fi.MaxIndex != 1 || fi.Points != 1 {
			t.Fatalf("seal info %+v", fi)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no seal notification")
	}
}

func TestCorruptFileRefused(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir)
	mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	name := r.Files()[0].Name
	r.Close()
	flipByte(t, filepath.Join(dir, name), 100)
	if _, err := Open(Options{Dir: dir}); err == nil {
		t.Fatal("open with a corrupt file succeeded")
	}
	if errs := VerifyDir(dir); len(errs) != 1 {
		t.Fatalf("verify: %v", errs)
	}
	r2, err := Open(Options{Dir: dir, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if len(r2.Files()) != 0 {
		t.Fatal("repair kept the corrupt file")
	}
}

var _ = math.MaxInt64
