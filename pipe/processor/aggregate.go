package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// Aggregate functions.
const (
	FuncCount = "count"
	FuncSum   = "sum"
	FuncAvg   = "avg"
	FuncMin   = "min"
	FuncMax   = "max"
	FuncFirst = "first"
	FuncLast  = "last"
)

// AggregateFunctions lists the aggregate functions.
var AggregateFunctions = []string{FuncCount, FuncSum, FuncAvg, FuncMin, FuncMax, FuncFirst, FuncLast}

const (
	keyFunctions = "functions"
	keyLateness  = "allowed-lateness"
	keyKeepRaw   = "keep-raw"
)

// ParseFunctions parses a comma-separated list of aggregate functions.
func ParseFunctions(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if !slices.Contains(AggregateFunctions, f) {
			return nil, fmt.Errorf("unknown function %q (known: %s)", f, strings.Join(AggregateFunctions, ", "))
		}
		if slices.Contains(out, f) {
			return nil, fmt.Errorf("function %q given twice", f)
		}
		out = append(out, f)
	}
	return out, nil
}

func checkFunctions(v string) error {
	_, err := ParseFunctions(v)
	return err
}

func init() {
	pipe.RegisterProcessor(pipe.PluginInfo{
		Name: "aggregate",
		Doc: "Aggregates each series over tumbling time windows into new measurements named " +
			"<measurement>_<function> (temp_avg) at the window's start. A device's window is emitted " +
			"once a point at or after its end plus allowed-lateness arrives; later points of a " +
			"closed window are dropped. Stateful: open windows are saved with the pipe's progress.",
		Params: []pipe.ParamSpec{
			{Key: keyFunctions, Type: pipe.String, Default: FuncAvg, Check: checkFunctions,
				Doc: "comma-separated: count, sum, avg, min, max, first, last (sum, avg, min and max of numbers only)"},
			{Key: keyInterval, Type: pipe.Duration, Default: "1m", Check: positive,
				Doc: "the window length (windows start at multiples of it)"},
			{Key: keyLateness, Type: pipe.Duration, Default: "0s", Min: pipe.MinOf(0),
				Doc: "how long after a window's end (in data time) points may still arrive out of order"},
			{Key: keyKeepRaw, Type: pipe.Bool, Default: "false",
				Doc: "also pass the raw points on (a TsFile then passes untouched)"},
			patternParam("the series to aggregate; the others pass through"),
			timeUnitParam,
		},
	}, func() pipe.Processor { return &Aggregate{} })
}

// AggregateConfig configures an Aggregate.
type AggregateConfig struct {
	Functions []string       // of AggregateFunctions, in output order
	Interval  int64          // window length in time steps (> 0)
	Lateness  int64          // allowed lateness in time steps (≥ 0)
	Pattern   tsfile.Pattern // series to aggregate (zero: all)
	KeepRaw   bool           // pass the raw points on too
}

// Check validates the configuration, naming the parameter at fault.
func (c AggregateConfig) Check() error {
	if len(c.Functions) == 0 {
		return fmt.Errorf("%s: none given", keyFunctions)
	}
	if _, err := ParseFunctions(strings.Join(c.Functions, ",")); err != nil {
		return errKey(keyFunctions, err)
	}
	if c.Interval <= 0 {
		return fmt.Errorf("%s: %d must be above zero", keyInterval, c.Interval)
	}
	if c.Lateness < 0 {
		return fmt.Errorf("%s: %d is negative", keyLateness, c.Lateness)
	}
	return nil
}

// Aggregate is the aggregate processor. Its state (per device: the open windows'
// accumulators, the largest time seen, the closed frontier) is saved with the pipe's
// progress (pipe.StatefulProcessor): after a restart no window is lost or counted twice.
type Aggregate struct {
	cfg     AggregateConfig
	origin  uint32
	mem     memory.Allocator
	devices map[string]*aggDevice
	guard   epochGuard
	names   map[string][]string // measurement → output names by function
	// windows and accumulators of emitted windows, for reuse
	freeWins []map[string]*accumulator
	freeAccs []*accumulator
	// scratch of emit
	starts     []int64
	wins       []map[string]*accumulator
	ms         []aggSeries
	accs       []*accumulator
	schemaCols []tsfile.Column
	oks        []bool
	cols       []aggColumn
	runs       []winRun
	runWins    []map[string]*accumulator // by run of runs: its window, once looked up
}

// aggState is what SaveState saves.
type aggState struct {
	Devices map[string]*aggDevice `json:"devices"`
	Guard   epochGuard            `json:"guard"`
}

type aggDevice struct {
	Max    int64 `json:"max"`    // the largest time seen
	Closed int64 `json:"closed"` // windows ending at or before this are emitted
	Late   int64 `json:"late"`   // points dropped because their window was closed
	// Open holds the open windows: window start → measurement → accumulator.
	Open map[int64]map[string]*accumulator `json:"open"`
	// the schema of the last output tablet, and its columns
	schema     *arrow.Schema
	schemaCols []tsfile.Column
	// indexes of Open (not saved: LoadState rebuilds them): its window starts, sorted,
	// and the measurements of its windows, sorted (with perhaps some no window has)
	starts []int64
	names  []string
}

// reindex rebuilds d's indexes of Open.
func (d *aggDevice) reindex() {
	d.starts, d.names = d.starts[:0], d.names[:0]
	for w, win := range d.Open {
		d.starts = append(d.starts, w)
		for m := range win {
			d.addName(m)
		}
	}
	slices.Sort(d.starts)
}

// addStart records a new window of Open.
func (d *aggDevice) addStart(w int64) {
	if n := len(d.starts); n == 0 || d.starts[n-1] < w {
		d.starts = append(d.starts, w)
		return
	}
	if i, found := slices.BinarySearch(d.starts, w); !found {
		d.starts = slices.Insert(d.starts, i, w)
	}
}

// addName records a measurement of a window of Open.
func (d *aggDevice) addName(m string) {
	if i, found := slices.BinarySearch(d.names, m); !found {
		d.names = slices.Insert(d.names, i, m)
	}
}

type accumulator struct {
	Type  tsfile.DataType `json:"type"`
	Count int64           `json:"count"`
	Sum   Float           `json:"sum"`
	Min   Value           `json:"min"`
	Max   Value           `json:"max"`
	First sample          `json:"first"`
	Last  sample          `json:"last"`
}

func (a *accumulator) add(t int64, v Value, x float64) {
	if a.Count == 0 {
		a.Min, a.Max, a.First, a.Last = v, v, sample{t, v}, sample{t, v}
	} else {
		if numeric(a.Type) {
			if less(v, a.Min, a.Type) {
				a.Min = v
			}
			if less(a.Max, v, a.Type) {
				a.Max = v
			}
		}
		if t < a.First.T {
			a.First = sample{t, v}
		}
		if t >= a.Last.T {
			a.Last = sample{t, v}
		}
	}
	a.Count++
	a.Sum += Float(x)
}

func less(a, b Value, t tsfile.DataType) bool {
	if t == tsfile.Int32 || t == tsfile.Int64 {
		return a.I < b.I
	}
	return a.F < b.F
}

// NewAggregate returns an aggregate processor for cfg.
func NewAggregate(cfg AggregateConfig) (*Aggregate, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Pattern.String() == "root.**" {
		cfg.Pattern = tsfile.Pattern{}
	}
	return &Aggregate{cfg: cfg, origin: LocalOrigin(nil), mem: memory.DefaultAllocator, devices: map[string]*aggDevice{}}, nil
}

// Open implements pipe.Processor. A bad parameter is a permanent error: retrying cannot
// fix a spec.
func (a *Aggregate) Open(ctx context.Context, env *pipe.Env) error {
	return pipe.Permanent(a.open(ctx, env))
}

func (a *Aggregate) open(_ context.Context, env *pipe.Env) error {
	p := env.Params
	unit := p.String(keyTimeUnit)
	fns, err := ParseFunctions(p.String(keyFunctions))
	if err != nil {
		return errKey(keyFunctions, err)
	}
	cfg := AggregateConfig{Functions: fns, Pattern: p.Pattern(keyPattern), KeepRaw: p.Bool(keyKeepRaw)}
	if cfg.Interval, err = ticks(keyInterval, p.Duration(keyInterval), unit); err != nil {
		return err
	}
	late, err := optDuration(p, keyLateness)
	if err != nil {
		return err
	}
	if late > 0 {
		if cfg.Lateness, err = ticks(keyLateness, late, unit); err != nil {
			return err
		}
	}
	n, err := NewAggregate(cfg)
	if err != nil {
		return err
	}
	*a = *n
	a.origin = LocalOrigin(env)
	return nil
}

// Close implements pipe.Processor.
func (a *Aggregate) Close() error { return nil }

// SaveState implements pipe.StatefulProcessor.
func (a *Aggregate) SaveState() ([]byte, error) {
	return json.Marshal(aggState{Devices: a.devices, Guard: a.guard})
}

// LoadState implements pipe.StatefulProcessor.
func (a *Aggregate) LoadState(b []byte) error {
	st := aggState{Devices: map[string]*aggDevice{}}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("aggregate state: %w", err)
	}
	if st.Devices == nil {
		st.Devices = map[string]*aggDevice{}
	}
	for _, d := range st.Devices {
		if d.Open == nil {
			d.Open = map[int64]map[string]*accumulator{}
		}
		d.reindex()
	}
	a.devices, a.guard = st.Devices, st.Guard
	return nil
}

// Late returns how many points were dropped because their window had been emitted.
func (a *Aggregate) Late() int64 {
	var n int64
	for _, d := range a.devices {
		n += d.Late
	}
	return n
}

// Process implements pipe.Processor.
func (a *Aggregate) Process(ctx context.Context, e *pipe.Event, emit func(*pipe.Event)) error {
	if e.Kind != pipe.KindTablet && e.Kind != pipe.KindTsFile {
		emit(e)
		return nil
	}
	out := NewOut(e, emit, a.origin)
	if a.cfg.KeepRaw {
		out.Pass()
	} else {
		out.Deletions()
	}
	err := Each(ctx, e, func(t *tsfile.Tablet) error {
		if e.Kind == pipe.KindTablet {
			tr := timeRangeOf(t.Times())
			a.guard.sawRange(e.Epoch, t.Device, tr.lo, tr.hi)
			raw, agg := a.tablet(t, tr)
			if !a.cfg.KeepRaw {
				out.Tablet(raw)
			} else if raw != nil {
				raw.Release()
			}
			out.Tablet(agg)
			return nil
		}
		parts := a.guard.unseen(e.Epoch, t)
		defer func() {
			for _, p := range parts {
				p.Release()
			}
		}()
		if len(parts) != 1 || parts[0].Rec != t.Rec {
			// rows already aggregated from the epoch's tablets are left out
			for _, p := range parts {
				_, agg := a.Tablet(p)
				out.Tablet(agg)
			}
			if !a.cfg.KeepRaw {
				raw, _ := a.split(t)
				out.Tablet(raw)
			}
			return nil
		}
		raw, agg := a.Tablet(t)
		if !a.cfg.KeepRaw {
			out.Tablet(raw)
		} else if raw != nil {
			raw.Release()
		}
		out.Tablet(agg)
		return nil
	})
	if err != nil {
		out.Release()
		return err
	}
	if e.Kind == pipe.KindTsFile {
		a.guard.fileDone(e.Epoch)
	}
	out.Done()
	return nil
}

// Tablet feeds t's points to its device's windows. It returns raw, a tablet of t's series
// the pattern does not select (nil when none), and agg, a tablet of the windows that
// closed (nil when none); both are the caller's.
func (a *Aggregate) Tablet(t *tsfile.Tablet) (raw, agg *tsfile.Tablet) {
	return a.tablet(t, timeRangeOf(t.Times()))
}

// tablet is Tablet, with the range and order of t's times.
func (a *Aggregate) tablet(t *tsfile.Tablet, tr timeRange) (raw, agg *tsfile.Tablet) {
	raw, selected := a.split(t)
	if !selected {
		return raw, nil
	}
	fs := t.Rec.Schema() // Field(i), not Fields() (a copy)
	d := a.devices[t.Device]
	if d == nil {
		d = &aggDevice{Max: math.MinInt64, Closed: math.MinInt64, Open: map[int64]map[string]*accumulator{}}
		a.devices[t.Device] = d
	}
	times := t.Times()
	var runs []winRun // the rows by window, when times are increasing
	if tr.increasing {
		a.runs = windowRuns(times, a.cfg.Interval, a.runs)
		runs = a.runs
		a.runWins = slices.Grow(a.runWins[:0], len(runs))[:len(runs)]
		clear(a.runWins)
		defer clear(a.runWins)
	}
	iv := a.cfg.Interval
	for c := 1; c < fs.NumFields(); c++ {
		name := fs.Field(c).Name
		if !a.cfg.Pattern.IsZero() && !a.cfg.Pattern.Match(t.Device, name) {
			continue
		}
		col, ok := newColumn(t.Rec.Column(c))
		if !ok {
			continue
		}
		switch col.typ {
		case tsfile.Int32:
			accumulate(a, d, name, &col, times, runs, col.i32, true)
		case tsfile.Int64:
			accumulate(a, d, name, &col, times, runs, col.i64, true)
		case tsfile.Float:
			accumulate(a, d, name, &col, times, runs, col.f32, false)
		case tsfile.Double:
			accumulate(a, d, name, &col, times, runs, col.f64, false)
		case tsfile.Boolean:
			a.accumulateBools(d, name, &col, times, runs)
		default:
			a.accumulateValues(d, name, &col, times)
		}
	}
	if len(times) > 0 {
		d.Max = max(d.Max, tr.hi)
	}
	if d.Max >= math.MinInt64+a.cfg.Lateness { // the watermark does not underflow
		frontier := floorDiv(d.Max-a.cfg.Lateness, iv) * iv
		if frontier > d.Closed || d.Closed == math.MinInt64 {
			d.Closed = frontier
		}
	}
	return raw, a.emit(t.Device, d, false)
}

// window returns the accumulator of measurement name in the window starting at w, or nil
// when the window is closed (the point is late: counted).
func (a *Aggregate) window(d *aggDevice, w int64, name string, typ tsfile.DataType) *accumulator {
	if d.Closed != math.MinInt64 && w+a.cfg.Interval <= d.Closed {
		d.Late++
		return nil
	}
	win := d.Open[w]
	if win == nil {
		if n := len(a.freeWins); n > 0 {
			win, a.freeWins = a.freeWins[n-1], a.freeWins[:n-1]
		} else {
			win = map[string]*accumulator{}
		}
		d.Open[w] = win
		d.addStart(w)
	}
	acc := win[name]
	if acc == nil || acc.Type != typ {
		if n := len(a.freeAccs); n > 0 {
			acc, a.freeAccs = a.freeAccs[n-1], a.freeAccs[:n-1]
			*acc = accumulator{Type: typ}
		} else {
			acc = &accumulator{Type: typ}
		}
		win[name] = acc
		d.addName(name)
	}
	return acc
}

// runWindow is window for the window w of the tablet's run k: the window's map is looked
// up once for all the columns (a.runWins).
func (a *Aggregate) runWindow(d *aggDevice, k int, w int64, name string, typ tsfile.DataType) *accumulator {
	win := a.runWins[k]
	if win == nil {
		acc := a.window(d, w, name, typ)
		if acc != nil {
			a.runWins[k] = d.Open[w]
		}
		return acc
	}
	acc := win[name]
	if acc == nil || acc.Type != typ {
		if n := len(a.freeAccs); n > 0 {
			acc, a.freeAccs = a.freeAccs[n-1], a.freeAccs[:n-1]
			*acc = accumulator{Type: typ}
		} else {
			acc = &accumulator{Type: typ}
		}
		win[name] = acc
		d.addName(name)
	}
	return acc
}

// accumulate adds a numeric column's values (vals) to the windows, a run of rows in the
// same window at a time: runs (nil when times are not increasing) are the tablet's, else
// they are found here row by row. With runs, a run's first and last rows are its first
// and last times. isInt: the column is INT32 or INT64.
func accumulate[T number](a *Aggregate, d *aggDevice, name string, col *column, times []int64, runs []winRun, vals []T, isInt bool) {
	sorted := runs != nil
	iv := a.cfg.Interval
	valid := validityOf(col.arr)
	nulls := valid.bits != nil
	toValue := func(v T) Value {
		if isInt {
			return Value{I: int64(v)}
		}
		return Value{F: float64(v)}
	}
	next := 0 // runs[next] holds row i
	for i := 0; i < len(times); {
		if nulls && valid.null(i) {
			i++
			continue
		}
		var w int64
		j := 0 // the run: rows i..j-1 (i is valid)
		if runs != nil {
			for runs[next].j <= i {
				next++
			}
			w, j = runs[next].w*iv, runs[next].j
		} else {
			w = floorDiv(times[i], iv) * iv
		}
		var acc *accumulator
		if runs != nil {
			acc = a.runWindow(d, next, w, name, col.typ)
		} else {
			acc = a.window(d, w, name, col.typ)
		}
		if acc == nil {
			if runs == nil {
				i++
				continue
			}
			for r := i + 1; r < j; r++ { // late too, as counted row by row
				if !valid.null(r) {
					d.Late++
				}
			}
			i = j
			continue
		}
		if runs == nil {
			end := w + iv
			if end < w {
				end = math.MaxInt64
			}
			j = i + 1
			for j < len(times) && times[j] >= w && times[j] < end {
				j++
			}
		}
		var lo, hi T
		if acc.Count > 0 {
			lo, hi = fromValue[T](acc.Min), fromValue[T](acc.Max)
		}
		sum, n := float64(acc.Sum), acc.Count
		firstRow, lastRow := -1, -1
		firstT, lastT := acc.First.T, acc.Last.T
		if n == 0 {
			v, t := vals[i], times[i]
			lo, hi, firstT, lastT, firstRow, lastRow = v, v, t, t, i, i
			sum += float64(v)
			n++
			i++
		}
		switch {
		case !nulls:
			lo, hi, sum = minMaxSum(vals[i:j], lo, hi, sum, isInt)
			n += int64(j - i)
			if sorted && i < j {
				if t := times[i]; t < firstT {
					firstT, firstRow = t, i
				}
				if t := times[j-1]; t >= lastT {
					lastT, lastRow = t, j-1
				}
				break
			}
			for r := i; r < j; r++ {
				t := times[r]
				if t < firstT {
					firstT, firstRow = t, r
				}
				if t >= lastT {
					lastT, lastRow = t, r
				}
			}
		default:
			for r := i; r < j; r++ {
				if valid.null(r) {
					continue
				}
				v, t := vals[r], times[r]
				lo, hi = min(lo, v), max(hi, v)
				if t < firstT {
					firstT, firstRow = t, r
				}
				if t >= lastT {
					lastT, lastRow = t, r
				}
				sum += float64(v)
				n++
			}
		}
		i = j
		acc.Sum, acc.Count, acc.Min, acc.Max = Float(sum), n, toValue(lo), toValue(hi)
		if firstRow >= 0 {
			acc.First = sample{firstT, toValue(vals[firstRow])}
		}
		if lastRow >= 0 {
			acc.Last = sample{lastT, toValue(vals[lastRow])}
		}
	}
}

// minMaxSum returns min(lo, vals...), max(hi, vals...) and sum + vals[0] + vals[1] + ...
// added in order in float64, as a plain loop would. For integers (isInt) whose sums in
// float64 are all exact (below 2^53), the sum is taken in int64 (the same number, without
// a float addition a value) and the minimum and maximum, which do not depend on the
// order, in two lanes each.
func minMaxSum[T number](vals []T, lo, hi T, sum float64, isInt bool) (T, T, float64) {
	if len(vals) == 0 {
		return lo, hi, sum
	}
	lo2, hi2 := lo, hi
	if isInt && math.Abs(sum) < 1<<53 && sum == math.Trunc(sum) {
		var is int64
		k := 0
		for ; k+1 < len(vals); k += 2 {
			a, b := vals[k], vals[k+1]
			lo, hi = min(lo, a), max(hi, a)
			lo2, hi2 = min(lo2, b), max(hi2, b)
			is += int64(a) + int64(b)
		}
		if k < len(vals) {
			a := vals[k]
			lo, hi = min(lo, a), max(hi, a)
			is += int64(a)
		}
		lo, hi = min(lo, lo2), max(hi, hi2)
		// every partial sum is within |sum| + len·max|v|: exact in float64 below 2^53
		if m := max(math.Abs(float64(lo)), math.Abs(float64(hi))); math.Abs(sum)+float64(len(vals))*m < 1<<53 {
			return lo, hi, sum + float64(is)
		}
		for _, v := range vals {
			sum += float64(v)
		}
		return lo, hi, sum
	}
	if isInt { // a sum too large for int64's exactness
		for _, v := range vals {
			lo, hi = min(lo, v), max(hi, v)
			sum += float64(v)
		}
		return lo, hi, sum
	}
	// Floats: min and max by the order of their bits taken as integers (fkey), which is
	// min's and max's order for every value but NaN (-0 below +0 included), without a
	// branch a value; with a NaN (then the sum is NaN too), min and max again.
	lok, hik := fkey(float64(lo)), fkey(float64(hi))
	for _, v := range vals {
		x := float64(v)
		k := fkey(x)
		lok, hik = min(lok, k), max(hik, k)
		sum += x
	}
	if sum != sum || lo != lo || hi != hi {
		for _, v := range vals {
			lo, hi = min(lo, v), max(hi, v)
		}
		return lo, hi, sum
	}
	return T(funkey(lok)), T(funkey(hik)), sum
}

// fkey maps a float64 to an int64 of the same order (for all but NaN; -0 below +0):
// negative values' bits but the sign are flipped. funkey is its inverse.
func fkey(f float64) int64 {
	b := int64(math.Float64bits(f))
	return b ^ int64(uint64(b>>63)>>1)
}

func funkey(k int64) float64 {
	return math.Float64frombits(uint64(k ^ int64(uint64(k>>63)>>1)))
}

// sumRun returns sum + vals[0] + vals[1] + ... added in order in float64, as a plain loop
// would; for integers (isInt) whose sums in float64 are all exact (below 2^53), taken in
// int64 (the same number).
func sumRun[T number](vals []T, sum float64, isInt bool) float64 {
	if isInt && math.Abs(sum) < 1<<53 && sum == math.Trunc(sum) {
		var is int64
		var lo, hi T
		for _, v := range vals {
			is += int64(v)
			lo, hi = min(lo, v), max(hi, v)
		}
		// every partial sum is within |sum| + len·max|v|: exact in float64 below 2^53
		if m := max(math.Abs(float64(lo)), math.Abs(float64(hi))); math.Abs(sum)+float64(len(vals))*m < 1<<53 {
			return sum + float64(is)
		}
	}
	for _, v := range vals {
		sum += float64(v)
	}
	return sum
}

func fromValue[T int32 | int64 | float32 | float64](v Value) T {
	var z T
	switch any(z).(type) {
	case int32, int64:
		return T(v.I)
	}
	return T(v.F)
}

// accumulateBools adds a BOOLEAN column's values to the windows (count, first, last), a
// run of rows in the same window at a time.
func (a *Aggregate) accumulateBools(d *aggDevice, name string, col *column, times []int64, runs []winRun) {
	iv := a.cfg.Interval
	arr := col.bl
	nulls := arr.NullN() > 0
	sorted := runs != nil
	next := 0 // runs[next] holds row i
	for i := 0; i < len(times); {
		if nulls && arr.IsNull(i) {
			i++
			continue
		}
		w := int64(0)
		if runs != nil {
			for runs[next].j <= i {
				next++
			}
			w = runs[next].w * iv
		} else {
			w = floorDiv(times[i], iv) * iv
		}
		acc := a.window(d, w, name, col.typ)
		if acc == nil {
			i++
			continue
		}
		end := w + iv
		if end < w {
			end = math.MaxInt64
		}
		n := acc.Count
		firstRow, lastRow := -1, -1
		firstT, lastT := acc.First.T, acc.Last.T
		if sorted && !nulls { // the run's first and last rows are its first and last times
			j := runs[next].j
			if t := times[i]; n == 0 || t < firstT {
				firstT, firstRow = t, i
			}
			if t := times[j-1]; n == 0 || t >= lastT {
				lastT, lastRow = t, j-1
			}
			n += int64(j - i)
			i = j
		}
		for ; i < len(times) && times[i] >= w && times[i] < end; i++ {
			if nulls && arr.IsNull(i) {
				continue
			}
			t := times[i]
			switch {
			case n == 0:
				firstT, lastT, firstRow, lastRow = t, t, i, i
			case t < firstT:
				firstT, firstRow = t, i
			}
			if n > 0 && t >= lastT {
				lastT, lastRow = t, i
			}
			n++
		}
		acc.Count = n
		if firstRow >= 0 {
			acc.First = sample{firstT, Value{B: arr.Value(firstRow)}}
		}
		if lastRow >= 0 {
			acc.Last = sample{lastT, Value{B: arr.Value(lastRow)}}
		}
	}
}

// accumulateValues adds a TEXT column's values to the windows.
func (a *Aggregate) accumulateValues(d *aggDevice, name string, col *column, times []int64) {
	iv := a.cfg.Interval
	nulls := col.arr.NullN() > 0
	curStart, curEnd := int64(0), int64(math.MinInt64) // the window of the last row
	var acc *accumulator
	for i, ts := range times {
		if nulls && col.arr.IsNull(i) {
			continue
		}
		if acc == nil || ts < curStart || ts >= curEnd {
			w := floorDiv(ts, iv) * iv
			if acc = a.window(d, w, name, col.typ); acc == nil {
				continue
			}
			curStart, curEnd = w, w+iv
		}
		v, x := col.at(i)
		acc.add(ts, v, x)
	}
}

// split returns a tablet of t's series the pattern does not select (nil when none has a
// value), and whether it selects some.
func (a *Aggregate) split(t *tsfile.Tablet) (raw *tsfile.Tablet, selected bool) {
	fs := t.Rec.Schema() // Field(i), not Fields() (a copy)
	var other []int
	for c := 1; c < fs.NumFields(); c++ {
		if a.cfg.Pattern.IsZero() || a.cfg.Pattern.Match(t.Device, fs.Field(c).Name) {
			selected = true
		} else {
			other = append(other, c)
		}
	}
	if len(other) > 0 {
		raw = dropEmptyColumns(WithColumns(t.Device, t.Rec, other))
	}
	return raw, selected
}

// emit removes the closed windows of d (every open window when all) and returns them as
// a tablet (nil when none): a row per window that has an output value, at the window's
// start; columns <measurement>_<function> in measurement order, then function order.
func (a *Aggregate) emit(device string, d *aggDevice, all bool) *tsfile.Tablet {
	starts := a.starts[:0] // the windows emitted, in order
	open := d.starts[:0]   // the others
	for _, w := range d.starts {
		if all || (d.Closed != math.MinInt64 && w+a.cfg.Interval <= d.Closed) {
			starts = append(starts, w)
		} else {
			open = append(open, w)
		}
	}
	a.starts = starts
	if len(starts) == 0 {
		return nil
	}
	wins := a.wins[:0]
	for _, w := range starts {
		wins = append(wins, d.Open[w])
	}
	// the measurements, in name order, each of the type of its first window's accumulator
	ms := a.ms[:0]
	gone := false // a measurement no emitted window has
	for _, m := range d.names {
		found := false
		for _, win := range wins {
			if acc := win[m]; acc != nil {
				ms, found = append(ms, aggSeries{m, acc.Type}), true
				break
			}
		}
		gone = gone || !found
	}
	a.wins, a.ms = wins, ms
	d.starts = open
	if gone { // forget the measurements no open window has
		d.names = slices.DeleteFunc(d.names, func(m string) bool {
			for _, w := range open {
				if d.Open[w][m] != nil {
					return false
				}
			}
			return !slices.ContainsFunc(ms, func(s aggSeries) bool { return s.name == m })
		})
	}

	nw := len(starts)
	// the output columns' values, one backing array per type
	var per [7]int // by tsfile.DataType
	ncols := 0
	for _, m := range ms {
		for _, f := range a.cfg.Functions {
			if ot, ok := outputType(f, m.typ); ok {
				if int(ot) < len(per) {
					per[ot]++
				}
				ncols++
			}
		}
	}
	ar := aggArena{i64: make([]int64, per[tsfile.Int64]*nw), i32: make([]int32, per[tsfile.Int32]*nw),
		f64: make([]float64, per[tsfile.Double]*nw), f32: make([]float32, per[tsfile.Float]*nw)}
	oks := a.oks[:0]
	oks = slices.Grow(oks, (ncols+1)*nw)[:(ncols+1)*nw]
	clear(oks)
	a.oks = oks
	rowOK, oks := oks[:nw], oks[nw:] // rowOK: the window has some output value
	cols := slices.Grow(a.cols[:0], ncols)
	accs := slices.Grow(a.accs[:0], nw)[:nw]
	a.accs = accs
	for _, m := range ms {
		for i := range wins {
			acc := wins[i][m.name]
			if acc != nil && len(a.freeAccs) < 4096 { // it serves a next window (emitted first)
				a.freeAccs = append(a.freeAccs, acc)
			}
			if acc == nil || acc.Count == 0 || acc.Type != m.typ {
				acc = nil
			}
			accs[i] = acc
		}
		names := a.outputNames(m.name)
		for fi, f := range a.cfg.Functions {
			ot, ok := outputType(f, m.typ)
			if !ok {
				continue
			}
			c := aggColumn{name: names[fi], typ: ot, ok: oks[:nw:nw]}
			oks = oks[nw:]
			c.fill(f, accs, &ar)
			for i, ok := range c.ok {
				rowOK[i] = rowOK[i] || ok
			}
			cols = append(cols, c)
		}
	}
	t := a.aggTablet(device, d, starts, rowOK, cols)
	clear(cols)
	a.cols = cols[:0]
	// the emitted windows' maps serve the next windows (their accumulators too, above:
	// every measurement of a window is in ms)
	for i, w := range starts {
		delete(d.Open, w)
		if len(a.freeWins) < 256 {
			clear(wins[i])
			a.freeWins = append(a.freeWins, wins[i])
		}
		wins[i] = nil
	}
	return t
}

// aggSeries is a measurement and its type, in emit.
type aggSeries struct {
	name string
	typ  tsfile.DataType
}

// aggColumn is an output column of emit: a value per window, in the slice of its type
// (vs for BOOLEAN and TEXT), ok where the window has one.
type aggColumn struct {
	name string
	typ  tsfile.DataType
	i64  []int64
	i32  []int32
	f64  []float64
	f32  []float32
	vs   []Value
	ok   []bool
	n    int // windows with a value
}

// aggArena hands out the value slices of emit's columns from one array per type.
type aggArena struct {
	i64 []int64
	i32 []int32
	f64 []float64
	f32 []float32
}

// fill sets the column to function f of the accumulators (nil: no value), by window, its
// values taken from ar.
func (c *aggColumn) fill(f string, accs []*accumulator, ar *aggArena) {
	nw := len(accs)
	switch c.typ {
	case tsfile.Int64:
		c.i64, ar.i64 = ar.i64[:nw:nw], ar.i64[nw:]
	case tsfile.Int32:
		c.i32, ar.i32 = ar.i32[:nw:nw], ar.i32[nw:]
	case tsfile.Double:
		c.f64, ar.f64 = ar.f64[:nw:nw], ar.f64[nw:]
	case tsfile.Float:
		c.f32, ar.f32 = ar.f32[:nw:nw], ar.f32[nw:]
	default:
		c.vs = make([]Value, nw)
	}
	switch f {
	case FuncCount:
		for i, acc := range accs {
			if acc != nil {
				c.i64[i], c.ok[i] = acc.Count, true
				c.n++
			}
		}
		return
	case FuncSum, FuncAvg:
		avg := f == FuncAvg
		for i, acc := range accs {
			if acc == nil {
				continue
			}
			x := float64(acc.Sum)
			if avg {
				x /= float64(acc.Count)
			}
			if !finite(x) {
				continue // the sum overflowed
			}
			c.f64[i], c.ok[i] = x, true
			c.n++
		}
		return
	}
	for i, acc := range accs {
		if acc == nil {
			continue
		}
		var v Value
		switch f {
		case FuncMin:
			v = acc.Min
		case FuncMax:
			v = acc.Max
		case FuncFirst:
			v = acc.First.V
		default:
			v = acc.Last.V
		}
		switch c.typ {
		case tsfile.Int64:
			c.i64[i] = v.I
		case tsfile.Int32:
			c.i32[i] = int32(v.I)
		case tsfile.Double:
			c.f64[i] = v.F
		case tsfile.Float:
			c.f32[i] = float32(v.F)
		default:
			c.vs[i] = v
		}
		c.ok[i] = true
		c.n++
	}
}

// aggTablet builds the tablet of the windows (starts) whose rowOK is set, from cols (a
// column without a value is left out); nil when no window has a value.
func (a *Aggregate) aggTablet(device string, d *aggDevice, starts []int64, rowOK []bool, cols []aggColumn) *tsfile.Tablet {
	var sel []int32 // the windows with a value, when some have none
	rows := 0
	for _, ok := range rowOK {
		if ok {
			rows++
		}
	}
	if rows == 0 {
		return nil
	}
	if rows < len(starts) {
		sel = make([]int32, 0, rows)
		for i, ok := range rowOK {
			if ok {
				sel = append(sel, int32(i))
			}
		}
	}
	schema := a.schemaCols[:0]
	for _, c := range cols {
		if c.n > 0 {
			schema = append(schema, tsfile.Column{Name: c.name, Type: c.typ})
		}
	}
	a.schemaCols = schema
	if d.schema == nil || !slices.Equal(d.schemaCols, schema) {
		d.schemaCols = slices.Clone(schema)
		d.schema = tsfile.TabletSchema(device, schema)
	}
	arrs := make([]arrow.Array, 0, len(schema)+1)
	defer func() {
		for _, x := range arrs {
			x.Release()
		}
	}()
	times := slices.Clone(starts)
	if sel != nil {
		times = pick(starts, sel)
	}
	arrs = append(arrs, newPrimitiveBits(arrow.PrimitiveTypes.Int64, times, nil, 0))
	for i := range cols {
		c := &cols[i]
		if c.n == 0 {
			continue
		}
		ok := c.ok
		if sel != nil {
			ok = pick(ok, sel)
		}
		var bits []byte
		nulls := rows - c.n
		if nulls > 0 {
			bits = make([]byte, bitutil.BytesForBits(int64(rows)))
			for k, v := range ok {
				if v {
					bits[k>>3] |= 1 << (k & 7)
				}
			}
		}
		dt := c.typ.ArrowType()
		switch c.typ {
		case tsfile.Int64:
			arrs = append(arrs, newPrimitiveBits(dt, selected(c.i64, sel), bits, nulls))
		case tsfile.Int32:
			arrs = append(arrs, newPrimitiveBits(dt, selected(c.i32, sel), bits, nulls))
		case tsfile.Double:
			arrs = append(arrs, newPrimitiveBits(dt, selected(c.f64, sel), bits, nulls))
		case tsfile.Float:
			arrs = append(arrs, newPrimitiveBits(dt, selected(c.f32, sel), bits, nulls))
		default:
			vs := selected(c.vs, sel)
			b := array.NewBuilder(a.mem, dt)
			b.Reserve(rows)
			for k, v := range vs {
				if ok[k] {
					appendValue(b, c.typ, v)
				} else {
					b.AppendNull()
				}
			}
			arrs = append(arrs, b.NewArray())
			b.Release()
		}
	}
	return tsfile.NewTablet(device, newRecord(d.schema, arrs, int64(rows)))
}

// selected returns vals at sel, or vals when sel is nil.
func selected[T any](vals []T, sel []int32) []T {
	if sel == nil {
		return vals
	}
	return pick(vals, sel)
}

// outputNames returns the output measurement names of m, by function (cached).
func (a *Aggregate) outputNames(m string) []string {
	if names, ok := a.names[m]; ok {
		return names
	}
	if a.names == nil || len(a.names) > 1<<16 {
		a.names = map[string][]string{}
	}
	names := make([]string, len(a.cfg.Functions))
	for i, f := range a.cfg.Functions {
		names[i] = m + "_" + f
	}
	a.names[m] = names
	return names
}

// outputType is the type of function f of a series of type t, and whether f applies.
func outputType(f string, t tsfile.DataType) (tsfile.DataType, bool) {
	switch f {
	case FuncCount:
		return tsfile.Int64, true
	case FuncSum, FuncAvg:
		return tsfile.Double, numeric(t)
	case FuncMin, FuncMax:
		return t, numeric(t)
	}
	return t, true // first, last
}

func (a *accumulator) value(f string) Value {
	switch f {
	case FuncCount:
		return Value{I: a.Count}
	case FuncSum:
		return Value{F: float64(a.Sum)}
	case FuncAvg:
		return Value{F: float64(a.Sum) / float64(a.Count)}
	case FuncMin:
		return a.Min
	case FuncMax:
		return a.Max
	case FuncFirst:
		return a.First.V
	}
	return a.Last.V
}

// flush returns every device's open windows as tablets (for tests: a pipe keeps them
// open until later data closes them).
func (a *Aggregate) flush() []*tsfile.Tablet {
	var out []*tsfile.Tablet
	for dev, d := range a.devices {
		if t := a.emit(dev, d, true); t != nil {
			out = append(out, t)
		}
	}
	return out
}
