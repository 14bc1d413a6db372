package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// Downsampling methods.
const (
	MethodTumblingTime  = "tumbling-time"
	MethodSDT           = "sdt"
	MethodSwingingDoor  = "swinging-door" // the same as sdt
	MethodChangingValue = "changing-value"
)

// Strategies of tumbling-time.
const (
	StrategyFirst = "first"
	StrategyLast  = "last"
	StrategyAvg   = "avg"
)

const (
	keyMethod      = "method"
	keyStrategy    = "strategy"
	keyDeviation   = "compression-deviation"
	keyMinInterval = "min-interval"
	keyMaxInterval = "max-interval"
)

func init() {
	pipe.RegisterProcessor(pipe.PluginInfo{
		Name: "downsample",
		Doc: "Thins each series: tumbling-time keeps one point per interval (first, last or avg), sdt " +
			"(swinging door) keeps the points that hold every dropped point within compression-deviation " +
			"of the line between kept points, changing-value keeps a point when it moved more than " +
			"compression-deviation from the last kept one or max-interval passed. Stateful: the state is " +
			"saved with the pipe's progress.",
		Params: []pipe.ParamSpec{
			{Key: keyMethod, Type: pipe.Enum, Enum: []string{MethodTumblingTime, MethodSDT, MethodSwingingDoor, MethodChangingValue},
				Default: MethodTumblingTime, Doc: "the downsampling method"},
			{Key: keyInterval, Type: pipe.Duration, Default: "1m", Check: positive,
				Doc: "tumbling-time: the window length (windows start at multiples of it)"},
			{Key: keyStrategy, Type: pipe.Enum, Enum: []string{StrategyFirst, StrategyLast, StrategyAvg}, Default: StrategyFirst,
				Doc: "tumbling-time: the point kept per window: the first, the last, or the average at the window's start"},
			{Key: keyDeviation, Type: pipe.Float, Default: "0", Min: pipe.MinOf(0),
				Doc: "sdt and changing-value: the largest deviation allowed (in the measurement's unit)"},
			{Key: keyMinInterval, Type: pipe.Duration, Default: "0s", Min: pipe.MinOf(0),
				Doc: "sdt and changing-value: a point closer than this to the last kept point is never kept (0: no minimum)"},
			{Key: keyMaxInterval, Type: pipe.Duration, Check: optionalPositive,
				Doc: "sdt and changing-value: keep a point at least this often (left out: no maximum)"},
			patternParam("the series to downsample; others pass through unchanged"),
			timeUnitParam,
		},
	}, func() pipe.Processor { return &Downsample{} })
}

// DownsampleConfig configures a Downsample.
type DownsampleConfig struct {
	Method    string         // tumbling-time, sdt (or swinging-door), changing-value
	Interval  int64          // tumbling-time window, in time steps (> 0)
	Strategy  string         // tumbling-time: first, last, avg
	Deviation float64        // sdt, changing-value (≥ 0)
	MinGap    int64          // sdt, changing-value: min-interval in time steps (≥ 0)
	MaxGap    int64          // sdt, changing-value: max-interval in time steps (0: none)
	Pattern   tsfile.Pattern // series to downsample (zero: all)
}

// Check validates the configuration, naming the parameter at fault.
func (c DownsampleConfig) Check() error {
	switch c.Method {
	case MethodTumblingTime:
		if c.Interval <= 0 {
			return fmt.Errorf("%s: %d must be above zero", keyInterval, c.Interval)
		}
		switch c.Strategy {
		case StrategyFirst, StrategyLast, StrategyAvg:
		default:
			return fmt.Errorf("%s: %q is not one of first, last, avg", keyStrategy, c.Strategy)
		}
	case MethodSDT, MethodSwingingDoor, MethodChangingValue:
		if c.Deviation < 0 || math.IsNaN(c.Deviation) || math.IsInf(c.Deviation, 0) {
			return fmt.Errorf("%s: %v must be a number ≥ 0", keyDeviation, c.Deviation)
		}
		if c.MinGap < 0 {
			return fmt.Errorf("%s: %d is negative", keyMinInterval, c.MinGap)
		}
		if c.MaxGap < 0 {
			return fmt.Errorf("%s: %d is negative", keyMaxInterval, c.MaxGap)
		}
		if c.MaxGap > 0 && c.MinGap > c.MaxGap {
			return fmt.Errorf("%s: above %s", keyMinInterval, keyMaxInterval)
		}
	default:
		return fmt.Errorf("%s: unknown method %q (tumbling-time, sdt, changing-value)", keyMethod, c.Method)
	}
	return nil
}

// Downsample is the downsample processor. It keeps per-series state (a pending window,
// the swinging door, the last kept value) and implements pipe.StatefulProcessor, so a
// restarted pipe continues exactly where its last checkpoint left off.
//
// Points of a series must come in time order: a point not newer than the last point seen
// of its series is dropped (it is late, or an overwrite).
type Downsample struct {
	cfg     DownsampleConfig
	origin  uint32
	mem     memory.Allocator
	series  map[string]*dsSeries // device + "\x00" + measurement
	scratch []float64
	// caches and buffers of Tablet (never saved)
	devices map[string]*dsDevice
	schemas schemaCache
	cols    []outColumn
	rowBufs [][]int32     // by column index
	numBufs [][]numSample // by column index
	runs    []winRun      // tumbling-time: the tablet's rows by window (nil: not yet found)
	runBuf  []winRun
}

// dsSeries is the state of one series.
type dsSeries struct {
	Type    tsfile.DataType `json:"type"`
	Last    int64           `json:"last"`     // time of the last point seen
	Started bool            `json:"started"`  // a point was seen
	Win     int64           `json:"win"`      // tumbling-time: the current window
	Pend    sample          `json:"pend"`     // tumbling-time last: the window's last point; sdt: the candidate
	HasPend bool            `json:"has_pend"` // Pend holds a point
	Sum     Float           `json:"sum"`      // tumbling-time avg
	N       int64           `json:"n"`        // tumbling-time avg: points in the window
	Kept    sample          `json:"kept"`     // sdt: the archived point; changing-value: the last kept one
	HasKept bool            `json:"has_kept"` // Kept holds a point
	KeptNum float64         `json:"kept_num"` // Kept's value as a number
	Up      Float           `json:"up"`       // sdt: the largest lower slope bound of the points after Kept (±Inf when a slope overflowed)
	Down    Float           `json:"down"`     // sdt: the smallest upper slope bound
	Doors   bool            `json:"doors"`    // sdt: Up and Down hold bounds (some point after Kept)
}

// NewDownsample returns a downsample processor for cfg.
func NewDownsample(cfg DownsampleConfig) (*Downsample, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Pattern.String() == "root.**" {
		cfg.Pattern = tsfile.Pattern{}
	}
	return &Downsample{cfg: cfg, origin: LocalOrigin(nil), mem: memory.DefaultAllocator, series: map[string]*dsSeries{}}, nil
}

// Open implements pipe.Processor. A bad parameter is a permanent error: retrying cannot
// fix a spec.
func (d *Downsample) Open(ctx context.Context, env *pipe.Env) error {
	return pipe.Permanent(d.open(ctx, env))
}

func (d *Downsample) open(_ context.Context, env *pipe.Env) error {
	p := env.Params
	unit := p.String(keyTimeUnit)
	cfg := DownsampleConfig{Method: p.String(keyMethod), Strategy: p.String(keyStrategy), Deviation: p.Float(keyDeviation), Pattern: p.Pattern(keyPattern)}
	var err error
	if cfg.Method == MethodTumblingTime {
		if cfg.Interval, err = ticks(keyInterval, p.Duration(keyInterval), unit); err != nil {
			return err
		}
	}
	minGap, err := optDuration(p, keyMinInterval)
	if err != nil {
		return err
	}
	if minGap > 0 {
		if cfg.MinGap, err = ticks(keyMinInterval, minGap, unit); err != nil {
			return err
		}
	}
	maxGap, err := optDuration(p, keyMaxInterval)
	if err != nil {
		return err
	}
	if maxGap > 0 {
		if cfg.MaxGap, err = ticks(keyMaxInterval, maxGap, unit); err != nil {
			return err
		}
	}
	n, err := NewDownsample(cfg)
	if err != nil {
		return err
	}
	*d = *n
	d.origin = LocalOrigin(env)
	return nil
}

// Close implements pipe.Processor.
func (d *Downsample) Close() error { return nil }

// SaveState implements pipe.StatefulProcessor.
func (d *Downsample) SaveState() ([]byte, error) { return json.Marshal(d.series) }

// LoadState implements pipe.StatefulProcessor.
func (d *Downsample) LoadState(b []byte) error {
	m := map[string]*dsSeries{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("downsample state: %w", err)
	}
	d.series, d.devices = m, nil
	return nil
}

// Process implements pipe.Processor.
func (d *Downsample) Process(ctx context.Context, e *pipe.Event, emit func(*pipe.Event)) error {
	return Map(ctx, e, emit, d.origin, nil, func(t *tsfile.Tablet) (*tsfile.Tablet, error) {
		return d.Tablet(t), nil
	})
}

// Tablet feeds t's points to the series' state and returns the tablet of the points kept
// now (nil when none), or t itself when the pattern selects none of its series.
func (d *Downsample) Tablet(t *tsfile.Tablet) *tsfile.Tablet {
	if !d.selects(t) {
		return t
	}
	if !increasing(t.Times()) {
		t = t.Normalize(d.mem)
		defer t.Release()
	}
	fs := t.Rec.Schema() // Field(i), not Fields() (a copy)
	times := t.Times()
	dev := d.device(t.Device, fs.NumFields()-1)
	cols := d.cols[:0]
	d.runs = nil // found by the first column that needs them
	defer func() {
		if d.runs != nil {
			d.runBuf = d.runs[:0]
		}
		d.runs = nil
	}()
	for c := 1; c < fs.NumFields(); c++ {
		col, ok := newColumn(t.Rec.Column(c))
		if !ok {
			continue
		}
		oc := outColumn{name: fs.Field(c).Name, typ: col.typ, src: col.arr, times: times, tarr: t.Rec.Column(0),
			rows: d.rowBufs[c-1][:0], nums: d.numBufs[c-1][:0], buf: c - 1}
		if !d.cfg.Pattern.IsZero() && !d.cfg.Pattern.Match(t.Device, fs.Field(c).Name) {
			for i := range times {
				if col.arr.IsValid(i) {
					oc.rows = append(oc.rows, int32(i))
				}
			}
			cols = append(cols, oc)
			continue
		}
		s := dev.series[c-1]
		if s == nil || dev.names[c-1] != fs.Field(c).Name || s.Type != col.typ {
			key := t.Device + "\x00" + fs.Field(c).Name
			s = d.series[key]
			if s == nil || s.Type != col.typ {
				s = &dsSeries{Type: col.typ}
				d.series[key] = s
			}
			dev.series[c-1], dev.names[c-1] = s, fs.Field(c).Name
		}
		// rows are in time order: skip those not newer than the series' last point
		i0 := 0
		if s.Started {
			i0 = sort.Search(len(times), func(i int) bool { return times[i] > s.Last })
		}
		if isBool := col.typ == tsfile.Boolean; numeric(col.typ) || isBool {
			switch col.typ {
			case tsfile.Int32:
				downsampleNum(d, s, &col, times, col.i32, i0, &oc)
			case tsfile.Int64:
				downsampleNum(d, s, &col, times, col.i64, i0, &oc)
			case tsfile.Float:
				downsampleNum(d, s, &col, times, col.f32, i0, &oc)
			case tsfile.Double:
				downsampleNum(d, s, &col, times, col.f64, i0, &oc)
			default: // BOOLEAN: as 0 and 1
				switch d.cfg.Method {
				case MethodTumblingTime: // first or last: no value needed
					downsampleNum(d, s, &col, times, []float64(nil), i0, &oc)
				default: // keep every change
					changingBool(d, s, &col, times, i0, &oc)
				}
			}
		} else {
			nulls := col.arr.NullN() > 0
			for i := i0; i < len(times); i++ {
				if nulls && col.arr.IsNull(i) {
					continue
				}
				v, x := col.at(i)
				d.feed(s, times[i], v, x, &oc.pts)
				s.Started, s.Last = true, times[i]
			}
		}
		cols = append(cols, oc)
	}
	out := buildTablet(d.mem, &d.schemas, t.Device, cols)
	// the rows and numbers are copied out: their slices serve the next tablet
	for c := range cols {
		d.rowBufs[cols[c].buf], d.numBufs[cols[c].buf] = cols[c].rows[:0], cols[c].nums[:0]
		cols[c] = outColumn{}
	}
	d.cols = cols[:0]
	return out
}

// dsDevice caches, by column index, the series of a device's last tablet and their
// measurement names (the key of Downsample.series is not built for every column).
type dsDevice struct {
	names  []string
	series []*dsSeries
}

// device returns the cache of device, for n columns, and makes the column buffers hold n.
func (d *Downsample) device(device string, n int) *dsDevice {
	for len(d.rowBufs) < n {
		d.rowBufs = append(d.rowBufs, nil)
		d.numBufs = append(d.numBufs, nil)
	}
	if d.devices == nil || len(d.devices) > 1<<16 {
		d.devices = map[string]*dsDevice{}
	}
	dev := d.devices[device]
	if dev == nil {
		dev = &dsDevice{}
		d.devices[device] = dev
	}
	for len(dev.series) < n {
		dev.series = append(dev.series, nil)
		dev.names = append(dev.names, "")
	}
	return dev
}

// validity reads an input column's validity bitmap (nil bits: every row is valid).
type validity struct {
	bits []byte
	off  int
}

func validityOf(arr arrow.Array) validity {
	if arr.NullN() == 0 {
		return validity{}
	}
	return validity{arr.NullBitmapBytes(), arr.Data().Offset()}
}

// null reports whether row i is null.
func (v validity) null(i int) bool {
	if v.bits == nil {
		return false
	}
	i += v.off
	return v.bits[i>>3]&(1<<(i&7)) == 0
}

// number is the element type of a numeric column.
type number interface {
	int32 | int64 | float32 | float64
}

// downsampleNum feeds a numeric column (vals: its values; a BOOLEAN column as 0 and 1)
// from row i0 on to the method's typed path.
func downsampleNum[T number](d *Downsample, s *dsSeries, col *column, times []int64, vals []T, i0 int, oc *outColumn) {
	strategy, dev := d.cfg.Strategy, d.cfg.Deviation
	isBool := col.typ == tsfile.Boolean
	if isBool { // keep every change; the average of booleans is the first
		dev = 0
		if strategy == StrategyAvg {
			strategy = StrategyFirst
		}
	}
	switch {
	case d.cfg.Method == MethodTumblingTime:
		tumblingNum(d, s, col, times, vals, i0, strategy, oc)
	case isBool || d.cfg.Method == MethodChangingValue:
		changingNum(d, s, col, times, vals, i0, dev, oc)
	default:
		sdtNum(d, s, col, times, vals, i0, oc)
	}
}

// The typed paths below feed a numeric column (vals) from row i0 on, the state in locals
// (written back at the end). They keep rows of the input by index (oc.rows) and state
// samples by value (oc.add, always before the rows); a candidate held back at the end of
// the tablet is copied into the state.

func tumblingNum[T number](d *Downsample, s *dsSeries, col *column, times []int64, vals []T, i0 int, strategy string, oc *outColumn) {
	iv := d.cfg.Interval
	valid := validityOf(col.arr)
	isInt := col.typ == tsfile.Int32 || col.typ == tsfile.Int64
	pendRow := -1
	if i0 < len(times) { // about one value per window
		n := len(times) - i0
		if span := times[len(times)-1] - times[i0]; span >= 0 && span/iv+2 < int64(n) {
			n = int(span/iv + 2)
		}
		if strategy == StrategyAvg {
			oc.nums = slices.Grow(oc.nums, n)
		} else {
			oc.rows = slices.Grow(oc.rows, n)
		}
	}
	win, started, last := s.Win, s.Started, s.Last
	sum, cnt := float64(s.Sum), s.N
	hasPend := s.HasPend
	const (
		first = iota
		lastOne
		avg
	)
	how := first
	switch strategy {
	case StrategyLast:
		how = lastOne
	case StrategyAvg:
		how = avg
	}
	// a run of rows in one window at a time (the tablet's runs, from row i0)
	if d.runs == nil {
		d.runs = windowRuns(times, iv, d.runBuf)
	}
	for _, r := range d.runs {
		if r.j <= i0 {
			continue
		}
		i, j, w := max(r.i, i0), r.j, r.w
		for i < j && valid.null(i) {
			i++
		}
		if i == j {
			continue
		}
		k := j - 1 // the run's last valid row (i is valid)
		for valid.null(k) {
			k--
		}
		newWin := !started || w != win
		switch how {
		case first:
			if newWin {
				oc.rows = append(oc.rows, int32(i))
			}
		case lastOne:
			if newWin {
				switch {
				case pendRow >= 0:
					oc.rows = append(oc.rows, int32(pendRow))
				case hasPend:
					oc.add(s.Pend.T, s.Pend.V)
				}
			}
			pendRow, hasPend = k, false
		case avg:
			if newWin && cnt > 0 {
				if a := sum / float64(cnt); finite(a) {
					oc.add(win*iv, FromNum(a, s.Type))
				}
				sum, cnt = 0, 0
			}
			if valid.bits == nil {
				sum = sumRun(vals[i:j], sum, isInt)
				cnt += int64(j - i)
			} else {
				for r := i; r < j; r++ {
					if !valid.null(r) {
						sum += float64(vals[r])
						cnt++
					}
				}
			}
		}
		win, started, last = w, true, times[k]
	}
	s.Win, s.Started, s.Last = win, started, last
	s.Sum, s.N, s.HasPend = Float(sum), cnt, hasPend
	if pendRow >= 0 {
		v, _ := col.at(pendRow)
		s.Pend, s.HasPend = sample{times[pendRow], v}, true
	}
}

func sdtNum[T number](d *Downsample, s *dsSeries, col *column, times []int64, vals []T, i0 int, oc *outColumn) {
	valid := validityOf(col.arr)
	dev, minGap, maxGap := d.cfg.Deviation, d.cfg.MinGap, d.cfg.MaxGap
	// the state in locals for the loop, written back at the end
	hasKept, keptT, keptX := s.HasKept, s.Kept.T, s.KeptNum
	up, down, doors := float64(s.Up), float64(s.Down), s.Doors
	statePend := s.HasPend // the candidate is s.Pend, from an earlier tablet
	pendRow := -1          // the candidate is this row
	pendT, pendX := s.Pend.T, 0.0
	if statePend {
		pendX = s.Pend.V.Num(s.Type)
	}
	started, last := s.Started, s.Last
	n := len(times)
	for i := i0; i < n; i++ {
		if hasKept && doors && (pendRow >= 0 || statePend) {
			// The common case, in a loop of its own: the point becomes the candidate,
			// its slope from Kept clearly within [up, down] (decided as below) and
			// max-interval not reached. Any other point leaves to the full step.
			if valid.bits == nil {
				j, p := 0, 0
				j, p, up, down = sdtFast(times, vals, i, keptT, keptX, up, down, dev, maxGap)
				if p >= 0 {
					pendRow, pendT, pendX, statePend, last = p, times[p], float64(vals[p]), false, times[p]
				}
				i = j
			}
			for ; i < n; i++ {
				if valid.bits != nil && valid.null(i) {
					continue
				}
				t := times[i]
				dt := t - keptT
				if maxGap > 0 && dt >= maxGap {
					break
				}
				x := float64(vals[i])
				inv := 1 / float64(dt)
				s2 := (x - keptX) * inv
				e := math.Abs(s2)*0x1p-45 + 0x1p-1000
				if !(s2-e >= up && s2+e <= down) {
					break
				}
				pendRow, pendT, pendX, statePend, last = i, t, x, false, t
				if u := s2 - dev*inv; u > up {
					up = u
				}
				if w := s2 + dev*inv; w < down {
					down = w
				}
			}
			if i == n {
				break
			}
		}
		// the full step of point i
		if valid.null(i) {
			continue
		}
		t, x := times[i], float64(vals[i])
		started, last = true, t
		if !hasKept {
			oc.rows = append(oc.rows, int32(i))
			hasKept, keptT, keptX, statePend, pendRow, doors = true, t, x, false, -1, false
			continue
		}
		inv, invT := 0.0, keptT-1 // 1/(t-invT) once computed (invT == keptT)
		if (pendRow >= 0 || statePend) && doors {
			// Does the slope from Kept, (x-keptX)/(t-keptT), leave [up, down]? Decided
			// from the product with the reciprocal (needed below anyway) when it is
			// farther from the bounds than its error can be, else by the division.
			a := x - keptX
			inv, invT = 1/float64(t-keptT), keptT
			s2 := a * inv
			e := math.Abs(s2)*0x1p-45 + 0x1p-1000 // ≫ |s2 - a/(t-keptT) rounded|
			var leaves bool
			switch {
			case s2+e < up || s2-e > down:
				leaves = true
			case s2-e >= up && s2+e <= down:
			default: // near a bound, or not finite
				slope := a / float64(t-keptT)
				leaves = slope < up || slope > down
			}
			if leaves && pendT-keptT >= minGap {
				// the candidate ends the segment: archive it
				if pendRow >= 0 {
					oc.rows = append(oc.rows, int32(pendRow))
				} else {
					oc.add(s.Pend.T, s.Pend.V)
				}
				keptT, keptX, statePend, pendRow, doors = pendT, pendX, false, -1, false
			}
		}
		if maxGap > 0 && t-keptT >= maxGap {
			oc.rows = append(oc.rows, int32(i))
			keptT, keptX, statePend, pendRow, doors = t, x, false, -1, false
			continue
		}
		// the point is the candidate, and a point after Kept for the next ones
		pendRow, pendT, pendX, statePend = i, t, x, false
		if invT != keptT {
			inv = 1 / float64(t-keptT)
		}
		slope := (x - keptX) * inv
		u, w := slope-dev*inv, slope+dev*inv
		switch {
		case !doors:
			up, down, doors = u, w, true
		default:
			if u > up {
				up = u
			}
			if w < down {
				down = w
			}
		}
	}
	s.HasKept, s.Kept.T, s.KeptNum = hasKept, keptT, keptX
	s.Up, s.Down, s.Doors = Float(up), Float(down), doors
	s.Started, s.Last = started, last
	switch {
	case pendRow >= 0:
		v, _ := col.at(pendRow)
		s.Pend, s.HasPend = sample{times[pendRow], v}, true
	case !statePend:
		s.HasPend = false
	}
}

// sdtFast is sdtNum's loop of common steps for a column without nulls, from row i on,
// in a function of its own (its few variables stay in registers). It returns the row it
// stopped at (len(times) at the end), the last row that became the candidate (-1: none)
// and the bounds up and down.
func sdtFast[T number](times []int64, vals []T, i int, keptT int64, keptX, up, down, dev float64, maxGap int64) (int, int, float64, float64) {
	vals = vals[:len(times)]
	p := -1
	for ; i < len(times); i++ {
		dt := times[i] - keptT
		if maxGap > 0 && dt >= maxGap {
			break
		}
		inv := 1 / float64(dt)
		s2 := (float64(vals[i]) - keptX) * inv
		e := math.Abs(s2)*0x1p-45 + 0x1p-1000 // ≫ |s2 - (x-keptX)/dt rounded|
		if !(s2-e >= up && s2+e <= down) {
			break
		}
		p = i
		if u := s2 - dev*inv; u > up {
			up = u
		}
		if w := s2 + dev*inv; w < down {
			down = w
		}
	}
	return i, p, up, down
}

func changingNum[T number](d *Downsample, s *dsSeries, col *column, times []int64, vals []T, i0 int, dev float64, oc *outColumn) {
	valid := validityOf(col.arr)
	minGap, maxGap := d.cfg.MinGap, d.cfg.MaxGap
	hasKept, keptT, keptX := s.HasKept, s.Kept.T, s.KeptNum
	rows := oc.rows
	n, i := len(times), i0
	if !hasKept { // the series' first point is kept
		for i < n && valid.null(i) {
			i++
		}
		if i < n {
			rows = append(rows, int32(i))
			keptT, keptX, hasKept = times[i], float64(vals[i]), true
			i++
		}
	}
	for ; i < n; i++ {
		if valid.bits != nil && valid.null(i) {
			continue
		}
		gap := times[i] - keptT
		if gap < minGap {
			continue
		}
		x := float64(vals[i])
		if math.Abs(x-keptX) <= dev && (maxGap == 0 || gap < maxGap) {
			continue
		}
		rows = append(rows, int32(i))
		keptT, keptX = times[i], x
	}
	oc.rows = rows
	s.HasKept, s.Kept.T, s.KeptNum = hasKept, keptT, keptX
	s.Started, s.Last = lastSeen(s.Started, s.Last, valid, times, i0)
}

// changingBool is changingNum of a BOOLEAN column (as 0 and 1, deviation 0: every change
// is kept), reading the values' bits.
func changingBool(d *Downsample, s *dsSeries, col *column, times []int64, i0 int, oc *outColumn) {
	valid := validityOf(col.arr)
	bits, off := col.bl.Data().Buffers()[1].Bytes(), col.bl.Data().Offset()
	minGap, maxGap := d.cfg.MinGap, d.cfg.MaxGap
	hasKept, keptT := s.HasKept, s.Kept.T
	var kept byte // the kept value as 0 or 1 (KeptNum)
	if s.KeptNum != 0 {
		kept = 1
	}
	rows := oc.rows
	n, i := len(times), i0
	if !hasKept { // the series' first point is kept
		for i < n && valid.null(i) {
			i++
		}
		if i < n {
			rows = append(rows, int32(i))
			j := off + i
			keptT, kept, hasKept = times[i], bits[j>>3]>>(j&7)&1, true
			i++
		}
	}
	for ; i < n; i++ {
		if valid.bits != nil && valid.null(i) {
			continue
		}
		j := off + i
		x := bits[j>>3] >> (j & 7) & 1
		gap := times[i] - keptT
		if gap < minGap || (x == kept && (maxGap == 0 || gap < maxGap)) {
			continue
		}
		rows = append(rows, int32(i))
		keptT, kept = times[i], x
	}
	oc.rows = rows
	s.HasKept, s.Kept.T, s.KeptNum = hasKept, keptT, float64(kept)
	s.Started, s.Last = lastSeen(s.Started, s.Last, valid, times, i0)
}

// lastSeen returns the series' started and last (the time of its last point) after its
// rows from i0 on.
func lastSeen(started bool, last int64, valid validity, times []int64, i0 int) (bool, int64) {
	for k := len(times) - 1; k >= i0; k-- {
		if !valid.null(k) {
			return true, times[k]
		}
	}
	return started, last
}

// selects reports whether the pattern selects some series of t.
func (d *Downsample) selects(t *tsfile.Tablet) bool {
	p := d.cfg.Pattern
	if p.IsZero() {
		return true
	}
	if !p.MayMatchDevice(t.Device) {
		return false
	}
	for _, f := range t.Rec.Schema().Fields()[1:] {
		if p.Match(t.Device, f.Name) {
			return true
		}
	}
	return false
}

func (d *Downsample) feed(s *dsSeries, t int64, v Value, x float64, out *[]sample) {
	switch d.cfg.Method {
	case MethodTumblingTime:
		d.tumbling(s, t, v, x, out)
	case MethodSDT, MethodSwingingDoor:
		if numeric(s.Type) {
			d.sdt(s, t, v, x, out)
		} else {
			d.changing(s, t, v, x, out)
		}
	default:
		d.changing(s, t, v, x, out)
	}
}

func (d *Downsample) tumbling(s *dsSeries, t int64, v Value, x float64, out *[]sample) {
	w := floorDiv(t, d.cfg.Interval)
	strategy := d.cfg.Strategy
	if strategy == StrategyAvg && !numeric(s.Type) {
		strategy = StrategyFirst
	}
	newWin := !s.Started || w != s.Win
	switch strategy {
	case StrategyFirst:
		if newWin {
			*out = append(*out, sample{t, v})
		}
	case StrategyLast:
		if newWin && s.HasPend {
			*out = append(*out, s.Pend)
		}
		s.Pend, s.HasPend = sample{t, v}, true
	case StrategyAvg:
		if newWin && s.N > 0 {
			if avg := float64(s.Sum) / float64(s.N); finite(avg) {
				*out = append(*out, sample{s.Win * d.cfg.Interval, FromNum(avg, s.Type)})
			}
			s.Sum, s.N = 0, 0
		}
		s.Sum += Float(x)
		s.N++
	}
	s.Win = w
}

// sdt is the swinging door: Kept is the last archived point and Pend the candidate end of
// the current segment. Up and Down bound the slopes from Kept that hold every point after
// Kept (up to the candidate) within the deviation; a new point can end the segment when
// its own slope from Kept lies within them. When it cannot, the candidate is archived and
// the segment starts again from it. So every dropped point is within the deviation of the
// line between the archived points around it (min-interval may break this: it forbids
// archiving a candidate too close to Kept).
func (d *Downsample) sdt(s *dsSeries, t int64, v Value, x float64, out *[]sample) {
	if !s.HasKept {
		d.archive(s, sample{t, v}, x, out)
		return
	}
	if s.HasPend && s.Doors {
		slope := (x - s.KeptNum) / float64(t-s.Kept.T)
		if (slope < float64(s.Up) || slope > float64(s.Down)) && s.Pend.T-s.Kept.T >= d.cfg.MinGap {
			c := s.Pend
			d.archive(s, c, c.V.Num(s.Type), out)
		}
	}
	if d.cfg.MaxGap > 0 && t-s.Kept.T >= d.cfg.MaxGap {
		d.archive(s, sample{t, v}, x, out)
		return
	}
	// the new point is the candidate, and a point after Kept for the next ones
	s.Pend, s.HasPend = sample{t, v}, true
	dt := float64(t - s.Kept.T)
	up, down := (x-s.KeptNum-d.cfg.Deviation)/dt, (x-s.KeptNum+d.cfg.Deviation)/dt
	if !s.Doors {
		s.Up, s.Down, s.Doors = Float(up), Float(down), true
		return
	}
	s.Up, s.Down = Float(math.Max(float64(s.Up), up)), Float(math.Min(float64(s.Down), down))
}

func (d *Downsample) archive(s *dsSeries, p sample, x float64, out *[]sample) {
	*out = append(*out, p)
	s.Kept, s.HasKept, s.KeptNum, s.HasPend, s.Doors = p, true, x, false, false
}

func (d *Downsample) changing(s *dsSeries, t int64, v Value, x float64, out *[]sample) {
	if s.HasKept {
		gap := t - s.Kept.T
		if gap < d.cfg.MinGap {
			return
		}
		moved := false
		if numeric(s.Type) {
			moved = math.Abs(x-s.KeptNum) > d.cfg.Deviation
		} else {
			moved = !v.Equal(s.Kept.V, s.Type)
		}
		if !moved && (d.cfg.MaxGap == 0 || gap < d.cfg.MaxGap) {
			return
		}
	}
	p := sample{t, v}
	*out = append(*out, p)
	s.Kept, s.HasKept, s.KeptNum = p, true, x
}

// pending returns, per series, the point that state holds back (tumbling-time last and
// avg: the open window's; sdt: the candidate), for tests.
func (d *Downsample) pending() map[string]sample {
	out := map[string]sample{}
	for k, s := range d.series {
		switch {
		case d.cfg.Method == MethodTumblingTime && d.cfg.Strategy == StrategyLast && s.HasPend:
			out[k] = s.Pend
		case d.cfg.Method == MethodTumblingTime && d.cfg.Strategy == StrategyAvg && s.N > 0:
			out[k] = sample{s.Win * d.cfg.Interval, FromNum(float64(s.Sum)/float64(s.N), s.Type)}
		case (d.cfg.Method == MethodSDT || d.cfg.Method == MethodSwingingDoor) && s.HasPend:
			out[k] = s.Pend
		}
	}
	return out
}
