package processor

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/tsfile"
)

// Value is one measurement value of any of the six types, in the field its type uses: I
// for INT32 and INT64, F for FLOAT and DOUBLE, S for TEXT, B for BOOLEAN. It is what the
// stateful processors keep (and save) between events.
type Value struct {
	I int64   `json:"i,omitempty"`
	F float64 `json:"f,omitempty"`
	S string  `json:"s,omitempty"`
	B bool    `json:"b,omitempty"`
}

// Num returns v as a float64 for type t (0 for TEXT and BOOLEAN).
func (v Value) Num(t tsfile.DataType) float64 {
	switch t {
	case tsfile.Int32, tsfile.Int64:
		return float64(v.I)
	case tsfile.Float, tsfile.Double:
		return v.F
	}
	return 0
}

// Equal reports whether v and w are the same value of type t.
func (v Value) Equal(w Value, t tsfile.DataType) bool {
	switch t {
	case tsfile.Int32, tsfile.Int64:
		return v.I == w.I
	case tsfile.Float, tsfile.Double:
		return v.F == w.F
	case tsfile.Text:
		return v.S == w.S
	}
	return v.B == w.B
}

// FromNum returns x as a value of numeric type t: rounded to the nearest integer (and
// clamped) for INT32 and INT64, rounded to float32 for FLOAT.
func FromNum(x float64, t tsfile.DataType) Value {
	switch t {
	case tsfile.Int32:
		return Value{I: int64(math.Max(math.MinInt32, math.Min(math.MaxInt32, math.Round(x))))}
	case tsfile.Int64:
		r := math.Round(x)
		switch {
		case r >= math.MaxInt64:
			return Value{I: math.MaxInt64}
		case r <= math.MinInt64:
			return Value{I: math.MinInt64}
		}
		return Value{I: int64(r)}
	case tsfile.Float:
		return Value{F: float64(float32(x))}
	}
	return Value{F: x}
}

// Float is a float64 that also survives JSON when it is not finite (a sum that
// overflowed): +Inf, -Inf and NaN are written as strings.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	x := float64(f)
	if finite(x) {
		return strconv.AppendFloat(nil, x, 'g', -1, 64), nil
	}
	return []byte(strconv.Quote(strconv.FormatFloat(x, 'g', -1, 64))), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	s := string(b)
	if u, err := strconv.Unquote(s); err == nil {
		s = u
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("float %s: %w", b, err)
	}
	*f = Float(x)
	return nil
}

// finite reports whether x is neither infinite nor NaN (a tablet holds finite numbers only).
func finite(x float64) bool { return !math.IsInf(x, 0) && !math.IsNaN(x) }

// numeric reports whether t is one of the four number types.
func numeric(t tsfile.DataType) bool {
	return t == tsfile.Int32 || t == tsfile.Int64 || t == tsfile.Float || t == tsfile.Double
}

// column gives typed access to a measurement column's rows.
type column struct {
	typ tsfile.DataType
	arr arrow.Array
	i32 []int32
	i64 []int64
	f32 []float32
	f64 []float64
	str *array.String
	bl  *array.Boolean
}

func newColumn(arr arrow.Array) (column, bool) {
	t, err := tsfile.FromArrow(arr.DataType())
	if err != nil {
		return column{}, false
	}
	c := column{typ: t, arr: arr}
	switch a := arr.(type) {
	case *array.Int32:
		c.i32 = a.Int32Values()
	case *array.Int64:
		c.i64 = a.Int64Values()
	case *array.Float32:
		c.f32 = a.Float32Values()
	case *array.Float64:
		c.f64 = a.Float64Values()
	case *array.String:
		c.str = a
	case *array.Boolean:
		c.bl = a
	}
	return c, true
}

// floats returns the column's values as numbers (a numeric column, or BOOLEAN as 0 and 1;
// nulls hold anything), in buf when they must be converted.
func (c *column) floats(buf []float64) []float64 {
	if c.f64 != nil {
		return c.f64
	}
	n := c.arr.Len()
	if cap(buf) < n {
		buf = make([]float64, n)
	}
	buf = buf[:n]
	switch {
	case c.bl != nil:
		for i := range buf {
			buf[i] = 0
			if c.bl.Value(i) {
				buf[i] = 1
			}
		}
	case c.i32 != nil:
		for i, v := range c.i32 {
			buf[i] = float64(v)
		}
	case c.i64 != nil:
		for i, v := range c.i64 {
			buf[i] = float64(v)
		}
	case c.f32 != nil:
		for i, v := range c.f32 {
			buf[i] = float64(v)
		}
	}
	return buf
}

// at returns row i's value and its number (0 for TEXT and BOOLEAN).
func (c *column) at(i int) (Value, float64) {
	switch c.typ {
	case tsfile.Int32:
		x := c.i32[i]
		return Value{I: int64(x)}, float64(x)
	case tsfile.Int64:
		x := c.i64[i]
		return Value{I: x}, float64(x)
	case tsfile.Float:
		x := float64(c.f32[i])
		return Value{F: x}, x
	case tsfile.Double:
		x := c.f64[i]
		return Value{F: x}, x
	case tsfile.Text:
		return Value{S: c.str.Value(i)}, 0
	}
	return Value{B: c.bl.Value(i)}, 0
}

// sample is a value at a time.
type sample struct {
	T int64 `json:"t"`
	V Value `json:"v"`
}

// outColumn is a measurement column of an output tablet under construction: values kept
// by value (pts for TEXT and BOOLEAN, nums for numbers: no pointers for the collector to
// follow), then rows of the input column src (rows, by index, increasing), all in time
// order (every value before the first row).
type outColumn struct {
	name  string
	typ   tsfile.DataType
	pts   []sample
	nums  []numSample
	src   arrow.Array
	times []int64     // the input's time column, for rows
	tarr  arrow.Array // the input's time column as an array (optional: shared when every row is kept)
	rows  []int32
	buf   int // Downsample: the index of the buffers rows and nums came from
}

// numSample is a sample of a numeric column.
type numSample struct {
	T int64
	I int64
	F float64
}

// add appends a value (before any row).
func (c *outColumn) add(t int64, v Value) {
	if numeric(c.typ) {
		c.nums = append(c.nums, numSample{t, v.I, v.F})
	} else {
		c.pts = append(c.pts, sample{t, v})
	}
}

func (c *outColumn) values() int { return len(c.pts) + len(c.nums) }

func (c *outColumn) len() int { return c.values() + len(c.rows) }

// timeList returns the times of the column's values and rows, in order, in a new slice.
func (c *outColumn) timeList() []int64 {
	out := make([]int64, 0, c.len())
	for _, p := range c.pts {
		out = append(out, p.T)
	}
	for _, p := range c.nums {
		out = append(out, p.T)
	}
	for _, r := range c.rows {
		out = append(out, c.times[r])
	}
	return out
}

// buildTablet makes a tablet of device from the columns (a column without values is left
// out): the rows are the union of their times. Nil when no column has a value.
// The schema comes from schemas (nil: made each time).
func buildTablet(mem memory.Allocator, schemas *schemaCache, device string, cols []outColumn) *tsfile.Tablet {
	var schema []tsfile.Column
	var used []*outColumn
	for i := range cols {
		c := &cols[i]
		if c.len() == 0 {
			continue
		}
		schema = append(schema, tsfile.Column{Name: c.name, Type: c.typ})
		used = append(used, c)
	}
	if len(used) == 0 {
		return nil
	}
	sch := schemas.get(device, schema)
	if rowsOnly(used) {
		return buildFromRows(device, sch, used)
	}
	ctimes := make([][]int64, len(used))
	for i, c := range used {
		ctimes[i] = c.timeList()
	}
	times := ctimes[0]
	for _, ct := range ctimes[1:] {
		times = mergeTimes(times, ct)
	}
	// The values come from valid tablets and finite arithmetic (callers drop non-finite
	// results): the record is built without tsfile's validation pass, numeric columns over
	// the slices filled here.
	arrs := make([]arrow.Array, 0, len(used)+1)
	defer func() {
		for _, a := range arrs {
			a.Release()
		}
	}()
	arrs = append(arrs, newPrimitive(arrow.PrimitiveTypes.Int64, times, nil))
	for i, c := range used {
		dt := c.typ.ArrowType()
		ct := ctimes[i]
		switch c.typ {
		case tsfile.Int64:
			arrs = append(arrs, fill[int64](dt, c, ct, times, true))
		case tsfile.Int32:
			arrs = append(arrs, fill[int32](dt, c, ct, times, true))
		case tsfile.Double:
			arrs = append(arrs, fill[float64](dt, c, ct, times, false))
		case tsfile.Float:
			arrs = append(arrs, fill[float32](dt, c, ct, times, false))
		case tsfile.Boolean:
			arrs = append(arrs, fillBools(dt, c, ct, times))
		default:
			fb := array.NewBuilder(mem, dt)
			fb.Reserve(len(times))
			k, n := 0, len(ct)
			for _, t := range times {
				if k < n && ct[k] == t {
					if k < len(c.pts) {
						appendValue(fb, c.typ, c.pts[k].V)
					} else {
						tsfile.AppendValue(fb, c.src, int(c.rows[k-c.values()]))
					}
					k++
				} else {
					fb.AppendNull()
				}
			}
			arrs = append(arrs, fb.NewArray())
			fb.Release()
		}
	}
	return tsfile.NewTablet(device, newRecord(sch, arrs, int64(len(times))))
}

// schemaCache keeps the schema of each device's last output tablet.
type schemaCache struct {
	m map[string]*cachedSchema
}

type cachedSchema struct {
	cols   []tsfile.Column
	schema *arrow.Schema
}

// get returns tsfile.TabletSchema(device, cols), the cached one when cols are those of
// device's last call.
func (c *schemaCache) get(device string, cols []tsfile.Column) *arrow.Schema {
	if c == nil {
		return tsfile.TabletSchema(device, cols)
	}
	if c.m == nil || len(c.m) > 1<<16 {
		c.m = map[string]*cachedSchema{}
	}
	e := c.m[device]
	if e == nil || !slices.Equal(e.cols, cols) {
		e = &cachedSchema{cols: slices.Clone(cols), schema: tsfile.TabletSchema(device, cols)}
		c.m[device] = e
	}
	return e.schema
}

// fill returns column c (its times ct, a subset of times) aligned on times (null where c
// has no value) as an array of dt (element type T; isInt: an integer type, its samples in
// I, else in F).
func fill[T number](dt arrow.DataType, c *outColumn, ct, times []int64, isInt bool) arrow.Array {
	out := make([]T, len(times))
	var src []T
	if len(c.rows) > 0 {
		src = primitiveValues[T](c.src)
	}
	conv := func(v numSample) T {
		if isInt {
			return T(v.I)
		}
		return T(v.F)
	}
	if len(ct) == len(times) { // the same times: no null
		for k, v := range c.nums {
			out[k] = conv(v)
		}
		rest := out[len(c.nums):]
		for k, r := range c.rows {
			rest[k] = src[r]
		}
		return newPrimitiveBits(dt, out, nil, 0)
	}
	bits := make([]byte, bitutil.BytesForBits(int64(len(times))))
	k, n, nn := 0, len(ct), len(c.nums)
	for j, t := range times {
		if k < n && ct[k] == t {
			if k < nn {
				out[j] = conv(c.nums[k])
			} else {
				out[j] = src[c.rows[k-nn]]
			}
			bits[j>>3] |= 1 << (j & 7)
			k++
		}
	}
	return newPrimitiveBits(dt, out, bits, len(times)-n)
}

// fillBools is fill of a BOOLEAN column (its values in pts, then rows of src), the
// bitmaps built directly.
func fillBools(dt arrow.DataType, c *outColumn, ct, times []int64) arrow.Array {
	vals := make([]byte, bitutil.BytesForBits(int64(len(times))))
	var valid []byte
	if len(ct) != len(times) {
		valid = make([]byte, len(vals))
	}
	var src []byte
	off := 0
	if len(c.rows) > 0 {
		src, off = c.src.Data().Buffers()[1].Bytes(), c.src.Data().Offset()
	}
	k, n, np := 0, len(ct), len(c.pts)
	for j, t := range times {
		if k < n && ct[k] == t {
			var b byte
			if k < np {
				if c.pts[k].V.B {
					b = 1
				}
			} else {
				r := off + int(c.rows[k-np])
				b = src[r>>3] >> (r & 7) & 1
			}
			vals[j>>3] |= b << (j & 7)
			if valid != nil {
				valid[j>>3] |= 1 << (j & 7)
			}
			k++
		}
	}
	var vb *memory.Buffer
	nulls := len(times) - n
	if nulls > 0 {
		vb = memory.NewBufferBytes(valid)
	}
	data := array.NewData(dt, len(times), []*memory.Buffer{vb, memory.NewBufferBytes(vals)}, nil, nulls, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

// newPrimitive makes an Arrow array of dt (a primitive type with elements T) holding vals
// without copying them; valid marks the non-null elements (nil: all are).
func newPrimitive[T int32 | int64 | float32 | float64](dt arrow.DataType, vals []T, valid []bool) arrow.Array {
	if valid == nil {
		return newPrimitiveBits(dt, vals, nil, 0)
	}
	bits := make([]byte, bitutil.BytesForBits(int64(len(valid))))
	nulls := 0
	for i, ok := range valid {
		if ok {
			bits[i>>3] |= 1 << (i & 7)
		} else {
			nulls++
		}
	}
	return newPrimitiveBits(dt, vals, bits, nulls)
}

// newPrimitiveBits makes an Arrow array of dt (a primitive type with elements T) over vals
// and the validity bitmap bits (nil: no null; else nulls of them are null), without
// copying either.
func newPrimitiveBits[T int32 | int64 | float32 | float64](dt arrow.DataType, vals []T, bits []byte, nulls int) arrow.Array {
	var bytes []byte
	if len(vals) > 0 {
		bytes = unsafe.Slice((*byte)(unsafe.Pointer(&vals[0])), len(vals)*int(unsafe.Sizeof(vals[0])))
	}
	var bitmap *memory.Buffer
	if bits != nil && nulls > 0 {
		bitmap = memory.NewBufferBytes(bits)
	} else {
		nulls = 0
	}
	data := array.NewData(dt, len(vals), []*memory.Buffer{bitmap, memory.NewBufferBytes(bytes)}, nil, nulls, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

// primitiveValues returns the values of a primitive Arrow array of element type T.
func primitiveValues[T int32 | int64 | float32 | float64](a arrow.Array) []T {
	var v any
	switch x := a.(type) {
	case *array.Int32:
		v = x.Int32Values()
	case *array.Int64:
		v = x.Int64Values()
	case *array.Float32:
		v = x.Float32Values()
	case *array.Float64:
		v = x.Float64Values()
	}
	return v.([]T)
}

// rowsOnly reports whether the columns hold rows of one input only (no values).
func rowsOnly(cols []*outColumn) bool {
	for _, c := range cols {
		if c.values() > 0 || c.src == nil || len(c.times) != len(cols[0].times) {
			return false
		}
	}
	return true
}

// buildFromRows builds the tablet of columns made of input rows only: the output rows are
// the input rows some column keeps, in input order; a column is null where it does not
// keep the row. When some column keeps every row, the output shares the input's buffers:
// the time column and every column keeping every row as they are, the others' values
// under a validity bitmap of their rows. Otherwise numeric columns are gathered into
// slices that become the arrays.
func buildFromRows(device string, schema *arrow.Schema, cols []*outColumn) *tsfile.Tablet {
	n := len(cols[0].times)
	full := false
	for _, c := range cols {
		full = full || len(c.rows) == n
	}
	arrs := make([]arrow.Array, 0, len(cols)+1)
	defer func() {
		for _, a := range arrs {
			a.Release()
		}
	}()
	if full {
		if ta := cols[0].tarr; ta != nil && ta.NullN() == 0 {
			ta.Retain()
			arrs = append(arrs, ta)
		} else {
			arrs = append(arrs, newPrimitiveBits(arrow.PrimitiveTypes.Int64, append([]int64(nil), cols[0].times...), nil, 0))
		}
		for _, c := range cols {
			arrs = append(arrs, withRows(c.src, c.rows))
		}
		return tsfile.NewTablet(device, newRecord(schema, arrs, int64(n)))
	}
	kept := make([]bool, n) // by input row: some column keeps it
	for _, c := range cols {
		for _, r := range c.rows {
			kept[r] = true
		}
	}
	sel := make([]int32, 0, n)
	for r, k := range kept {
		if k {
			sel = append(sel, int32(r))
		}
	}
	arrs = append(arrs, newPrimitiveBits(arrow.PrimitiveTypes.Int64, pick(cols[0].times, sel), nil, 0))
	for _, c := range cols {
		var bits []byte
		if len(c.rows) != len(sel) {
			bits = make([]byte, bitutil.BytesForBits(int64(len(sel))))
			j := 0
			for k, r := range sel {
				if j < len(c.rows) && c.rows[j] == r {
					bits[k>>3] |= 1 << (k & 7)
					j++
				}
			}
		}
		nulls := len(sel) - len(c.rows)
		switch a := c.src.(type) {
		case *array.Int64:
			arrs = append(arrs, newPrimitiveBits(a.DataType(), pick(a.Int64Values(), sel), bits, nulls))
		case *array.Int32:
			arrs = append(arrs, newPrimitiveBits(a.DataType(), pick(a.Int32Values(), sel), bits, nulls))
		case *array.Float64:
			arrs = append(arrs, newPrimitiveBits(a.DataType(), pick(a.Float64Values(), sel), bits, nulls))
		case *array.Float32:
			arrs = append(arrs, newPrimitiveBits(a.DataType(), pick(a.Float32Values(), sel), bits, nulls))
		case *array.Boolean:
			src, off := a.Data().Buffers()[1].Bytes(), a.Data().Offset()
			vals := make([]byte, bitutil.BytesForBits(int64(len(sel))))
			for k, r := range sel {
				j := off + int(r)
				vals[k>>3] |= (src[j>>3] >> (j & 7) & 1) << (k & 7)
			}
			var vb *memory.Buffer
			if nulls > 0 {
				vb = memory.NewBufferBytes(bits)
			}
			data := array.NewData(a.DataType(), len(sel), []*memory.Buffer{vb, memory.NewBufferBytes(vals)}, nil, nulls, 0)
			arrs = append(arrs, array.MakeFromData(data))
			data.Release()
		default:
			b := array.NewBuilder(memory.DefaultAllocator, c.src.DataType())
			b.Reserve(len(sel))
			for k, r := range sel {
				if bits == nil || bitutil.BitIsSet(bits, k) {
					tsfile.AppendValue(b, c.src, int(r))
				} else {
					b.AppendNull()
				}
			}
			arrs = append(arrs, b.NewArray())
			b.Release()
		}
	}
	return tsfile.NewTablet(device, newRecord(schema, arrs, int64(len(sel))))
}

// withRows returns src (an input column) restricted to rows (valid rows of src, increasing):
// src itself (retained) when rows are all its rows, else an array sharing src's buffers
// under a new validity bitmap that holds rows only.
func withRows(src arrow.Array, rows []int32) arrow.Array {
	n := src.Len()
	if len(rows) == n {
		src.Retain()
		return src
	}
	d := src.Data()
	off := d.Offset()
	bits := make([]byte, bitutil.BytesForBits(int64(off+n)))
	for _, r := range rows {
		i := off + int(r)
		bits[i>>3] |= 1 << (i & 7)
	}
	bufs := append([]*memory.Buffer{memory.NewBufferBytes(bits)}, d.Buffers()[1:]...)
	data := array.NewData(d.DataType(), n, bufs, d.Children(), n-len(rows), off)
	defer data.Release()
	return array.MakeFromData(data)
}

// pick returns vals at the indexes sel.
func pick[T any](vals []T, sel []int32) []T {
	out := make([]T, len(sel))
	for k, r := range sel {
		out[k] = vals[r]
	}
	return out
}

// mergeTimes returns the sorted union of times and ct (both sorted, distinct).
func mergeTimes(times, ct []int64) []int64 {
	if slices.Equal(times, ct) {
		return times
	}
	out := make([]int64, 0, len(times)+len(ct))
	i, k := 0, 0
	for i < len(times) || k < len(ct) {
		switch {
		case k == len(ct) || (i < len(times) && times[i] < ct[k]):
			out = append(out, times[i])
			i++
		case i == len(times) || ct[k] < times[i]:
			out = append(out, ct[k])
			k++
		default:
			out = append(out, times[i])
			i++
			k++
		}
	}
	return out
}

func appendValue(b array.Builder, t tsfile.DataType, v Value) {
	switch t {
	case tsfile.Int32:
		b.(*array.Int32Builder).Append(int32(v.I))
	case tsfile.Int64:
		b.(*array.Int64Builder).Append(v.I)
	case tsfile.Float:
		b.(*array.Float32Builder).Append(float32(v.F))
	case tsfile.Double:
		b.(*array.Float64Builder).Append(v.F)
	case tsfile.Text:
		b.(*array.StringBuilder).Append(v.S)
	case tsfile.Boolean:
		b.(*array.BooleanBuilder).Append(v.B)
	}
}

// increasing reports whether ts is strictly increasing (tsfile.Tablet.Sorted), eight
// comparisons at a time without a branch each.
func increasing(ts []int64) bool {
	b2u := func(b bool) uint {
		if b {
			return 1
		}
		return 0
	}
	i := 1
	for ; i+8 <= len(ts); i += 8 {
		w := ts[i-1 : i+8 : i+8]
		bad := b2u(w[1] <= w[0]) | b2u(w[2] <= w[1]) | b2u(w[3] <= w[2]) | b2u(w[4] <= w[3]) |
			b2u(w[5] <= w[4]) | b2u(w[6] <= w[5]) | b2u(w[7] <= w[6]) | b2u(w[8] <= w[7])
		if bad != 0 {
			return false
		}
	}
	for ; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return false
		}
	}
	return true
}

// timeRange is the range of a tablet's times and whether they are increasing.
type timeRange struct {
	lo, hi     int64 // MaxInt64, MinInt64 when there is none
	increasing bool
}

// timeRangeOf returns the range of ts and whether ts is strictly increasing (then the
// range is its ends), in one pass when it is not.
func timeRangeOf(ts []int64) timeRange {
	if len(ts) == 0 {
		return timeRange{math.MaxInt64, math.MinInt64, true}
	}
	if increasing(ts) {
		return timeRange{ts[0], ts[len(ts)-1], true}
	}
	lo, hi := ts[0], ts[0]
	for _, v := range ts[1:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	return timeRange{lo, hi, false}
}

// winRun is a run of rows of increasing times in one window of a tumbling interval.
type winRun struct {
	w    int64 // the window: floorDiv(time, interval)
	i, j int   // the rows i..j-1
}

// windowRuns splits times (increasing) into runs of rows in the same window of length iv
// (windows start at multiples of iv), in runs' space. Each run's end is found by a
// galloping search from its start, not row by row.
func windowRuns(times []int64, iv int64, runs []winRun) []winRun {
	runs = runs[:0]
	n := len(times)
	for i := 0; i < n; {
		w := floorDiv(times[i], iv)
		end := (w + 1) * iv
		if end < w*iv { // overflow at the end of time
			end = math.MaxInt64
		}
		// the first row at or after end: rows below lo are before it, hi is at or after it
		lo, hi, step := i+1, i+1, 1
		for hi < n && times[hi] < end {
			lo = hi + 1
			hi += step
			step *= 2
		}
		hi = min(hi, n)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if times[m] < end {
				lo = m + 1
			} else {
				hi = m
			}
		}
		runs = append(runs, winRun{w, i, lo})
		i = lo
	}
	return runs
}

// floorDiv is a/b rounded down (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// record is an arrow.Record of columns built here to the types of its schema: it holds
// them without array.NewRecord's check of each column's type against the schema (a
// reflect.DeepEqual per column, a tenth of an aggregate's output tablet).
type record struct {
	refs   atomic.Int64
	schema *arrow.Schema
	rows   int64
	cols   []arrow.Array
}

// newRecord returns a record of schema over cols (retained), which must be of the
// schema's types and hold rows rows (checked: their number and lengths).
func newRecord(schema *arrow.Schema, cols []arrow.Array, rows int64) arrow.Record {
	if len(cols) != schema.NumFields() {
		panic(fmt.Sprintf("processor: %d columns for %d fields", len(cols), schema.NumFields()))
	}
	r := &record{schema: schema, rows: rows, cols: slices.Clone(cols)}
	for i, c := range r.cols {
		if int64(c.Len()) < rows {
			panic(fmt.Sprintf("processor: column %d holds %d rows, not %d", i, c.Len(), rows))
		}
		c.Retain()
	}
	r.refs.Store(1)
	return r
}

func (r *record) Retain() { r.refs.Add(1) }

func (r *record) Release() {
	if r.refs.Add(-1) == 0 {
		for _, c := range r.cols {
			c.Release()
		}
		r.cols = nil
	}
}

func (r *record) Schema() *arrow.Schema    { return r.schema }
func (r *record) NumRows() int64           { return r.rows }
func (r *record) NumCols() int64           { return int64(len(r.cols)) }
func (r *record) Columns() []arrow.Array   { return r.cols }
func (r *record) Column(i int) arrow.Array { return r.cols[i] }
func (r *record) ColumnName(i int) string  { return r.schema.Field(i).Name }
func (r *record) MarshalJSON() ([]byte, error) {
	rec := array.NewRecord(r.schema, r.cols, r.rows)
	defer rec.Release()
	return rec.MarshalJSON()
}

func (r *record) SetColumn(i int, col arrow.Array) (arrow.Record, error) {
	rec := array.NewRecord(r.schema, r.cols, r.rows)
	defer rec.Release()
	return rec.SetColumn(i, col)
}

func (r *record) NewSlice(i, j int64) arrow.Record {
	rec := array.NewRecord(r.schema, r.cols, r.rows)
	defer rec.Release()
	return rec.NewSlice(i, j)
}
