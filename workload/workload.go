// Package workload generates synthetic time series for the demo, benchmarks and tests:
// devices of a factory with five measurements of mixed types.
package workload

import (
	"fmt"
	"math"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/tsfile"
)

// Columns are the five measurements of every synthetic device.
var Columns = []tsfile.Column{
	{Name: "temp", Type: tsfile.Double},
	{Name: "pressure", Type: tsfile.Float},
	{Name: "count", Type: tsfile.Int64},
	{Name: "state", Type: tsfile.Int32},
	{Name: "ok", Type: tsfile.Boolean},
}

// DoubleColumns are five DOUBLE measurements, the shape of the ingest benchmark.
var DoubleColumns = []tsfile.Column{
	{Name: "s1", Type: tsfile.Double}, {Name: "s2", Type: tsfile.Double}, {Name: "s3", Type: tsfile.Double},
	{Name: "s4", Type: tsfile.Double}, {Name: "s5", Type: tsfile.Double},
}

// Generator yields tablets round-robin over its devices, each tablet continuing its
// device's time line.
type Generator struct {
	Database      string          // e.g. root.demo
	Devices       int             // number of devices
	RowsPerTablet int             // rows of each tablet
	Start         int64           // first timestamp (ms)
	Step          int64           // ms between rows
	Columns       []tsfile.Column // default Columns
	Mem           memory.Allocator

	next  int
	times []int64
}

// Device returns the path of device i.
func (g *Generator) Device(i int) string {
	return fmt.Sprintf("%s.line%d.dev%03d", g.Database, i%10, i)
}

// PointsPerTablet returns how many points one tablet holds.
func (g *Generator) PointsPerTablet() int { return g.RowsPerTablet * len(g.cols()) }

func (g *Generator) cols() []tsfile.Column {
	if g.Columns == nil {
		return Columns
	}
	return g.Columns
}

// Next returns the next tablet.
func (g *Generator) Next() *tsfile.Tablet {
	if g.times == nil {
		g.times = make([]int64, g.Devices)
		for i := range g.times {
			g.times[i] = g.Start
		}
	}
	if g.Step == 0 {
		g.Step = 1000
	}
	d := g.next % g.Devices
	g.next++
	cols := g.cols()
	b := tsfile.NewTabletBuilder(g.Mem, g.Device(d), cols)
	defer b.Release()
	n := g.RowsPerTablet
	t0 := g.times[d]
	tb := b.Times()
	tb.Reserve(n)
	for i := 0; i < n; i++ {
		tb.UnsafeAppend(t0 + int64(i)*g.Step)
	}
	for c, col := range cols {
		fb := b.Field(c)
		fb.Reserve(n)
		for i := 0; i < n; i++ {
			x := float64(t0/g.Step+int64(i)) / 50
			v := 20 + 5*math.Sin(x+float64(d)) + float64(c)
			switch col.Type {
			case tsfile.Double:
				fb.(*array.Float64Builder).UnsafeAppend(math.Round(v*100) / 100)
			case tsfile.Float:
				fb.(*array.Float32Builder).UnsafeAppend(float32(900 + v))
			case tsfile.Int64:
				fb.(*array.Int64Builder).UnsafeAppend(t0/g.Step + int64(i))
			case tsfile.Int32:
				fb.(*array.Int32Builder).UnsafeAppend(int32(i/100) % 4)
			case tsfile.Boolean:
				fb.(*array.BooleanBuilder).UnsafeAppend(v > 21)
			case tsfile.Text:
				fb.(*array.StringBuilder).Append([]string{"idle", "run", "stop"}[(i/200)%3])
			}
		}
	}
	g.times[d] = t0 + int64(n)*g.Step
	t, err := b.Build()
	if err != nil {
		panic(fmt.Sprintf("workload: %v", err))
	}
	return t
}
