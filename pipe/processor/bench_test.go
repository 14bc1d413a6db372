package processor

import (
	"context"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// benchTablets are n tablets of the demo workload (1,000 rows, 5 measurements), each
// continuing its device's time line (a stateful processor drops repeated times).
// They are made once per process and shared by the benchmarks (so that a profile shows the
// processors, not the generator).
func benchTablets(b *testing.B, n int) []*tsfile.Tablet {
	if len(benchCache) < n {
		gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 1000, Start: 1_700_000_000_000, Step: 1000}
		benchCache = make([]*tsfile.Tablet, max(n, benchDistinct))
		for i := range benchCache {
			benchCache[i] = gen.Next()
		}
	}
	return benchCache[:n]
}

var benchCache []*tsfile.Tablet

func benchProcessor(b *testing.B, p pipe.Processor) {
	tablets := benchTablets(b, min(b.N, benchDistinct))
	ctx := context.Background()
	var outs []*pipe.Event
	emit := func(e *pipe.Event) { outs = append(outs, e) }
	points := 0
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tb := tablets[i%len(tablets)]
		in := &pipe.Event{Kind: pipe.KindTablet, Tablet: tb, Origin: 1, OriginIndex: uint64(i + 1), Epoch: 1} // as from a memtable
		if err := p.Process(ctx, in, emit); err != nil {
			b.Fatal(err)
		}
		for _, o := range outs {
			if o != in {
				o.Release()
			}
		}
		outs = outs[:0]
		points += tb.Points()
	}
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "points/s")
	// CPU time of the process per op: less sensitive than the wall time to other loads
	// on a shared machine
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDistinct bounds the distinct tablets a benchmark makes (a stateful processor needs
// fresh times: run it with -benchtime of at most this many iterations).
var benchDistinct = 3000

// Baselines and ratios are measured by pipectl bench processor; these are for profiling.
func BenchmarkFilterPredicate(b *testing.B) {
	benchDistinct = 200 // stateless: the same tablets again
	defer func() { benchDistinct = 3000 }()
	pred, _ := ParsePredicate("temp > 22 and ok = true")
	benchProcessor(b, NewFilter(tsfile.Pattern{}, minInt, maxInt, pred))
}

func BenchmarkDownsampleSDT(b *testing.B) {
	d, _ := NewDownsample(DownsampleConfig{Method: MethodSDT, Deviation: 0.5})
	benchProcessor(b, d)
}

func BenchmarkDownsampleChangingValue(b *testing.B) {
	d, _ := NewDownsample(DownsampleConfig{Method: MethodChangingValue, Deviation: 0.5})
	benchProcessor(b, d)
}

func BenchmarkDownsampleTumblingAvg(b *testing.B) {
	d, _ := NewDownsample(DownsampleConfig{Method: MethodTumblingTime, Interval: 10_000, Strategy: StrategyAvg})
	benchProcessor(b, d)
}

func BenchmarkAggregate(b *testing.B) {
	a, _ := NewAggregate(AggregateConfig{Functions: []string{FuncCount, FuncAvg, FuncMin, FuncMax}, Interval: 60_000})
	benchProcessor(b, a)
}

// BenchmarkSDTColumn times sdt on one column of 1,000 rows (ns/row), for profiling.
func BenchmarkSDTColumn(b *testing.B) {
	n := 1000
	bl := array.NewFloat64Builder(memory.DefaultAllocator)
	times := make([]int64, n)
	for i := range times {
		times[i] = 1_700_000_000_000 + int64(i)*1000
		bl.Append(math.Round((20+5*math.Sin(float64(i)/50))*100) / 100)
	}
	arr := bl.NewFloat64Array()
	col, _ := newColumn(arr)
	d := &Downsample{cfg: DownsampleConfig{Method: MethodSDT, Deviation: 0.5}}
	var kept int
	for k := 0; k < b.N; k++ {
		s := &dsSeries{Type: tsfile.Double}
		var oc outColumn
		sdtNum(d, s, &col, times, col.f64, 0, &oc)
		kept = len(oc.rows)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/row")
	b.ReportMetric(float64(kept), "kept")
}
