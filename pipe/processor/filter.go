package processor

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

const (
	keyStartTime = "start-time"
	keyEndTime   = "end-time"
	keyPredicate = "predicate"
)

func checkPredicate(v string) error {
	_, err := ParsePredicate(v)
	return err
}

func init() {
	pipe.RegisterProcessor(pipe.PluginInfo{
		Name: "filter",
		Doc: "Keeps the series a path pattern selects, the rows in a time range, and the rows where a " +
			"value predicate holds (temp > 80). A TsFile passes as a file, narrowed, unless the " +
			"predicate needs its rows.",
		Params: []pipe.ParamSpec{
			patternParam("the series to keep (others are dropped), e.g. root.factory.*.press3.**"),
			{Key: keyStartTime, Type: pipe.TimeParam, Doc: "keep rows at or after this time (unix ms or RFC 3339); none when left out"},
			{Key: keyEndTime, Type: pipe.TimeParam, Doc: "keep rows at or before this time (unix ms or RFC 3339); none when left out"},
			{Key: keyPredicate, Type: pipe.String, Check: checkPredicate,
				Doc: "keep rows where this holds, e.g. temp > 80 and state != \"off\" (see docs/processors.md)"},
		},
	}, func() pipe.Processor { return &Filter{} })
}

// Filter is the filter processor: it keeps the series its pattern selects, the rows in its
// time range and the rows where its predicate holds. Deletions and heartbeats pass through.
type Filter struct {
	pattern    tsfile.Pattern // zero: every series
	minT, maxT int64
	pred       *Predicate
	origin     uint32
}

// NewFilter returns a filter of the series pattern selects (zero: all), the rows in
// [minT, maxT] and, when pred is not nil, the rows where pred holds.
func NewFilter(pattern tsfile.Pattern, minT, maxT int64, pred *Predicate) *Filter {
	f := &Filter{pattern: pattern, minT: minT, maxT: maxT, pred: pred, origin: LocalOrigin(nil)}
	if pattern.String() == "root.**" {
		f.pattern = tsfile.Pattern{}
	}
	return f
}

// Open implements pipe.Processor. A bad parameter is a permanent error: retrying cannot
// fix a spec.
func (f *Filter) Open(ctx context.Context, env *pipe.Env) error {
	return pipe.Permanent(f.open(ctx, env))
}

func (f *Filter) open(_ context.Context, env *pipe.Env) error {
	p := env.Params
	minT, maxT := int64(math.MinInt64), int64(math.MaxInt64)
	if v, ok := p.Time(keyStartTime); ok {
		minT = v
	}
	if v, ok := p.Time(keyEndTime); ok {
		maxT = v
	}
	if minT > maxT {
		return fmt.Errorf("%s: after %s", keyStartTime, keyEndTime)
	}
	var pred *Predicate
	if s := p.String(keyPredicate); s != "" {
		var err error
		if pred, err = ParsePredicate(s); err != nil {
			return errKey(keyPredicate, err)
		}
		if env.Region != nil {
			if err := pred.CheckTypes(env.Region.Schema()); err != nil {
				return errKey(keyPredicate, err)
			}
		}
	}
	*f = *NewFilter(p.Pattern(keyPattern), minT, maxT, pred)
	f.origin = LocalOrigin(env)
	return nil
}

// Close implements pipe.Processor.
func (f *Filter) Close() error { return nil }

// Process implements pipe.Processor.
func (f *Filter) Process(ctx context.Context, e *pipe.Event, emit func(*pipe.Event)) error {
	if e.Kind == pipe.KindTsFile && e.File != nil && f.pred == nil {
		if out, ok := f.narrow(e); ok {
			if out != nil {
				emit(out)
			}
			return nil
		}
	}
	return Map(ctx, e, emit, f.origin, nil, func(t *tsfile.Tablet) (*tsfile.Tablet, error) {
		return f.Tablet(ctx, t)
	})
}

// narrow handles a file without reading it when the filter's selection can be written on
// the file reference: it returns the event itself (nothing to narrow), a narrowed copy, or
// ok false when the rows must be read.
func (f *Filter) narrow(e *pipe.Event) (*pipe.Event, bool) {
	ref := e.File
	lo, hi := max(ref.MinTime, f.minT), min(ref.MaxTime, f.maxT)
	pat := ref.Pattern
	if pat.String() == "root.**" {
		pat = tsfile.Pattern{}
	}
	switch {
	case f.pattern.IsZero():
	case pat.IsZero() || pat.String() == f.pattern.String() || within(f.pattern, pat):
		pat = f.pattern
	default:
		return nil, false // two patterns whose intersection is not at hand: read the rows
	}
	if lo == ref.MinTime && hi == ref.MaxTime && pat.String() == ref.Pattern.String() {
		return e, true
	}
	nr := *ref
	nr.Pattern, nr.MinTime, nr.MaxTime = pat, lo, hi
	return &pipe.Event{Kind: pipe.KindTsFile, CommitID: e.CommitID, Region: e.Region, Progress: e.Progress,
		Origin: e.Origin, OriginIndex: e.OriginIndex, MinIndex: e.MinIndex, MaxIndex: e.MaxIndex, Epoch: e.Epoch,
		File: &nr, EventTime: e.EventTime, Bytes: e.Bytes}, true
}

// within reports whether every series p selects is under outer, a pattern P.** (p starts
// with P's nodes and has more): their intersection is p.
func within(p, outer tsfile.Pattern) bool {
	o := strings.Split(outer.String(), ".")
	if len(o) < 2 || o[len(o)-1] != "**" {
		return false
	}
	prefix := o[:len(o)-1]
	n := strings.Split(p.String(), ".")
	if len(n) <= len(prefix) {
		return false
	}
	for i, node := range prefix {
		if node == "*" || node == "**" || n[i] != node {
			return false
		}
	}
	return true
}

// Tablet filters one tablet: it returns t itself when everything is kept, nil when nothing
// is, else a new tablet (the caller's).
func (f *Filter) Tablet(ctx context.Context, t *tsfile.Tablet) (*tsfile.Tablet, error) {
	if !f.pattern.IsZero() && !f.pattern.MayMatchDevice(t.Device) {
		return nil, nil
	}
	orig, rec := t, t.Rec
	// columns
	keep := f.columns(t)
	if len(keep) == 0 {
		return nil, nil
	}
	// rows: the time range as a slice when times are sorted (they are from the WAL and
	// files), else a mask; then the predicate's mask
	lo, hi := int64(0), rec.NumRows()
	var mask []uint8
	if f.minT != math.MinInt64 || f.maxT != math.MaxInt64 {
		ts := t.Times()
		if increasing(ts) {
			lo = int64(sort.Search(len(ts), func(i int) bool { return ts[i] >= f.minT }))
			hi = int64(sort.Search(len(ts), func(i int) bool { return ts[i] > f.maxT }))
			if lo >= hi {
				return nil, nil
			}
		} else {
			mask = make([]uint8, len(ts))
			for i, v := range ts {
				mask[i] = tri(v >= f.minT && v <= f.maxT)
			}
		}
	}
	if lo > 0 || hi < rec.NumRows() {
		rec = rec.NewSlice(lo, hi)
		defer rec.Release()
		t = tsfile.NewTablet(t.Device, rec)
	}
	if f.pred != nil {
		pm, err := f.pred.mask(t)
		if err != nil {
			// a column of the other type: retrying cannot help, the spec must change
			return nil, pipe.Permanent(errKey(keyPredicate, err))
		}
		if mask != nil {
			for i, x := range mask {
				pm[i] = join(x, pm[i], true)
			}
		}
		mask = pm
	}
	whole := len(keep) == int(rec.NumCols())-1 && lo == 0 && hi == orig.Rec.NumRows()
	if mask != nil {
		switch n := trueCount(mask); {
		case n == 0:
			return nil, nil
		case n == len(mask):
			mask = nil
		}
	}
	if mask == nil && whole {
		return orig, nil
	}
	var out *tsfile.Tablet
	if len(keep) == int(rec.NumCols())-1 {
		rec.Retain()
		out = tsfile.NewTablet(t.Device, rec)
	} else {
		out = WithColumns(t.Device, rec, keep)
	}
	if mask == nil {
		return out, nil
	}
	defer out.Release()
	ft := tsfile.NewTablet(t.Device, takeRows(out.Rec, mask))
	return dropEmptyColumns(ft), nil
}

// takeRows keeps the rows of rec where mask is true. It copies the kept rows column by
// column with typed loops: on tablets of a few thousand rows the compute take and filter
// kernels cost more in dispatch (and FilterRecordBatch in a goroutine per column) than the
// copying itself (see BenchmarkFilterPredicate). Validity and boolean bitmaps are built
// directly.
func takeRows(rec arrow.Record, mask []uint8) arrow.Record {
	idx := make([]int32, 0, len(mask))
	for i, x := range mask {
		if x == triTrue {
			idx = append(idx, int32(i))
		}
	}
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	for c, col := range rec.Columns() {
		switch a := col.(type) {
		case *array.Int64:
			cols[c] = gather(a, a.Int64Values(), idx)
		case *array.Int32:
			cols[c] = gather(a, a.Int32Values(), idx)
		case *array.Float64:
			cols[c] = gather(a, a.Float64Values(), idx)
		case *array.Float32:
			cols[c] = gather(a, a.Float32Values(), idx)
		case *array.Boolean:
			bits, off := a.Data().Buffers()[1].Bytes(), a.Data().Offset()
			vals := make([]byte, bitutil.BytesForBits(int64(len(idx))))
			for k, i := range idx {
				j := off + int(i)
				vals[k>>3] |= (bits[j>>3] >> (j & 7) & 1) << (k & 7)
			}
			valid, nulls := gatherValidity(a, idx)
			data := array.NewData(a.DataType(), len(idx), []*memory.Buffer{valid, memory.NewBufferBytes(vals)}, nil, nulls, 0)
			cols[c] = array.MakeFromData(data)
			data.Release()
		default:
			b := array.NewBuilder(memory.DefaultAllocator, col.DataType())
			b.Reserve(len(idx))
			for _, i := range idx {
				tsfile.AppendValue(b, col, int(i))
			}
			cols[c] = b.NewArray()
			b.Release()
		}
	}
	return newRecord(rec.Schema(), cols, int64(len(idx)))
}

// gather returns the rows idx of a primitive array (vals are its values) as a new array.
func gather[T int32 | int64 | float32 | float64](a arrow.Array, vals []T, idx []int32) arrow.Array {
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = vals[i]
	}
	valid, nulls := gatherValidity(a, idx)
	var bits []byte
	if valid != nil {
		bits = valid.Bytes()
	}
	return newPrimitiveBits(a.DataType(), out, bits, nulls)
}

// gatherValidity returns the validity bitmap of the rows idx of a (nil when a has no
// null) and how many of them are null.
func gatherValidity(a arrow.Array, idx []int32) (*memory.Buffer, int) {
	if a.NullN() == 0 {
		return nil, 0
	}
	src, off := a.NullBitmapBytes(), a.Data().Offset()
	bits := make([]byte, bitutil.BytesForBits(int64(len(idx))))
	nulls := 0
	for k, i := range idx {
		j := off + int(i)
		v := src[j>>3] >> (j & 7) & 1
		bits[k>>3] |= v << (k & 7)
		nulls += int(v ^ 1)
	}
	if nulls == 0 {
		return nil, 0
	}
	return memory.NewBufferBytes(bits), nulls
}

// columns returns the indexes (≥ 1) of t's columns the pattern selects.
func (f *Filter) columns(t *tsfile.Tablet) []int {
	fs := t.Rec.Schema() // Field(i), not Fields() (a copy)
	keep := make([]int, 0, fs.NumFields()-1)
	if f.pattern.IsZero() || f.pattern.MatchDevice(t.Device) {
		for c := 1; c < fs.NumFields(); c++ {
			keep = append(keep, c)
		}
		return keep
	}
	for c := 1; c < fs.NumFields(); c++ {
		if f.pattern.Match(t.Device, fs.Field(c).Name) {
			keep = append(keep, c)
		}
	}
	return keep
}

// trueCount counts the rows a mask keeps.
func trueCount(mask []uint8) int {
	n := 0
	for _, x := range mask {
		if x == triTrue {
			n++
		}
	}
	return n
}

// dropEmptyColumns returns t without its all-null measurement columns (nil when none is
// left), releasing t when it makes a new tablet.
func dropEmptyColumns(t *tsfile.Tablet) *tsfile.Tablet {
	if t.Rec.NumRows() == 0 {
		t.Release()
		return nil
	}
	n := int(t.Rec.NumCols())
	keep := make([]int, 0, n-1)
	for c := 1; c < n; c++ {
		if col := t.Rec.Column(c); col.NullN() < col.Len() {
			keep = append(keep, c)
		}
	}
	if len(keep) == n-1 {
		return t
	}
	defer t.Release()
	return WithColumns(t.Device, t.Rec, keep)
}
