package processor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"pgregory.net/rapid"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// tb is what the helpers need of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// point is one non-null value of a series, comparable.
type point struct {
	Device, M string
	T         int64
	V         any
}

func (p point) String() string { return fmt.Sprintf("%s.%s@%d=%v", p.Device, p.M, p.T, p.V) }

// pointsOf lists a tablet's non-null values.
func pointsOf(t *tsfile.Tablet) []point {
	var out []point
	ts := t.Times()
	for c, col := range t.Columns() {
		arr := t.Rec.Column(c + 1)
		for r := range ts {
			if v := tsfile.Value(arr, r); v != nil {
				out = append(out, point{t.Device, col.Name, ts[r], v})
			}
		}
	}
	return out
}

func sortPoints(ps []point) []point {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Device != b.Device {
			return a.Device < b.Device
		}
		if a.M != b.M {
			return a.M < b.M
		}
		return a.T < b.T
	})
	return ps
}

func equalPoints(t tb, what string, got, want []point) {
	t.Helper()
	got, want = sortPoints(got), sortPoints(want)
	if len(got) != len(want) {
		t.Fatalf("%s: %d points, want %d\ngot  %v\nwant %v", what, len(got), len(want), head(got), head(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: point %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

func head(ps []point) []point {
	if len(ps) > 20 {
		return ps[:20]
	}
	return ps
}

// row is one row to build a tablet from: a time and one value (or nil) per column.
type row struct {
	T    int64
	Vals []any
}

func makeTablet(t tb, device string, cols []tsfile.Column, rows []row) *tsfile.Tablet {
	t.Helper()
	b := tsfile.NewTabletBuilder(memory.DefaultAllocator, device, cols)
	defer b.Release()
	for _, r := range rows {
		if err := b.AppendRow(r.T, r.Vals...); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

var allCols = []tsfile.Column{
	{Name: "a", Type: tsfile.Int64}, {Name: "b", Type: tsfile.Double}, {Name: "c", Type: tsfile.Text},
	{Name: "d", Type: tsfile.Boolean}, {Name: "e", Type: tsfile.Int32}, {Name: "f", Type: tsfile.Float},
}

// drawValue draws a value of type dt, or nil (null) now and then.
func drawValue(rt *rapid.T, dt tsfile.DataType, label string) any {
	if rapid.IntRange(0, 5).Draw(rt, label+"null") == 0 {
		return nil
	}
	switch dt {
	case tsfile.Int64:
		return int64(rapid.IntRange(-20, 20).Draw(rt, label))
	case tsfile.Int32:
		return int32(rapid.IntRange(-20, 20).Draw(rt, label))
	case tsfile.Double:
		return float64(rapid.IntRange(-80, 80).Draw(rt, label)) / 4
	case tsfile.Float:
		return float32(rapid.IntRange(-80, 80).Draw(rt, label)) / 4
	case tsfile.Text:
		return rapid.SampledFrom([]string{"on", "off", "idle", ""}).Draw(rt, label)
	case tsfile.Boolean:
		return rapid.Bool().Draw(rt, label)
	}
	return nil
}

// drawTablet draws a tablet of device with a random subset of allCols; times strictly
// increasing from *next (advanced), or in random order when unsorted.
func drawTablet(rt *rapid.T, device string, next *int64, unsorted bool) *tsfile.Tablet {
	var cols []tsfile.Column
	for _, c := range allCols {
		if rapid.Bool().Draw(rt, "has-"+c.Name) {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		cols = allCols[:1]
	}
	n := rapid.IntRange(1, 12).Draw(rt, "rows")
	rows := make([]row, n)
	for i := range rows {
		*next += int64(rapid.IntRange(1, 7).Draw(rt, "step"))
		rows[i].T = *next
		for _, c := range cols {
			rows[i].Vals = append(rows[i].Vals, drawValue(rt, c.Type, c.Name))
		}
	}
	if unsorted {
		perm := rapid.Permutation(rows).Draw(rt, "perm")
		rows = perm
	}
	return makeTablet(rt, device, cols, rows)
}

// run passes events through p and returns every output (outputs hold their own references;
// release them with releaseAll).
func run(t tb, p pipe.Processor, evs ...*pipe.Event) []*pipe.Event {
	t.Helper()
	var outs []*pipe.Event
	for _, e := range evs {
		err := p.Process(context.Background(), e, func(o *pipe.Event) { outs = append(outs, o) })
		if err != nil {
			t.Fatal(err)
		}
	}
	return outs
}

func tabletEvent(tb *tsfile.Tablet, origin uint32, idx uint64) *pipe.Event {
	return &pipe.Event{Kind: pipe.KindTablet, Tablet: tb, Origin: origin, OriginIndex: idx, MinIndex: idx, MaxIndex: idx,
		Progress: pipe.ProgressIndex{origin: idx}}
}

// outPoints lists the points of the tablet outputs.
func outPoints(outs []*pipe.Event) []point {
	var ps []point
	for _, o := range outs {
		if o.Kind == pipe.KindTablet {
			ps = append(ps, pointsOf(o.Tablet)...)
		}
	}
	return ps
}

// releaseOutputs releases the outputs that are not one of the inputs.
func releaseOutputs(outs []*pipe.Event, ins ...*pipe.Event) {
	in := map[*pipe.Event]bool{}
	for _, e := range ins {
		in[e] = true
	}
	for _, o := range outs {
		if !in[o] {
			o.Release()
		}
	}
}

// writeFile writes tablets (one per device, sorted) as a TsFile and returns a file event
// for it.
func writeFile(t testing.TB, dir string, tablets []*tsfile.Tablet, dels []engine.IndexedDeletion) *pipe.Event {
	t.Helper()
	var data []tsfile.DeviceData
	for _, tb := range tablets {
		data = append(data, tsfile.DeviceData{Device: tb.Device, Rec: tb.Rec})
	}
	path := filepath.Join(dir, fmt.Sprintf("f%d.tsfile", len(tablets)))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := tsfile.WriteFile(f, tsfile.FileMeta{Region: "src", Progress: map[uint32]uint64{1: 50}, MinIndex: 10, MaxIndex: 50}, data, tsfile.WriteOptions{Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	info := engine.FileInfo{Name: filepath.Base(path), MinTime: meta.MinTime, MaxTime: meta.MaxTime, Rows: meta.Rows, Points: meta.Points, MinIndex: 10, MaxIndex: 50}
	return &pipe.Event{Kind: pipe.KindTsFile, MinIndex: 10, MaxIndex: 50, Progress: pipe.ProgressIndex{1: 50},
		File: &pipe.FileRef{Path: path, Info: info, MinTime: minInt, MaxTime: maxInt, Deletions: dels}}
}

const (
	minInt = -1 << 63
	maxInt = 1<<63 - 1
)
