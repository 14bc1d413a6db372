package tsfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"pgregory.net/rapid"
)

// tT is what the test helpers need of *testing.T and *rapid.T.
type tT interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// newMem returns a checked allocator that must be empty when the test ends.
func newMem(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// rawTablet builds a tablet row by row (nil values are nulls), without validating it.
func rawTablet(t testing.TB, mem memory.Allocator, device string, cols []Column, times []int64, rows ...[]any) *Tablet {
	t.Helper()
	tb := NewTabletBuilder(mem, device, cols)
	defer tb.Release()
	for i, ts := range times {
		if err := tb.AppendRow(ts, rows[i]...); err != nil {
			t.Fatal(err)
		}
	}
	return &Tablet{Device: device, Rec: tb.b.NewRecord()}
}

func requireTabletEqual(t tT, want, got *Tablet) {
	if want.Device != got.Device {
		t.Fatalf("device: got %q, want %q", got.Device, want.Device)
	}
	if !want.Rec.Schema().Equal(got.Rec.Schema()) {
		t.Fatalf("schema:\ngot  %s\nwant %s", got.Rec.Schema(), want.Rec.Schema())
	}
	if want.Device != "" {
		if d, _ := got.Rec.Schema().Metadata().GetValue(MetaDevice); d != want.Device {
			t.Fatalf("schema metadata device: got %q, want %q", d, want.Device)
		}
	}
	if !array.RecordEqual(want.Rec, got.Rec) {
		t.Fatalf("records differ:\ngot  %v\nwant %v", got.Rec, want.Rec)
	}
}

// roundTrip encodes t (after a prefix, to check append semantics), decodes it, checks the
// result equals t and re-encodes to the same bytes.
func roundTrip(t tT, mem memory.Allocator, tab *Tablet) []byte {
	prefix := []byte("prefix")
	enc := AppendTablet(append([]byte(nil), prefix...), tab)
	if !bytes.HasPrefix(enc, prefix) {
		t.Fatal("AppendTablet clobbered dst")
	}
	enc = enc[len(prefix):]
	if cp := AppendTablet(nil, tab); !bytes.Equal(cp, enc) {
		t.Fatal("AppendTablet is not deterministic")
	}
	b := bytes.Clone(enc)
	dec, err := DecodeTablet(mem, b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	defer dec.Release()
	clear(b) // the decoded tablet must not refer to b
	requireTabletEqual(t, tab, dec)
	if again := AppendTablet(nil, dec); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoding differs:\n%x\n%x", again, enc)
	}
	if tab.Validate() == nil {
		if err := dec.Validate(); err != nil {
			t.Fatalf("decoded tablet fails Validate: %v", err)
		}
	}
	return enc
}

var allCols = []Column{
	{"b", Boolean}, {"i", Int32}, {"l", Int64}, {"f", Float}, {"d", Double}, {"s", Text},
}

// sampleTablet has the six types, nulls in every column but "l", an all-null column "f" in
// rows 0-2, and empty strings.
func sampleTablet(t testing.TB, mem memory.Allocator, rows int) *Tablet {
	times := make([]int64, rows)
	vals := make([][]any, rows)
	for r := range rows {
		times[r] = 1_700_000_000_000 + int64(r)*1000
		row := []any{r%3 == 0, int32(r * -7), int64(r) << 40, float32(r) / 4, float64(r) * 1.5, strings.Repeat("é", r%4)}
		for c := range row {
			if c != 2 && (r*7+c*3)%5 == 0 {
				row[c] = nil
			}
		}
		if r < 3 {
			row[3] = nil
		}
		vals[r] = row
	}
	return rawTablet(t, mem, "root.sg.d1", allCols, times, vals...)
}

func TestCodecRoundTrip(t *testing.T) {
	mem := newMem(t)
	for _, rows := range []int{0, 1, 7, 8, 9, 64, 100} {
		t.Run(fmt.Sprint(rows), func(t *testing.T) {
			tab := sampleTablet(t, mem, rows)
			defer tab.Release()
			roundTrip(t, mem, tab)
		})
	}
}

func TestCodecSliced(t *testing.T) {
	mem := newMem(t)
	tab := sampleTablet(t, mem, 100)
	defer tab.Release()
	for _, r := range [][2]int64{{0, 100}, {3, 17}, {8, 24}, {8, 9}, {1, 100}, {5, 5}, {99, 100}, {13, 77}} {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			s := &Tablet{Device: tab.Device, Rec: tab.Rec.NewSlice(r[0], r[1])}
			defer s.Release()
			enc := roundTrip(t, mem, s)
			// A sliced tablet encodes exactly as its copy does.
			cp := copyTablet(t, mem, s)
			defer cp.Release()
			if !bytes.Equal(AppendTablet(nil, cp), enc) {
				t.Fatal("sliced tablet encodes differently from its copy")
			}
		})
	}
}

// copyTablet rebuilds t's record value by value (offsets 0).
func copyTablet(t testing.TB, mem memory.Allocator, tab *Tablet) *Tablet {
	b := array.NewRecordBuilder(mem, tab.Rec.Schema())
	defer b.Release()
	for c := 0; c < int(tab.Rec.NumCols()); c++ {
		for r := 0; r < tab.Rows(); r++ {
			if c == 0 {
				b.Field(0).(*array.Int64Builder).Append(tab.Times()[r])
			} else {
				AppendValue(b.Field(c), tab.Rec.Column(c), r)
			}
		}
	}
	return &Tablet{Device: tab.Device, Rec: b.NewRecord()}
}

func TestCodecSpecialTablets(t *testing.T) {
	mem := newMem(t)
	t.Run("no columns", func(t *testing.T) {
		tab := rawTablet(t, mem, "root.a.b", nil, []int64{1, 2}, nil, nil)
		defer tab.Release()
		roundTrip(t, mem, tab)
	})
	t.Run("empty device", func(t *testing.T) {
		tab := rawTablet(t, mem, "", []Column{{"x", Double}}, []int64{1}, []any{1.0})
		defer tab.Release()
		roundTrip(t, mem, tab)
	})
	t.Run("all null and empty strings", func(t *testing.T) {
		tab := rawTablet(t, mem, "root.a.b", []Column{{"n", Text}, {"e", Text}, {"m", Boolean}},
			[]int64{1, 2, 3}, []any{nil, "", nil}, []any{nil, "", nil}, []any{nil, "", nil})
		defer tab.Release()
		roundTrip(t, mem, tab)
	})
	t.Run("extreme values", func(t *testing.T) {
		tab := rawTablet(t, mem, "root.a.b", []Column{{"i", Int32}, {"l", Int64}, {"f", Float}, {"d", Double}},
			[]int64{math.MinInt64, 0, math.MaxInt64},
			[]any{int32(math.MinInt32), int64(math.MinInt64), float32(-math.MaxFloat32), -math.MaxFloat64},
			[]any{int32(0), int64(0), float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat64},
			[]any{int32(math.MaxInt32), int64(math.MaxInt64), float32(math.MaxFloat32), math.MaxFloat64})
		defer tab.Release()
		roundTrip(t, mem, tab)
	})
	t.Run("string offsets not starting at zero", func(t *testing.T) {
		// A sliced string column whose first offset is not 0 takes the rebasing path.
		tab := rawTablet(t, mem, "root.a.b", []Column{{"s", Text}}, []int64{1, 2, 3},
			[]any{"abc"}, []any{"de"}, []any{nil})
		defer tab.Release()
		s := &Tablet{Device: tab.Device, Rec: tab.Rec.NewSlice(1, 3)}
		defer s.Release()
		enc := roundTrip(t, mem, s)
		if !bytes.Contains(enc, []byte{0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 'd', 'e'}) {
			t.Fatalf("offsets not rebased: %x", enc)
		}
	})
}

// TestCodecGolden pins the byte layout documented in codec.go.
func TestCodecGolden(t *testing.T) {
	mem := newMem(t)
	tab := rawTablet(t, mem, "root.a.b", []Column{{"x", Int32}, {"s", Text}, {"ok", Boolean}},
		[]int64{1, 258}, []any{int32(-1), nil, true}, []any{int32(2), "hi", false})
	defer tab.Release()
	le64 := func(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
	var want []byte
	want = append(want, 0xB1, 8)
	want = append(want, "root.a.b"...)
	want = append(want, 2, 3, 1, 'x', byte(Int32), 1, 's', byte(Text), 2, 'o', 'k', byte(Boolean))
	want = append(want, le64(1)...)
	want = append(want, le64(258)...)
	want = append(want, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0)       // x
	want = append(want, 1, 0b10, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0) // s: validity, offsets
	want = append(want, "hi"...)
	want = append(want, 0, 0b01) // ok
	got := AppendTablet(nil, tab)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding:\ngot  %x\nwant %x", got, want)
	}
}

// TestCodecPortablePath checks that the per-value path (used on big-endian hosts) writes the
// same bytes as the copy path, and reads them back.
func TestCodecPortablePath(t *testing.T) {
	mem := newMem(t)
	tab := sampleTablet(t, mem, 50)
	defer tab.Release()
	s := &Tablet{Device: tab.Device, Rec: tab.Rec.NewSlice(3, 41)}
	defer s.Release()
	fast := AppendTablet(nil, s)
	defer func(v bool) { hostLittleEndian = v }(hostLittleEndian)
	hostLittleEndian = false
	slow := AppendTablet(nil, s)
	if !bytes.Equal(fast, slow) {
		t.Fatal("portable encoding differs from the copy path")
	}
	roundTrip(t, mem, s)
}

func TestCodecDecodeValidates(t *testing.T) {
	mem := newMem(t)
	tab := rawTablet(t, mem, "root.a.b", []Column{{"s", Text}}, []int64{1, 2}, []any{"ab"}, []any{"c"})
	defer tab.Release()
	good := AppendTablet(nil, tab)
	// layout: b1 08 root.a.b 02 01 01 's' 06 | time 16 bytes | flag | offsets 12 bytes | "abc"
	hdr := 1 + 1 + 8 + 1 + 1 + 1 + 1 + 1
	offs := hdr + 16 + 1
	patch := func(at int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[at:], v)
		return b
	}
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated reading magic"},
		{"magic", patch(0, 0xB2), "bad magic"},
		{"device utf8", patch(2, 0xff), "device is not valid UTF-8"},
		{"device length", append([]byte{0xB1}, uv(1<<40)...), "truncated reading device"},
		{"varint overflow", []byte{0xB1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "overflows 64 bits"},
		{"rows", append([]byte{0xB1, 0}, uv(1<<62)...), "row count"},
		{"rows vs input", patch(10, 3), "truncated"},
		{"ncols", append([]byte{0xB1, 0, 0}, uv(1<<62)...), "column count"},
		{"name utf8", patch(13, 0xC0), "column 1: name is not valid UTF-8"},
		{"type", patch(14, 7), "unknown type byte 7"},
		{"type zero", patch(14, 0), "unknown type byte 0"},
		{"flag", patch(hdr+16, 2), "bad null flag 2"},
		{"first offset", patch(offs, 1), "bad text offset 1 at row 0"},
		{"offsets decrease", patch(offs+4, 3, 0, 0, 0, 2), "bad text offset 2 at row 2"},
		{"offset past data", patch(offs+8, 4), "truncated reading text data"},
		{"negative offset", patch(offs+8, 0, 0, 0, 0x80), "bad text offset"},
		{"trailing", append(bytes.Clone(good), 0), "1 trailing bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dec, err := DecodeTablet(mem, c.b)
			if err == nil {
				dec.Release()
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadTablet) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
	// Every strict prefix is truncated.
	for n := range len(good) {
		if dec, err := DecodeTablet(mem, good[:n]); err == nil {
			dec.Release()
			t.Fatalf("prefix of %d bytes decoded", n)
		}
	}
}

// TestCodecCorruption flips every byte of a valid encoding: decoding must not panic, and a
// successful decode must re-encode stably.
func TestCodecCorruption(t *testing.T) {
	mem := newMem(t)
	tab := sampleTablet(t, mem, 11)
	defer tab.Release()
	good := AppendTablet(nil, tab)
	for i := range good {
		for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff, good[i] ^ 0x10} {
			b := bytes.Clone(good)
			b[i] = v
			checkDecodeStable(t, mem, b)
		}
	}
}

// checkDecodeStable decodes b; when that succeeds, encoding the result and decoding again must
// give an equal tablet and the same bytes.
func checkDecodeStable(t tT, mem memory.Allocator, b []byte) {
	dec, err := DecodeTablet(mem, b)
	if err != nil {
		if !errors.Is(err, ErrBadTablet) {
			t.Fatalf("error does not wrap ErrBadTablet: %v", err)
		}
		return
	}
	defer dec.Release()
	enc := AppendTablet(nil, dec)
	dec2, err := DecodeTablet(mem, enc)
	if err != nil {
		t.Fatalf("re-encoded tablet does not decode: %v", err)
	}
	defer dec2.Release()
	requireTabletEqualNaN(t, dec, dec2)
	if enc2 := AppendTablet(nil, dec2); !bytes.Equal(enc, enc2) {
		t.Fatal("encoding is not stable")
	}
}

// requireTabletEqualNaN is requireTabletEqual for tablets that may hold NaNs (as corrupted
// input may): it compares the encodings' values through Value with NaN equal to NaN.
func requireTabletEqualNaN(t tT, want, got *Tablet) {
	if want.Device != got.Device || !want.Rec.Schema().Equal(got.Rec.Schema()) || want.Rows() != got.Rows() {
		t.Fatalf("tablets differ:\n%v\n%v", want.Rec, got.Rec)
	}
	for c := 0; c < int(want.Rec.NumCols()); c++ {
		if !array.ApproxEqual(want.Rec.Column(c), got.Rec.Column(c), array.WithNaNsEqual(true), array.WithAbsTolerance(0)) {
			t.Fatalf("column %d differs:\n%v\n%v", c, want.Rec.Column(c), got.Rec.Column(c))
		}
	}
}

// genTablet draws a random tablet (possibly sliced, possibly empty) from mem.
func genTablet(t *rapid.T, mem memory.Allocator) *Tablet {
	node := rapid.StringMatching(`[a-zA-Z0-9_][a-zA-Z0-9_-]{0,6}`)
	device := "root." + strings.Join(rapid.SliceOfN(node, 1, 3).Draw(t, "nodes"), ".")
	name := node.Filter(func(s string) bool { return s != "time" && s != "device" })
	names := rapid.SliceOfNDistinct(name, 0, 6, func(s string) string { return s }).Draw(t, "names")
	cols := make([]Column, len(names))
	for i, n := range names {
		cols[i] = Column{n, rapid.SampledFrom(AllTypes).Draw(t, "type")}
	}
	rows := rapid.IntRange(0, 40).Draw(t, "rows")
	notNaN64 := rapid.Float64().Filter(func(f float64) bool { return !math.IsNaN(f) })
	notNaN32 := rapid.Float32().Filter(func(f float32) bool { return f == f })
	str := rapid.OneOf(rapid.Just(""), rapid.String(), rapid.StringMatching(`[a-z]{0,3}`))
	nullPct := make([]int, len(cols))
	for i := range cols {
		nullPct[i] = rapid.SampledFrom([]int{0, 0, 30, 100}).Draw(t, "nulls")
	}
	tb := NewTabletBuilder(mem, device, cols)
	defer tb.Release()
	for range rows {
		vals := make([]any, len(cols))
		for i, c := range cols {
			if nullPct[i] > 0 && rapid.IntRange(0, 99).Draw(t, "null") < nullPct[i] {
				continue
			}
			switch c.Type {
			case Boolean:
				vals[i] = rapid.Bool().Draw(t, "v")
			case Int32:
				vals[i] = rapid.Int32().Draw(t, "v")
			case Int64:
				vals[i] = rapid.Int64().Draw(t, "v")
			case Float:
				vals[i] = notNaN32.Draw(t, "v")
			case Double:
				vals[i] = notNaN64.Draw(t, "v")
			case Text:
				vals[i] = str.Draw(t, "v")
			}
		}
		if err := tb.AppendRow(rapid.Int64().Draw(t, "time"), vals...); err != nil {
			t.Fatal(err)
		}
	}
	tab := &Tablet{Device: device, Rec: tb.b.NewRecord()}
	if rows > 0 && rapid.Bool().Draw(t, "slice") {
		lo := rapid.IntRange(0, rows).Draw(t, "lo")
		hi := rapid.IntRange(lo, rows).Draw(t, "hi")
		s := &Tablet{Device: device, Rec: tab.Rec.NewSlice(int64(lo), int64(hi))}
		tab.Release()
		tab = s
	}
	return tab
}

func TestCodecRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		tab := genTablet(t, mem)
		roundTrip(t, mem, tab)
		tab.Release()
		if n := mem.CurrentAlloc(); n != 0 {
			t.Fatalf("%d bytes leaked", n)
		}
	})
}

func FuzzDecodeTablet(f *testing.F) {
	mem := memory.NewGoAllocator()
	tab := sampleTablet(f, mem, 13)
	f.Add(AppendTablet(nil, tab))
	s := &Tablet{Device: tab.Device, Rec: tab.Rec.NewSlice(5, 13)}
	f.Add(AppendTablet(nil, s))
	s.Release()
	tab.Release()
	f.Add([]byte{0xB1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		checkDecodeStable(t, mem, b)
		mem.AssertSize(t, 0)
	})
}

// benchTablet is a 1000-row tablet of 5 measurements: DOUBLE, FLOAT, INT64 (10% nulls),
// BOOLEAN and TEXT (short strings).
func benchTablet(b *testing.B) *Tablet {
	cols := []Column{{"temp", Double}, {"pressure", Float}, {"count", Int64}, {"ok", Boolean}, {"state", Text}}
	tb := NewTabletBuilder(nil, "root.factory.line1.press3", cols)
	defer tb.Release()
	states := []string{"idle", "running", "stopped", "maintenance"}
	for r := range 1000 {
		var count any = int64(r * 3)
		if r%10 == 0 {
			count = nil
		}
		if err := tb.AppendRow(int64(1_700_000_000_000+r*1000), 20+float64(r)/7, float32(r)/3, count, r%2 == 0, states[r%4]); err != nil {
			b.Fatal(err)
		}
	}
	t, err := tb.Build()
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func BenchmarkAppendTablet(b *testing.B) {
	tab := benchTablet(b)
	defer tab.Release()
	buf := AppendTablet(nil, tab)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendTablet(buf[:0], tab)
	}
}

func BenchmarkDecodeTablet(b *testing.B) {
	tab := benchTablet(b)
	defer tab.Release()
	buf := AppendTablet(nil, tab)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		dec, err := DecodeTablet(memory.DefaultAllocator, buf)
		if err != nil {
			b.Fatal(err)
		}
		dec.Release()
	}
}
