package tsfile

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// MetaDevice is the Arrow schema metadata key that names a tablet's device.
const MetaDevice = "weir.device"

// TimeColumn is the name of the first column of every tablet and TsFile batch.
const TimeColumn = "time"

// Tablet is one device's rows: an Arrow record whose first column is "time" (int64) and whose
// other columns are nullable measurements of the six types. The unit of write, WAL entry and event.
type Tablet struct {
	Device string
	Rec    arrow.Record
}

// ErrEmptyTablet is returned for a tablet with no rows or no measurements.
var ErrEmptyTablet = errors.New("empty tablet")

// NewTablet wraps rec (taking over the caller's reference) as the tablet of device.
func NewTablet(device string, rec arrow.Record) *Tablet {
	return &Tablet{Device: device, Rec: rec}
}

// Rows returns the number of rows.
func (t *Tablet) Rows() int { return int(t.Rec.NumRows()) }

// Times returns the time column's values.
func (t *Tablet) Times() []int64 { return t.Rec.Column(0).(*array.Int64).Int64Values() }

// Columns returns the measurement columns (not time), in record order.
func (t *Tablet) Columns() []Column {
	fs := t.Rec.Schema().Fields()
	out := make([]Column, 0, len(fs)-1)
	for _, f := range fs[1:] {
		dt, _ := FromArrow(f.Type)
		out = append(out, Column{Name: f.Name, Type: dt})
	}
	return out
}

// Points counts the non-null measurement values.
func (t *Tablet) Points() int {
	n := 0
	for i := 1; i < int(t.Rec.NumCols()); i++ {
		c := t.Rec.Column(i)
		n += c.Len() - c.NullN()
	}
	return n
}

// Retain adds a reference to the underlying record.
func (t *Tablet) Retain() { t.Rec.Retain() }

// Release drops a reference to the underlying record.
func (t *Tablet) Release() { t.Rec.Release() }

// MinMaxTime returns the smallest and largest timestamp.
func (t *Tablet) MinMaxTime() (int64, int64) {
	ts := t.Times()
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, v := range ts {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

// Sorted reports whether times are strictly increasing (sorted and without duplicates).
func (t *Tablet) Sorted() bool {
	ts := t.Times()
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return false
		}
	}
	return true
}

// Validate checks the device path, the schema (time first, non-null int64; measurement names
// valid, unique, of the six types), that the tablet is not empty, that floating values are
// finite (NaN and ±Inf are refused) and that TEXT values are valid UTF-8 (as Arrow utf8 and
// the TsFile format require).
func (t *Tablet) Validate() error {
	if err := ValidateDevice(t.Device); err != nil {
		return err
	}
	if t.Rec == nil || t.Rec.NumRows() == 0 || t.Rec.NumCols() < 2 {
		return fmt.Errorf("tablet of %s: %w", t.Device, ErrEmptyTablet)
	}
	fs := t.Rec.Schema().Fields()
	if fs[0].Name != TimeColumn || fs[0].Type.ID() != arrow.INT64 {
		return fmt.Errorf("tablet of %s: first column must be int64 %q, got %s %s", t.Device, TimeColumn, fs[0].Name, fs[0].Type)
	}
	if t.Rec.Column(0).NullN() != 0 {
		return fmt.Errorf("tablet of %s: time column has nulls", t.Device)
	}
	seen := make(map[string]bool, len(fs))
	for i, f := range fs[1:] {
		if err := ValidateMeasurement(f.Name); err != nil {
			return fmt.Errorf("tablet of %s: %w", t.Device, err)
		}
		if seen[f.Name] {
			return fmt.Errorf("tablet of %s: measurement %q appears twice", t.Device, f.Name)
		}
		seen[f.Name] = true
		if _, err := FromArrow(f.Type); err != nil {
			return fmt.Errorf("tablet of %s: measurement %q: %w", t.Device, f.Name, err)
		}
		col := t.Rec.Column(i + 1)
		if err := checkFinite(col); err != nil {
			return fmt.Errorf("tablet of %s: measurement %q: %w", t.Device, f.Name, err)
		}
	}
	return nil
}

func checkFinite(col arrow.Array) error {
	switch c := col.(type) {
	case *array.Float32:
		if !anyNonFinite32(c.Float32Values()) {
			return nil // the common case, checked without branches; else find the row
		}
		for i, v := range c.Float32Values() {
			if c.IsValid(i) && (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) {
				return fmt.Errorf("row %d: value %v is not finite", i, v)
			}
		}
	case *array.Float64:
		if !anyNonFinite64(c.Float64Values()) {
			return nil
		}
		for i, v := range c.Float64Values() {
			if c.IsValid(i) && (math.IsNaN(v) || math.IsInf(v, 0)) {
				return fmt.Errorf("row %d: value %v is not finite", i, v)
			}
		}
	case *array.String:
		var bm []byte
		if c.NullN() > 0 {
			bm = c.NullBitmapBytes()
		}
		if i := firstInvalidUTF8(c, bm, c.Data().Offset()); i >= 0 {
			return fmt.Errorf("row %d: value %q is not valid UTF-8", i, c.Value(i))
		}
	}
	return nil
}

// anyNonFinite64 reports whether any of vs (null slots included) is NaN or ±Inf: their
// exponent bits are all ones, and adding one to that exponent carries into the sign bit.
func anyNonFinite64(vs []float64) bool {
	const exp, one = 0x7FF0000000000000, 0x0010000000000000
	var a, b, c, d uint64
	i := 0
	for ; i+4 <= len(vs); i += 4 {
		a |= math.Float64bits(vs[i])&exp + one
		b |= math.Float64bits(vs[i+1])&exp + one
		c |= math.Float64bits(vs[i+2])&exp + one
		d |= math.Float64bits(vs[i+3])&exp + one
	}
	for ; i < len(vs); i++ {
		a |= math.Float64bits(vs[i])&exp + one
	}
	return (a|b|c|d)>>63 != 0
}

// anyNonFinite32 is anyNonFinite64 for float32 values.
func anyNonFinite32(vs []float32) bool {
	const exp, one = 0x7F800000, 0x00800000
	var a, b uint32
	i := 0
	for ; i+2 <= len(vs); i += 2 {
		a |= math.Float32bits(vs[i])&exp + one
		b |= math.Float32bits(vs[i+1])&exp + one
	}
	for ; i < len(vs); i++ {
		a |= math.Float32bits(vs[i])&exp + one
	}
	return (a|b)>>31 != 0
}

// Normalize returns a tablet whose times are strictly increasing: rows are stably sorted by
// time and, for a repeated time, each column keeps its last non-null value (last write wins).
// A tablet already strictly increasing is returned as is (with an added reference).
func (t *Tablet) Normalize(mem memory.Allocator) *Tablet {
	if t.Sorted() {
		t.Retain()
		return &Tablet{Device: t.Device, Rec: t.Rec}
	}
	ts := t.Times()
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return ts[idx[a]] < ts[idx[b]] })
	// Group equal times; for each group pick per column the last non-null row.
	ncol := int(t.Rec.NumCols())
	b := array.NewRecordBuilder(mem, t.Rec.Schema())
	defer b.Release()
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && ts[idx[j]] == ts[idx[i]] {
			j++
		}
		b.Field(0).(*array.Int64Builder).Append(ts[idx[i]])
		for c := 1; c < ncol; c++ {
			col := t.Rec.Column(c)
			pick := -1
			for k := j - 1; k >= i; k-- {
				if col.IsValid(idx[k]) {
					pick = idx[k]
					break
				}
			}
			AppendValue(b.Field(c), col, pick)
		}
		i = j
	}
	return &Tablet{Device: t.Device, Rec: b.NewRecord()}
}

// AppendValue appends row of src to dst (same type), or a null when row < 0 or the value is null.
func AppendValue(dst array.Builder, src arrow.Array, row int) {
	if row < 0 || src.IsNull(row) {
		dst.AppendNull()
		return
	}
	switch s := src.(type) {
	case *array.Boolean:
		dst.(*array.BooleanBuilder).Append(s.Value(row))
	case *array.Int32:
		dst.(*array.Int32Builder).Append(s.Value(row))
	case *array.Int64:
		dst.(*array.Int64Builder).Append(s.Value(row))
	case *array.Float32:
		dst.(*array.Float32Builder).Append(s.Value(row))
	case *array.Float64:
		dst.(*array.Float64Builder).Append(s.Value(row))
	case *array.String:
		dst.(*array.StringBuilder).Append(s.Value(row))
	default:
		panic(fmt.Sprintf("tsfile: unsupported array type %T", src))
	}
}

// Value returns row of a measurement column as a Go value (bool, int32, int64, float32,
// float64, string), or nil when null.
func Value(col arrow.Array, row int) any {
	if col.IsNull(row) {
		return nil
	}
	switch s := col.(type) {
	case *array.Boolean:
		return s.Value(row)
	case *array.Int32:
		return s.Value(row)
	case *array.Int64:
		return s.Value(row)
	case *array.Float32:
		return s.Value(row)
	case *array.Float64:
		return s.Value(row)
	case *array.String:
		return s.Value(row)
	}
	return nil
}

// TabletSchema returns the Arrow schema of a tablet with the given measurement columns.
func TabletSchema(device string, cols []Column) *arrow.Schema {
	fields := make([]arrow.Field, 0, len(cols)+1)
	fields = append(fields, arrow.Field{Name: TimeColumn, Type: arrow.PrimitiveTypes.Int64})
	for _, c := range cols {
		fields = append(fields, arrow.Field{Name: c.Name, Type: c.Type.ArrowType(), Nullable: true})
	}
	var md *arrow.Metadata
	if device != "" {
		m := arrow.NewMetadata([]string{MetaDevice}, []string{device})
		md = &m
	}
	return arrow.NewSchema(fields, md)
}

// TabletBuilder builds a Tablet column by column or row by row.
type TabletBuilder struct {
	device string
	cols   []Column
	b      *array.RecordBuilder
}

// NewTabletBuilder starts a tablet of device with the given measurement columns.
func NewTabletBuilder(mem memory.Allocator, device string, cols []Column) *TabletBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &TabletBuilder{device: device, cols: cols, b: array.NewRecordBuilder(mem, TabletSchema(device, cols))}
}

// Times returns the time column builder.
func (tb *TabletBuilder) Times() *array.Int64Builder { return tb.b.Field(0).(*array.Int64Builder) }

// Field returns the builder of measurement column i (0-based, time excluded).
func (tb *TabletBuilder) Field(i int) array.Builder { return tb.b.Field(i + 1) }

// AppendRow appends one row: a time and one value per column (nil for null). Values must be
// of the column's Go type (bool, int32, int64, float32, float64, string); int and float64
// literals are converted where lossless.
func (tb *TabletBuilder) AppendRow(ts int64, vals ...any) error {
	if len(vals) != len(tb.cols) {
		return fmt.Errorf("row has %d values, tablet has %d columns", len(vals), len(tb.cols))
	}
	// check first so that a bad row leaves the builder untouched
	conv := make([]any, len(vals))
	for i, v := range vals {
		cv, err := convertValue(tb.cols[i].Type, v)
		if err != nil {
			return fmt.Errorf("column %q: %w", tb.cols[i].Name, err)
		}
		conv[i] = cv
	}
	tb.Times().Append(ts)
	for i, v := range conv {
		fb := tb.b.Field(i + 1)
		if v == nil {
			fb.AppendNull()
			continue
		}
		switch x := v.(type) {
		case bool:
			fb.(*array.BooleanBuilder).Append(x)
		case int32:
			fb.(*array.Int32Builder).Append(x)
		case int64:
			fb.(*array.Int64Builder).Append(x)
		case float32:
			fb.(*array.Float32Builder).Append(x)
		case float64:
			fb.(*array.Float64Builder).Append(x)
		case string:
			fb.(*array.StringBuilder).Append(x)
		}
	}
	return nil
}

func convertValue(t DataType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t {
	case Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case Int32:
		switch x := v.(type) {
		case int32:
			return x, nil
		case int:
			if x >= math.MinInt32 && x <= math.MaxInt32 {
				return int32(x), nil
			}
			return nil, fmt.Errorf("value %d overflows INT32", x)
		}
	case Int64:
		switch x := v.(type) {
		case int64:
			return x, nil
		case int:
			return int64(x), nil
		case int32:
			return int64(x), nil
		}
	case Float:
		switch x := v.(type) {
		case float32:
			return x, nil
		case float64:
			if math.Abs(x) > math.MaxFloat32 {
				return nil, fmt.Errorf("value %g overflows FLOAT", x)
			}
			return float32(x), nil
		}
	case Double:
		switch x := v.(type) {
		case float64:
			return x, nil
		case float32:
			return float64(x), nil
		case int:
			return float64(x), nil
		}
	case Text:
		if s, ok := v.(string); ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("value %v (%T) does not fit type %s", v, v, t)
}

// Len returns the number of rows appended so far.
func (tb *TabletBuilder) Len() int { return tb.Times().Len() }

// Build returns the validated tablet and resets the builder.
func (tb *TabletBuilder) Build() (*Tablet, error) {
	t := &Tablet{Device: tb.device, Rec: tb.b.NewRecord()}
	if err := t.Validate(); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// Release frees the builder.
func (tb *TabletBuilder) Release() { tb.b.Release() }
