package processor

import (
	"math"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
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

// outColumn is a measurement column of an output tablet under construction: its samples in
// time order.
type outColumn struct {
	name string
	typ  tsfile.DataType
	pts  []sample
}

// buildTablet makes a tablet of device from columns of samples (each in time order; a
// column without samples is left out): the rows are the union of their times. Nil when no
// column has a sample.
func buildTablet(mem memory.Allocator, device string, cols []outColumn) *tsfile.Tablet {
	var times []int64
	var schema []tsfile.Column
	var used []*outColumn
	for i := range cols {
		c := &cols[i]
		if len(c.pts) == 0 {
			continue
		}
		schema = append(schema, tsfile.Column{Name: c.name, Type: c.typ})
		used = append(used, c)
		for _, p := range c.pts {
			times = append(times, p.T)
		}
	}
	if len(used) == 0 {
		return nil
	}
	if len(used) > 1 {
		slices.Sort(times)
		times = slices.Compact(times)
	}
	b := tsfile.NewTabletBuilder(mem, device, schema)
	defer b.Release()
	b.Times().AppendValues(times, nil)
	for ci, c := range used {
		fb := b.Field(ci)
		fb.Reserve(len(times))
		k := 0
		for _, t := range times {
			if k < len(c.pts) && c.pts[k].T == t {
				appendValue(fb, c.typ, c.pts[k].V)
				k++
			} else {
				fb.AppendNull()
			}
		}
	}
	t, err := b.Build()
	if err != nil {
		// samples come from valid tablets and finite arithmetic: a failure is a bug
		panic("processor: build output tablet: " + err.Error())
	}
	return t
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

// floorDiv is a/b rounded down (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
