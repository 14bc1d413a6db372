package tsfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"pgregory.net/rapid"
)

// fileTB is what the helpers need of *testing.T, *testing.B, *testing.F and *rapid.T.
type fileTB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// fileDev is a generated device: its columns and, per row, a time and one value per column
// (nil for null).
type fileDev struct {
	name  string
	cols  []Column
	times []int64
	rows  [][]any
}

// record builds the device's input record (also for zero rows).
func (d *fileDev) record(t fileTB) arrow.Record {
	tb := NewTabletBuilder(memory.DefaultAllocator, d.name, d.cols)
	defer tb.Release()
	for i, ts := range d.times {
		if err := tb.AppendRow(ts, d.rows[i]...); err != nil {
			t.Fatal(err)
		}
	}
	return tb.b.NewRecord()
}

func fileGenValue(t *rapid.T, typ DataType, label string) any {
	if rapid.IntRange(0, 3).Draw(t, label+"null") == 0 {
		return nil
	}
	switch typ {
	case Boolean:
		return rapid.Bool().Draw(t, label)
	case Int32:
		return rapid.Int32().Draw(t, label)
	case Int64:
		return rapid.Int64().Draw(t, label)
	case Float:
		return rapid.Float32Range(-1e30, 1e30).Draw(t, label)
	case Double:
		return rapid.Float64Range(-1e300, 1e300).Draw(t, label)
	case Text:
		return rapid.StringN(0, 12, -1).Draw(t, label)
	}
	panic("bad type")
}

// fileGenDevs draws devices with columns of all six types (names shared across devices
// keep their type), random subsets and orders of columns, nulls, and strictly increasing times.
func fileGenDevs(t *rapid.T) []*fileDev {
	pool := make([]Column, 8)
	for i := range pool {
		pool[i] = Column{Name: fmt.Sprintf("m%d", i), Type: AllTypes[i%len(AllTypes)]}
	}
	ndev := rapid.IntRange(0, 5).Draw(t, "ndev")
	names := rapid.SliceOfNDistinct(rapid.StringMatching(`root\.db\.[a-z]{1,3}(\.[a-z0-9_-]{1,3})?`), ndev, ndev, rapid.ID[string]).Draw(t, "names")
	devs := make([]*fileDev, ndev)
	for k, name := range names {
		d := &fileDev{name: name}
		d.cols = rapid.Permutation(rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, len(pool), func(c Column) string { return c.Name }).Draw(t, "cols")).Draw(t, "order")
		nrows := rapid.IntRange(0, 120).Draw(t, "rows")
		ts := rapid.Int64Range(-1e12, 1e12).Draw(t, "t0")
		for i := 0; i < nrows; i++ {
			ts += rapid.Int64Range(1, 50).Draw(t, "step")
			d.times = append(d.times, ts)
			row := make([]any, len(d.cols))
			for j, c := range d.cols {
				row[j] = fileGenValue(t, c.Type, fmt.Sprintf("v%d_%d", k, j))
			}
			d.rows = append(d.rows, row)
		}
		devs[k] = d
	}
	return devs
}

func fileWrite(t fileTB, devs []*fileDev, meta FileMeta, opts WriteOptions) ([]byte, FileMeta) {
	data := make([]DeviceData, len(devs))
	for i, d := range devs {
		data[i] = DeviceData{Device: d.name, Rec: d.record(t)}
	}
	defer func() {
		for _, d := range data {
			d.Rec.Release()
		}
	}()
	var buf bytes.Buffer
	m, err := WriteFile(&buf, meta, data, opts)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func fileOpen(t fileTB, b []byte) *Reader {
	r, err := OpenReaderAt(bytes.NewReader(b), int64(len(b)), "mem.tsfile")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fileCollect reads device through ReadDevice: times and, per returned column, values.
func fileCollect(t fileTB, r *Reader, device string, ms []string, lo, hi int64) ([]int64, []string, [][]any) {
	var times []int64
	var names []string
	var vals [][]any
	err := r.ReadDevice(device, ms, lo, hi, func(rec arrow.Record) error {
		if got, _ := rec.Schema().Metadata().GetValue(MetaDevice); got != device {
			t.Fatalf("record names device %q, want %q", got, device)
		}
		fs := rec.Schema().Fields()
		if fs[0].Name != TimeColumn {
			t.Fatalf("first column %s", fs[0].Name)
		}
		if names == nil {
			names = []string{}
			for _, f := range fs[1:] {
				names = append(names, f.Name)
			}
			vals = make([][]any, len(names))
		}
		times = append(times, rec.Column(0).(*array.Int64).Int64Values()...)
		for j := range names {
			c := rec.Column(j + 1)
			for i := 0; i < c.Len(); i++ {
				vals[j] = append(vals[j], Value(c, i))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return times, names, vals
}

// fileExpect returns what ReadDevice should return for d: the columns (measurements == nil:
// every column with a value, by name; else those requested, once each, that have a value) and
// the rows with lo <= time <= hi.
func fileExpect(d *fileDev, ms []string, lo, hi int64) ([]int64, []string, [][]any) {
	has := map[string]int{}
	for j, c := range d.cols {
		for _, row := range d.rows {
			if row[j] != nil {
				has[c.Name] = j
				break
			}
		}
	}
	var names []string
	if ms == nil {
		for n := range has {
			names = append(names, n)
		}
		sort.Strings(names)
	} else {
		for _, m := range ms {
			if _, ok := has[m]; ok && !slices.Contains(names, m) {
				names = append(names, m)
			}
		}
	}
	var times []int64
	vals := make([][]any, len(names))
	for i, ts := range d.times {
		if ts < lo || ts > hi {
			continue
		}
		times = append(times, ts)
		for j, n := range names {
			vals[j] = append(vals[j], d.rows[i][has[n]])
		}
	}
	return times, names, vals
}

func TestFileRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		devs := fileGenDevs(t)
		comp := rapid.SampledFrom([]Compression{CompressionZstd, CompressionLZ4, CompressionNone}).Draw(t, "comp")
		maxRows := rapid.IntRange(1, 50).Draw(t, "maxRows")
		meta := FileMeta{Region: "r7", Version: rapid.Uint64().Draw(t, "version"), Epoch: 3,
			Progress: map[uint32]uint64{1: 10, 7: math.MaxUint64}, MinIndex: 4, MaxIndex: 10}
		b, wm := fileWrite(t, devs, meta, WriteOptions{Compression: comp, MaxBatchRows: maxRows, CompressConcurrency: rapid.IntRange(0, 3).Draw(t, "conc")})
		r := fileOpen(t, b)
		defer r.Close()
		m := r.Meta()
		if !reflect.DeepEqual(m, wm) {
			t.Fatalf("read meta differs from written:\n%+v\n%+v", m, wm)
		}
		if m.Region != "r7" || m.Version != meta.Version || m.Epoch != 3 || m.MinIndex != 4 || m.MaxIndex != 10 ||
			!reflect.DeepEqual(m.Progress, meta.Progress) || m.Compression != comp || m.FormatVersion != 1 {
			t.Fatalf("meta %+v", m)
		}
		if err := r.Verify(); err != nil {
			t.Fatal(err)
		}
		var rows, points int64
		live := 0
		for _, d := range devs {
			rows += int64(len(d.times))
			for _, row := range d.rows {
				for _, v := range row {
					if v != nil {
						points++
					}
				}
			}
			if len(d.times) > 0 {
				live++
			}
		}
		if m.Rows != rows || m.Points != points || len(m.Devices) != live {
			t.Fatalf("rows %d points %d devices %d, want %d %d %d", m.Rows, m.Points, len(m.Devices), rows, points, live)
		}
		for _, d := range devs {
			gt, gn, gv := fileCollect(t, r, d.name, nil, math.MinInt64, math.MaxInt64)
			wt, wn, wv := fileExpect(d, nil, math.MinInt64, math.MaxInt64)
			fileCompare(t, d.name, gt, gn, gv, wt, wn, wv)

			// a time range and a column selection
			lo := rapid.Int64Range(-1e12, 1e12+6000).Draw(t, "lo")
			hi := lo + rapid.Int64Range(-10, 3000).Draw(t, "span")
			ms := rapid.SliceOfN(rapid.SampledFrom([]string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "nope", "time"}), 0, 5).Draw(t, "ms")
			before := r.batchReads.Load()
			gt, gn, gv = fileCollect(t, r, d.name, ms, lo, hi)
			wt, wn, wv = fileExpect(d, ms, lo, hi)
			fileCompare(t, d.name, gt, gn, gv, wt, wn, wv)
			// only batches overlapping [lo, hi] are decoded
			want := 0
			for s := 0; s < len(d.times); s += maxRows {
				e := min(s+maxRows, len(d.times)) - 1
				if lo <= hi && d.times[s] <= hi && d.times[e] >= lo {
					want++
				}
			}
			if got := r.batchReads.Load() - before; got != int64(want) {
				t.Fatalf("%s [%d, %d]: decoded %d batches, want %d", d.name, lo, hi, got, want)
			}
		}
		fileCheckInterop(t, b, m)
	})
}

func fileCompare(t fileTB, dev string, gt []int64, gn []string, gv [][]any, wt []int64, wn []string, wv [][]any) {
	t.Helper()
	if len(gt) == 0 && len(wt) == 0 {
		return
	}
	if !slices.Equal(gt, wt) {
		t.Fatalf("%s: times %v, want %v", dev, gt, wt)
	}
	if !slices.Equal(gn, wn) {
		t.Fatalf("%s: columns %v, want %v", dev, gn, wn)
	}
	for j := range wn {
		if !reflect.DeepEqual(gv[j], wv[j]) {
			t.Fatalf("%s.%s: values %v, want %v", dev, wn[j], gv[j], wv[j])
		}
	}
}

// fileCheckInterop reads the file with a plain Arrow IPC file reader: schema, metadata, and
// every batch's device column naming the devices of the index in order.
func fileCheckInterop(t fileTB, b []byte, m FileMeta) {
	fr, err := ipc.NewFileReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	fs := fr.Schema().Fields()
	if fs[0].Name != "device" || fs[1].Name != "time" || len(fs) != len(m.Columns)+2 {
		t.Fatalf("schema %s", fr.Schema())
	}
	if v, _ := fr.Schema().Metadata().GetValue("weir.format.version"); v != "1" {
		t.Fatalf("format version %q", v)
	}
	var devs []string
	for i := 0; i < fr.NumRecords(); i++ {
		rec, err := fr.Record(i)
		if err != nil {
			t.Fatal(err)
		}
		dc := rec.Column(0).(*array.Dictionary)
		dict := dc.Dictionary().(*array.String)
		name := dict.Value(dc.GetValueIndex(0))
		for k := 1; k < dc.Len(); k++ {
			if dict.Value(dc.GetValueIndex(k)) != name {
				t.Fatalf("batch %d holds two devices", i)
			}
		}
		if len(devs) == 0 || devs[len(devs)-1] != name {
			devs = append(devs, name)
		}
	}
	var want []string
	for _, d := range m.Devices {
		want = append(want, d.Device)
	}
	if !slices.Equal(devs, want) {
		t.Fatalf("batches hold devices %v, index %v", devs, want)
	}
}

// fileSample is a small deterministic file: nd devices of n rows (times 0, 10, 20, ...),
// columns of all six types with some nulls.
func fileSample(t fileTB, nd, n int, opts WriteOptions) ([]*fileDev, []byte) {
	var devs []*fileDev
	for k := 0; k < nd; k++ {
		d := &fileDev{name: fmt.Sprintf("root.sg.d%d", nd-k), cols: []Column{{"b", Boolean}, {"i", Int32}, {"l", Int64}, {"f", Float}, {"d", Double}, {"s", Text}}}
		for i := 0; i < n; i++ {
			d.times = append(d.times, int64(i*10))
			row := []any{i%2 == 0, int32(i), int64(-i), float32(i) / 2, float64(i) * 1.5, fmt.Sprintf("v%d", i)}
			if i%5 == 0 {
				row[i%6] = nil
			}
			d.rows = append(d.rows, row)
		}
		devs = append(devs, d)
	}
	b, _ := fileWrite(t, devs, FileMeta{Region: "r1", Version: 2, Epoch: 2, Progress: map[uint32]uint64{1: 99}, MinIndex: 1, MaxIndex: 99}, opts)
	return devs, b
}

func TestFileTimeRangeReadsOnlyNeededBatches(t *testing.T) {
	devs, b := fileSample(t, 3, 1000, WriteOptions{MaxBatchRows: 100})
	r := fileOpen(t, b)
	defer r.Close()
	if r.NumBatches() != 30 {
		t.Fatalf("%d batches", r.NumBatches())
	}
	d := devs[1] // root.sg.d2, batches 10..19
	for _, c := range []struct {
		lo, hi  int64
		batches int64
	}{
		{2500, 3490, 2},          // rows 250..349: batches 2 and 3
		{2500, 2500, 1},          // one row
		{2505, 2509, 1},          // in a gap between rows: decoded, nothing returned
		{-100, -1, 0},            // before the device
		{10000, 20000, 0},        // after
		{math.MinInt64, 5, 1},    // first row
		{9990, math.MaxInt64, 1}, // last row
		{0, 9990, 10},            // everything
		{995, 1000, 1},           // 995 is in no batch, 1000 starts batch 1
		{991, 999, 0},            // strictly between two batches
		{math.MaxInt64, math.MinInt64, 0},
	} {
		before := r.batchReads.Load()
		gt, _, gv := fileCollect(t, r, d.name, []string{"s", "l"}, c.lo, c.hi)
		if got := r.batchReads.Load() - before; got != c.batches {
			t.Errorf("[%d, %d]: decoded %d batches, want %d", c.lo, c.hi, got, c.batches)
		}
		wt, wn, wv := fileExpect(d, []string{"s", "l"}, c.lo, c.hi)
		fileCompare(t, d.name, gt, wn, gv, wt, wn, wv)
	}
	if err := r.ReadDevice("root.sg.none", nil, math.MinInt64, math.MaxInt64, func(arrow.Record) error {
		t.Fatal("record for an absent device")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// fn's error stops the read and is returned as is
	stop := errors.New("stop")
	if err := r.ReadDevice(d.name, nil, math.MinInt64, math.MaxInt64, func(arrow.Record) error { return stop }); err != stop {
		t.Fatalf("got %v", err)
	}
}

func TestFileMetaAndStats(t *testing.T) {
	_, b := fileSample(t, 2, 7, WriteOptions{MaxBatchRows: 3, Compression: CompressionLZ4})
	r := fileOpen(t, b)
	defer r.Close()
	m := r.Meta()
	if m.Rows != 14 || m.MinTime != 0 || m.MaxTime != 60 || len(m.Devices) != 2 || m.Devices[0].Device != "root.sg.d1" {
		t.Fatalf("meta %+v", m)
	}
	wantCols := []Column{{"b", Boolean}, {"d", Double}, {"f", Float}, {"i", Int32}, {"l", Int64}, {"s", Text}}
	if !reflect.DeepEqual(m.Columns, wantCols) {
		t.Fatalf("columns %v", m.Columns)
	}
	d := m.Devices[0]
	if !slices.Equal(d.Batches, []int{0, 1, 2}) || d.BatchRanges[1] != (BatchRange{Rows: 3, MinTime: 30, MaxTime: 50}) {
		t.Fatalf("batches %v %v", d.Batches, d.BatchRanges)
	}
	// rows 0 and 5 have a null in column 0 (b) and 5 (s)
	want := []ColumnStats{
		{"b", Boolean, 6, false, true},
		{"d", Double, 7, 0.0, 9.0},
		{"f", Float, 7, 0.0, 3.0},
		{"i", Int32, 7, int64(0), int64(6)},
		{"l", Int64, 7, int64(-6), int64(0)},
		{"s", Text, 6, "v0", "v6"},
	}
	if !reflect.DeepEqual(d.Columns, want) {
		t.Fatalf("stats\n%v\nwant\n%v", d.Columns, want)
	}
	if m.Points != 2*(6+7+7+7+7+6) {
		t.Fatalf("points %d", m.Points)
	}
}

func TestFileEmpty(t *testing.T) {
	b, m := fileWrite(t, nil, FileMeta{Region: "r"}, WriteOptions{})
	if m.Rows != 0 || len(m.Devices) != 0 || m.Compression != CompressionZstd {
		t.Fatalf("%+v", m)
	}
	r := fileOpen(t, b)
	defer r.Close()
	if r.NumBatches() != 0 || r.Verify() != nil {
		t.Fatal("empty file")
	}
	// a device with no rows is left out
	b, m = fileWrite(t, []*fileDev{{name: "root.a.b", cols: []Column{{"x", Int64}}}}, FileMeta{}, WriteOptions{})
	if len(m.Devices) != 0 || len(m.Columns) != 0 {
		t.Fatalf("%+v", m)
	}
	fileOpen(t, b).Close()
}

func TestWriteFileRejects(t *testing.T) {
	rec := func(device string, cols []Column, times []int64, vals ...any) DeviceData {
		tb := NewTabletBuilder(nil, device, cols)
		defer tb.Release()
		for _, ts := range times {
			if err := tb.AppendRow(ts, vals...); err != nil {
				t.Fatal(err)
			}
		}
		return DeviceData{Device: device, Rec: tb.b.NewRecord()}
	}
	x := []Column{{"x", Int64}}
	cases := []struct {
		name string
		data []DeviceData
		opts WriteOptions
		want string
	}{
		{"unsorted", []DeviceData{rec("root.a.b", x, []int64{2, 1}, int64(1))}, WriteOptions{}, "strictly increasing"},
		{"duplicate time", []DeviceData{rec("root.a.b", x, []int64{1, 1}, int64(1))}, WriteOptions{}, "strictly increasing"},
		{"twice", []DeviceData{rec("root.a.b", x, []int64{1}, int64(1)), rec("root.a.b", x, []int64{2}, int64(1))}, WriteOptions{}, "appears twice"},
		{"conflict", []DeviceData{rec("root.a.b", x, []int64{1}, int64(1)), rec("root.a.c", []Column{{"x", Double}}, []int64{2}, 1.0)}, WriteOptions{}, "type conflict"},
		{"bad device", []DeviceData{rec("a.b", x, []int64{1}, int64(1))}, WriteOptions{}, "root"},
		{"reserved", []DeviceData{rec("root.a.b", []Column{{"time", Int64}}, []int64{1}, int64(1))}, WriteOptions{}, "reserved"},
		{"nan", []DeviceData{rec("root.a.b", []Column{{"x", Double}}, []int64{1}, math.NaN())}, WriteOptions{}, "not finite"},
		{"inf", []DeviceData{rec("root.a.b", []Column{{"x", Float}}, []int64{1}, float32(math.Inf(1)))}, WriteOptions{}, "not finite"},
		{"utf8", []DeviceData{rec("root.a.b", []Column{{"x", Text}}, []int64{1}, "ok\xff")}, WriteOptions{}, "not valid UTF-8"},
		{"compression", []DeviceData{rec("root.a.b", x, []int64{1}, int64(1))}, WriteOptions{Compression: "gzip"}, "unknown compression"},
	}
	for _, c := range cases {
		_, err := WriteFile(io.Discard, FileMeta{}, c.data, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		for _, d := range c.data {
			d.Rec.Release()
		}
	}
	if _, err := WriteFile(io.Discard, FileMeta{MinIndex: 5, MaxIndex: 4}, nil, WriteOptions{}); err == nil {
		t.Error("inverted index range accepted")
	}
	if c, err := ParseCompression("LZ4"); err != nil || c != CompressionLZ4 {
		t.Error("ParseCompression")
	}
}

// TestFileCorruption flips every byte of a file, then truncates it at every length: VerifyFile
// with the manifest's size and CRC always fails naming the file and the check.
func TestFileCorruption(t *testing.T) {
	_, b := fileSample(t, 2, 6, WriteOptions{MaxBatchRows: 4})
	dir := t.TempDir()
	path := filepath.Join(dir, "x.tsfile")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	size, crc, err := FileChecksum(path)
	if err != nil || size != int64(len(b)) {
		t.Fatal(err)
	}
	if err := VerifyFile(path, size, crc); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path, -1, 0); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.tsfile")
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x5a
		if err := os.WriteFile(bad, c, 0o644); err != nil {
			t.Fatal(err)
		}
		err := VerifyFile(bad, size, crc)
		if err == nil || !strings.Contains(err.Error(), "tsfile "+bad+": checksum mismatch: manifest says 0x") {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
	for n := 0; n < len(b); n++ {
		if err := os.WriteFile(bad, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		err := VerifyFile(bad, size, crc)
		if err == nil || !strings.Contains(err.Error(), "size mismatch: manifest says") {
			t.Fatalf("truncated at %d: %v", n, err)
		}
		err = VerifyStructure(bad)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != bad {
			t.Fatalf("truncated at %d: structure check: %v", n, err)
		}
	}
	err = VerifyStructure(filepath.Join(dir, "missing.tsfile"))
	if err == nil || !strings.Contains(err.Error(), "missing.tsfile: open") {
		t.Fatalf("missing: %v", err)
	}
}

// TestFileFlipsNeverPanic flips every byte (every flipStride-th under -race) of small files of each compression and reads
// everything back: errors, never a panic. Without a checksum most flips are still detected.
func TestFileFlipsNeverPanic(t *testing.T) {
	for _, comp := range []Compression{CompressionZstd, CompressionLZ4, CompressionNone} {
		_, b := fileSample(t, 2, 4, WriteOptions{MaxBatchRows: 3, Compression: comp})
		detected, flipped := 0, 0
		for i := 0; i < len(b); i += flipStride {
			flipped++
			c := bytes.Clone(b)
			c[i] ^= 0xff
			r, err := OpenReaderAt(bytes.NewReader(c), int64(len(c)), "bad")
			if err == nil {
				err = fileReadAll(r)
			}
			if err != nil {
				detected++
			}
		}
		t.Logf("%s: the structure check alone detects %d of %d flipped bytes", comp, detected, flipped)
	}
}

// fileReadAll decodes every batch and every device of r, returning the first error.
func fileReadAll(r *Reader) error {
	defer r.Close()
	var first error
	for i := 0; i < r.NumBatches(); i++ {
		rec, err := r.ReadBatch(i)
		if err != nil {
			first = cmpErr(first, err)
			continue
		}
		rec.Release()
	}
	for _, d := range r.Meta().Devices {
		first = cmpErr(first, r.ReadDevice(d.Device, nil, math.MinInt64, math.MaxInt64, func(rec arrow.Record) error {
			for i := 0; i < int(rec.NumCols()); i++ {
				c := rec.Column(i)
				for k := 0; k < c.Len(); k++ {
					_ = Value(c, k)
				}
			}
			return nil
		}))
	}
	return cmpErr(first, r.Verify())
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func TestFileOpenErrors(t *testing.T) {
	_, b := fileSample(t, 1, 3, WriteOptions{})
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "footer: file too small"},
		{"not arrow", []byte("hello, this is not an arrow file at all"), "header: not an Arrow IPC file"},
		{"truncated", b[:len(b)-1], "footer: bad trailing magic"},
		{"footer length", func() []byte {
			c := bytes.Clone(b)
			c[len(c)-10] ^= 0x40
			return c
		}(), "footer"},
	}
	for _, c := range cases {
		_, err := OpenReaderAt(bytes.NewReader(c.data), int64(len(c.data)), "f.tsfile")
		if err == nil || !strings.Contains(err.Error(), "tsfile f.tsfile: "+c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := fileOpen(t, b).ReadBatch(1); err == nil {
		t.Error("batch out of range")
	}
}

// TestFileForeignArrow checks that a plain Arrow file (not written by WriteFile) is refused
// with a clear error, not misread.
func TestFileForeignArrow(t *testing.T) {
	tab := NewTabletBuilder(nil, "root.a.b", []Column{{"x", Int64}})
	tab.AppendRow(1, int64(2))
	rec := tab.b.NewRecord()
	tab.Release()
	defer rec.Release()
	var buf bytes.Buffer
	fw, err := ipc.NewFileWriter(&posWriter{w: &buf}, ipc.WithSchema(rec.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = OpenReaderAt(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "plain.arrow")
	if err == nil || !strings.Contains(err.Error(), "tsfile plain.arrow: metadata: weir.max_buffer: missing") {
		t.Fatalf("got %v", err)
	}
}

// TestFileCompressConcurrency writes with several compressing goroutines; the package's
// TestMain checks that none is left behind.
func TestFileCompressConcurrency(t *testing.T) {
	devs, b := fileSample(t, 3, 500, WriteOptions{MaxBatchRows: 128, CompressConcurrency: 4})
	r := fileOpen(t, b)
	defer r.Close()
	for _, d := range devs {
		gt, gn, gv := fileCollect(t, r, d.name, nil, math.MinInt64, math.MaxInt64)
		wt, wn, wv := fileExpect(d, nil, math.MinInt64, math.MaxInt64)
		fileCompare(t, d.name, gt, gn, gv, wt, wn, wv)
	}
}

func FuzzOpenFile(f *testing.F) {
	_, b := fileSample(f, 2, 5, WriteOptions{MaxBatchRows: 3})
	f.Add(b)
	_, b = fileSample(f, 1, 4, WriteOptions{Compression: CompressionNone})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := OpenReaderAt(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != "fuzz" {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		_ = fileReadAll(r)
	})
}

// TestFileFuzzCorpus regenerates the committed seed corpus of FuzzOpenFile when
// TSFILE_UPDATE_CORPUS=1: small valid files of each compression and truncations of them.
func TestFileFuzzCorpus(t *testing.T) {
	if os.Getenv("TSFILE_UPDATE_CORPUS") != "1" {
		t.Skip("set TSFILE_UPDATE_CORPUS=1 to regenerate testdata/fuzz/FuzzOpenFile")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenFile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		s := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []Compression{CompressionZstd, CompressionLZ4, CompressionNone} {
		_, b := fileSample(t, 2, 4, WriteOptions{MaxBatchRows: 3, Compression: c})
		write("valid-"+string(c), b)
		if c == CompressionZstd {
			write("truncated-footer", b[:len(b)-7])
			write("truncated-half", b[:len(b)/2])
			write("truncated-tail-kept", append(bytes.Clone(b[:len(b)/2]), b[len(b)-10:]...))
		}
	}
}

func TestFileStatsMinMax(t *testing.T) {
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 1, -1}
	rapid.Check(t, func(t *rapid.T) {
		gen := rapid.OneOf(rapid.Float64(), rapid.SampledFrom(special))
		vals := rapid.SliceOfN(gen, 1, 40).Draw(t, "vals")
		f32 := make([]float32, len(vals))
		for i, v := range vals {
			f32[i] = float32(v)
		}
		check := func(lo, hi float64, bad int, vals []float64) {
			wantBad := slices.IndexFunc(vals, func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
			if bad != wantBad {
				t.Fatalf("bad %d, want %d", bad, wantBad)
			}
			if bad < 0 && (lo != slices.Min(vals) || hi != slices.Max(vals)) {
				t.Fatalf("min/max %v %v, want %v %v", lo, hi, slices.Min(vals), slices.Max(vals))
			}
		}
		lo, hi, bad := minMaxFloat(vals, nil, 0)
		check(lo, hi, bad, vals)
		lo32, hi32, bad := minMaxFloat(f32, nil, 0)
		as64 := make([]float64, len(f32))
		for i, v := range f32 {
			as64[i] = float64(v)
		}
		check(float64(lo32), float64(hi32), bad, as64)
		ints := rapid.SliceOfN(rapid.Int64(), 1, 40).Draw(t, "ints")
		if l, h := minMax(ints, nil, 0); l != slices.Min(ints) || h != slices.Max(ints) {
			t.Fatalf("int min/max %d %d", l, h)
		}
	})
}

// TestFileSlicedInput writes records that are slices of larger ones (non-zero array offsets,
// bitmaps not byte-aligned): stats and contents must be those of the slice.
func TestFileSlicedInput(t *testing.T) {
	devs, _ := fileSample(t, 2, 50, WriteOptions{})
	var data []DeviceData
	for i, d := range devs {
		full := d.record(t)
		lo, hi := int64(3+i), int64(41+i)
		data = append(data, DeviceData{Device: d.name, Rec: full.NewSlice(lo, hi)})
		full.Release()
		d.times, d.rows = d.times[lo:hi], d.rows[lo:hi]
	}
	var buf bytes.Buffer
	m, err := WriteFile(&buf, FileMeta{}, data, WriteOptions{MaxBatchRows: 16})
	for _, d := range data {
		d.Rec.Release()
	}
	if err != nil {
		t.Fatal(err)
	}
	_, want := fileWrite(t, devs, FileMeta{}, WriteOptions{MaxBatchRows: 16}) // from fresh records
	if !reflect.DeepEqual(m.Devices, want.Devices) {
		t.Fatalf("stats of sliced input differ:\n%+v\n%+v", m.Devices, want.Devices)
	}
	r := fileOpen(t, buf.Bytes())
	defer r.Close()
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		gt, gn, gv := fileCollect(t, r, d.name, nil, math.MinInt64, math.MaxInt64)
		wt, wn, wv := fileExpect(d, nil, math.MinInt64, math.MaxInt64)
		fileCompare(t, d.name, gt, gn, gv, wt, wn, wv)
	}
}

// TestFileConcurrentReads reads all devices from several goroutines at once (run with -race).
func TestFileConcurrentReads(t *testing.T) {
	devs, b := fileSample(t, 4, 300, WriteOptions{MaxBatchRows: 64})
	r := fileOpen(t, b)
	defer r.Close()
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			d := devs[g%len(devs)]
			n := 0
			err := r.ReadDevice(d.name, nil, math.MinInt64, math.MaxInt64, func(rec arrow.Record) error {
				n += int(rec.NumRows())
				return nil
			})
			if err == nil && n != len(d.times) {
				err = fmt.Errorf("%s: %d rows, want %d", d.name, n, len(d.times))
			}
			if err == nil {
				var rec arrow.Record
				if rec, err = r.ReadBatch(g); err == nil {
					rec.Release()
				}
			}
			errs <- err
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestTabletValidateUTF8(t *testing.T) {
	tb := NewTabletBuilder(nil, "root.a.b", []Column{{"s", Text}})
	defer tb.Release()
	tb.AppendRow(1, "fine")
	tb.AppendRow(2, nil)
	tb.AppendRow(3, "bad\xc3")
	if _, err := tb.Build(); err == nil || !strings.Contains(err.Error(), `measurement "s": row 2: value "bad\xc3" is not valid UTF-8`) {
		t.Fatalf("got %v", err)
	}
}
