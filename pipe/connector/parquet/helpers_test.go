package parquet

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	pq "github.com/parquet-go/parquet-go"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// row is one exported row, for comparisons.
type row struct {
	Device string
	Time   int64
	Vals   string // name=value pairs of the non-null values, sorted by name
}

func (r row) String() string { return fmt.Sprintf("%s@%d{%s}", r.Device, r.Time, r.Vals) }

func formatVals(m map[string]any) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s=%v(%T) ", n, m[n], m[n])
	}
	return b.String()
}

var testCols = []tsfile.Column{
	{Name: "b", Type: tsfile.Boolean}, {Name: "i32", Type: tsfile.Int32}, {Name: "i64", Type: tsfile.Int64},
	{Name: "f32", Type: tsfile.Float}, {Name: "f64", Type: tsfile.Double}, {Name: "s", Type: tsfile.Text},
}

// makeTablet builds a tablet of device with n rows from t0 (step ms), nulls here and there;
// it returns the rows it holds.
func makeTablet(t testing.TB, device string, cols []tsfile.Column, t0, step int64, n int) (*tsfile.Tablet, []row) {
	t.Helper()
	b := tsfile.NewTabletBuilder(nil, device, cols)
	defer b.Release()
	var rows []row
	for i := 0; i < n; i++ {
		ts := t0 + int64(i)*step
		vals := make([]any, len(cols))
		m := map[string]any{}
		for j, c := range cols {
			if (i+j)%5 == 3 {
				continue // null
			}
			var v any
			switch c.Type {
			case tsfile.Boolean:
				v = (ts+int64(j))%2 == 0
			case tsfile.Int32:
				v = int32(ts%1000) - 500
			case tsfile.Int64:
				v = ts * 3
			case tsfile.Float:
				v = float32(ts) / 4
			case tsfile.Double:
				v = float64(ts) / 7
			case tsfile.Text:
				v = fmt.Sprintf("v%d", ts%13)
			}
			vals[j], m[c.Name] = v, v
		}
		if err := b.AppendRow(ts, vals...); err != nil {
			t.Fatal(err)
		}
		if len(m) > 0 { // a row without values is no point: not exported
			rows = append(rows, row{Device: device, Time: ts, Vals: formatVals(m)})
		}
	}
	tb, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return tb, rows
}

// tabletEvent wraps tb as the event of WAL index idx.
func tabletEvent(tb *tsfile.Tablet, idx uint64) *pipe.Event {
	return &pipe.Event{Kind: pipe.KindTablet, CommitID: idx, Region: "r1", MinIndex: idx, MaxIndex: idx,
		Progress: pipe.ProgressIndex{1: idx}, Tablet: tb, Bytes: 100}
}

// workload makes n tablet events over devs devices, tablet i at WAL index i+1; rows of a
// device continue its time line, so every (device, time) is distinct.
func workload(t testing.TB, n, devs, rowsPer int, cols []tsfile.Column) ([]*pipe.Event, []row) {
	var evs []*pipe.Event
	var rows []row
	next := make([]int64, devs)
	for d := range next {
		next[d] = 1_700_000_000_000 + int64(d)
	}
	for i := 0; i < n; i++ {
		d := i % devs
		tb, r := makeTablet(t, fmt.Sprintf("root.db.d%d", d), cols, next[d], 7_200_000, rowsPer) // 2 h apart: several days
		next[d] += int64(rowsPer) * 7_200_000
		evs = append(evs, tabletEvent(tb, uint64(i+1)))
		rows = append(rows, r...)
	}
	t.Cleanup(func() {
		for _, e := range evs {
			e.Release()
		}
	})
	return evs, rows
}

func params(dir string, kv ...string) pipe.Params {
	m := map[string]string{ParamPath: dir}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return pipe.NewParams(m)
}

func openConn(t testing.TB, c *Connector, p pipe.Params) *Connector {
	t.Helper()
	if err := c.Open(context.Background(), &pipe.Env{Pipe: "p", Params: p}); err != nil {
		t.Fatal(err)
	}
	return c
}

// acker records acknowledgements.
type acker struct {
	mu      sync.Mutex
	ids     map[uint64]int
	outputs map[uint64]int // acks expected of an id (outputs of one input); default 1
	ch      chan struct{}
}

func newAcker() *acker {
	return &acker{ids: map[uint64]int{}, outputs: map[uint64]int{}, ch: make(chan struct{}, 1)}
}

func (a *acker) ack(ids ...uint64) {
	a.mu.Lock()
	for _, id := range ids {
		a.ids[id]++
	}
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
}

func (a *acker) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

// waitAcks waits (bounded) until n distinct ids are acknowledged, each once per output.
func (a *acker) waitAcks(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		a.mu.Lock()
		got := 0
		for id, k := range a.ids {
			want := max(a.outputs[id], 1)
			if k > want {
				a.mu.Unlock()
				t.Fatalf("id %d acknowledged %d times, want %d", id, k, want)
			}
			if k == want {
				got++
			}
		}
		a.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-a.ch:
		case <-deadline:
			t.Fatalf("%d of %d events acknowledged", got, n)
		}
	}
}

// finalFiles lists the finished files under dir (relative paths, sorted).
func finalFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, fileExt) {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// tempFiles lists the temporary files under dir.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, tempExt) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// readRows reads every finished file under dir with parquet-go (files in name order, rows
// in file order) and checks each file's schema.
func readRows(t testing.TB, dir string) []row {
	t.Helper()
	var rows []row
	for _, rel := range finalFiles(t, dir) {
		rows = append(rows, readFile(t, filepath.Join(dir, rel))...)
	}
	return rows
}

func readFile(t testing.TB, path string) []row {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := pq.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	fields := pf.Schema().Fields()
	if len(fields) < 2 || fields[0].Name() != DeviceColumn || fields[1].Name() != TimeColumn {
		t.Fatalf("%s: schema %v", path, pf.Schema())
	}
	if lt := fields[1].Type().LogicalType(); lt == nil || !strings.HasPrefix(lt.String(), "TIMESTAMP(") || !fields[1].Required() {
		t.Fatalf("%s: time column is %v", path, fields[1].Type())
	}
	for _, fl := range fields[2:] {
		if !fl.Optional() {
			t.Fatalf("%s: column %s is not optional", path, fl.Name())
		}
	}
	var rows []row
	for _, rg := range pf.RowGroups() {
		rr := rg.Rows()
		buf := make([]pq.Row, 64)
		for {
			n, err := rr.ReadRows(buf)
			for _, r := range buf[:n] {
				rows = append(rows, toRow(t, fields, r))
			}
			if err != nil {
				break
			}
		}
		rr.Close()
	}
	if int64(len(rows)) != pf.NumRows() {
		t.Fatalf("%s: read %d rows of %d", path, len(rows), pf.NumRows())
	}
	return rows
}

func toRow(t testing.TB, fields []pq.Field, r pq.Row) row {
	var out row
	m := map[string]any{}
	for _, v := range r {
		ci := v.Column()
		name := fields[ci].Name()
		switch {
		case ci == 0:
			out.Device = string(v.ByteArray())
		case ci == 1:
			out.Time = v.Int64()
		case v.IsNull():
		default:
			var x any
			switch v.Kind() {
			case pq.Boolean:
				x = v.Boolean()
			case pq.Int32:
				x = v.Int32()
			case pq.Int64:
				x = v.Int64()
			case pq.Float:
				x = v.Float()
			case pq.Double:
				x = v.Double()
			case pq.ByteArray:
				x = string(v.ByteArray())
			default:
				t.Fatalf("column %s: kind %v", name, v.Kind())
			}
			m[name] = x
		}
	}
	out.Vals = formatVals(m)
	return out
}

// sameRows compares two row lists as multisets, reporting a few differences.
func sameRows(t testing.TB, got, want []row) {
	t.Helper()
	count := map[row]int{}
	for _, r := range want {
		count[r]++
	}
	for _, r := range got {
		count[r]--
	}
	var diffs []string
	for r, n := range count {
		if n != 0 {
			diffs = append(diffs, fmt.Sprintf("%+d %v", -n, r))
		}
	}
	sort.Strings(diffs)
	if len(got) != len(want) || len(diffs) > 0 {
		if len(diffs) > 10 {
			diffs = diffs[:10]
		}
		t.Fatalf("read %d rows, want %d; differences (+extra, -missing): %s", len(got), len(want), strings.Join(diffs, "; "))
	}
}

var _ = math.MaxInt64

// concat joins tablets of one device into one record.
func concat(t testing.TB, tbs []*tsfile.Tablet) arrow.Record {
	t.Helper()
	b := tsfile.NewTabletBuilder(nil, tbs[0].Device, tbs[0].Columns())
	defer b.Release()
	for _, tb := range tbs {
		for i, ts := range tb.Times() {
			vals := make([]any, tb.Rec.NumCols()-1)
			for k := range vals {
				vals[k] = tsfile.Value(tb.Rec.Column(k+1), i)
			}
			if err := b.AppendRow(ts, vals...); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return out.Rec
}
