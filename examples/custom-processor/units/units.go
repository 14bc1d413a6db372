// Package units is an example of a custom Weir processor written in Go: it converts
// measurements between units (°F to °C, psi to kPa, ...) and removes spikes, single
// points that jump away from their series and come back.
//
// It registers itself under the name "units" (Register); a binary that imports it and
// calls Weir's CLI entry point (see ../main.go) runs every pipectl command with it, so a
// spec can name it:
//
//	processors:
//	  - {plugin: units, conversions: "temp:F->C, pressure:psi->kPa", spike.max-step: 20}
//
// The spike filter keeps state per series (the last kept value, the length of the current
// run of rejected points). It implements pipe.StatefulProcessor, so that state is saved
// with the pipe's progress and a restarted pipe continues exactly where it left off.
package units

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/processor"
	"github.com/weir-dev/weir/tsfile"
)

// Name is the processor's registered name.
const Name = "units"

// Parameter keys.
const (
	KeyConversions = "conversions"
	KeyMaxStep     = "spike.max-step"
	KeyMaxRun      = "spike.max-run"
)

// Conversion is a linear unit conversion: to = from·Scale + Offset.
type Conversion struct {
	From, To      string
	Scale, Offset float64
}

// Conversions are the unit conversions the processor knows, by "from->to".
var Conversions = map[string]Conversion{
	"F->C":     {"F", "C", 5.0 / 9, -32 * 5.0 / 9},
	"C->F":     {"C", "F", 9.0 / 5, 32},
	"C->K":     {"C", "K", 1, 273.15},
	"K->C":     {"K", "C", 1, -273.15},
	"psi->kPa": {"psi", "kPa", 6.894757293168361, 0},
	"kPa->psi": {"kPa", "psi", 1 / 6.894757293168361, 0},
	"bar->kPa": {"bar", "kPa", 100, 0},
	"kPa->bar": {"kPa", "bar", 0.01, 0},
}

// ParseConversions parses "measurement:from->to, ..." into conversions by measurement.
func ParseConversions(s string) (map[string]Conversion, error) {
	out := map[string]Conversion{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		m, conv, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("%q is not measurement:from->to (e.g. temp:F->C)", part)
		}
		m, conv = strings.TrimSpace(m), strings.ReplaceAll(conv, " ", "")
		if err := tsfile.ValidateMeasurement(m); err != nil {
			return nil, err
		}
		c, ok := Conversions[conv]
		if !ok {
			known := make([]string, 0, len(Conversions))
			for k := range Conversions {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("unknown conversion %q for %s (known: %s)", conv, m, strings.Join(known, ", "))
		}
		if _, dup := out[m]; dup {
			return nil, fmt.Errorf("measurement %s converted twice", m)
		}
		out[m] = c
	}
	return out, nil
}

var once sync.Once

// Register registers the processor (once; later calls do nothing).
func Register() {
	once.Do(func() {
		pipe.RegisterProcessor(pipe.PluginInfo{
			Name: Name,
			Doc: "Converts measurements between units and removes spikes: a point more than " +
				"spike.max-step (in the new unit) away from the last kept point of its series is " +
				"dropped, unless more than spike.max-run such points come in a row (the level moved).",
			Params: []pipe.ParamSpec{
				{Key: KeyConversions, Type: pipe.String, Required: true,
					Check: func(v string) error { _, err := ParseConversions(v); return err },
					Doc:   "measurement:from->to, comma-separated, e.g. temp:F->C, pressure:psi->kPa"},
				{Key: KeyMaxStep, Type: pipe.Float, Default: "0", Min: pipe.MinOf(0),
					Doc: "the largest step between two points of a converted series; 0 keeps every point"},
				{Key: KeyMaxRun, Type: pipe.Int, Default: "3", Min: pipe.MinOf(1),
					Doc: "after this many rejected points in a row the new level is accepted"},
			},
		}, func() pipe.Processor { return &Processor{} })
	})
}

// Processor is the units processor.
type Processor struct {
	conv    map[string]Conversion
	maxStep float64
	maxRun  int
	origin  uint32
	state   map[string]*series // device + "." + measurement
}

// series is the spike filter's state of one converted series.
type series struct {
	Last     int64   `json:"last"`      // time of the last point seen
	Kept     float64 `json:"kept"`      // the last kept value (new unit)
	HasKept  bool    `json:"has_kept"`  // a point was kept
	Rejected int     `json:"rejected"`  // points rejected in a row
	RunStart float64 `json:"run_start"` // the first rejected value of the run
}

// New returns a processor for conversions (by measurement), dropping spikes larger than
// maxStep (0: none) unless more than maxRun come in a row.
func New(conv map[string]Conversion, maxStep float64, maxRun int) *Processor {
	return &Processor{conv: conv, maxStep: maxStep, maxRun: maxRun, origin: processor.LocalOrigin(nil), state: map[string]*series{}}
}

// Open implements pipe.Processor: the parameters are validated already (lint checks
// them with the ParamSpecs); errors name the key all the same.
func (p *Processor) Open(_ context.Context, env *pipe.Env) error {
	conv, err := ParseConversions(env.Params.String(KeyConversions))
	if err != nil {
		return fmt.Errorf("%s: %w", KeyConversions, err)
	}
	*p = *New(conv, env.Params.Float(KeyMaxStep), int(env.Params.Int(KeyMaxRun)))
	p.origin = processor.LocalOrigin(env)
	return nil
}

// Close implements pipe.Processor.
func (p *Processor) Close() error { return nil }

// SaveState implements pipe.StatefulProcessor: the task calls it between two events and
// saves the result with the pipe's progress.
func (p *Processor) SaveState() ([]byte, error) { return json.Marshal(p.state) }

// LoadState implements pipe.StatefulProcessor: a restarted task calls it after Open.
func (p *Processor) LoadState(b []byte) error {
	m := map[string]*series{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("units state: %w", err)
	}
	p.state = m
	return nil
}

// Process implements pipe.Processor. processor.Map does the plumbing: deletions and
// heartbeats pass, a TsFile is read (its deletions emitted first) only when it holds a
// series to convert, and outputs get identities a deduping sink can rely on.
func (p *Processor) Process(ctx context.Context, e *pipe.Event, emit func(*pipe.Event)) error {
	return processor.Map(ctx, e, emit, p.origin, p.untouched, p.Tablet)
}

// untouched reports whether a file holds none of the measurements to convert: it then
// passes through as a file, unread (its index says which columns it has).
func (p *Processor) untouched(f *pipe.FileRef) bool {
	rd, err := f.Open()
	if err != nil {
		return false // Map reads it and reports the error
	}
	defer rd.Close()
	for _, c := range rd.Meta().Columns {
		if _, ok := p.conv[c.Name]; ok {
			return false
		}
	}
	return true
}

// Tablet converts t's measurements and drops its spikes: t itself when it has nothing to
// convert, else a new tablet (nil when nothing is left).
func (p *Processor) Tablet(t *tsfile.Tablet) (*tsfile.Tablet, error) {
	fs := t.Rec.Schema().Fields()
	touched := false
	for _, f := range fs[1:] {
		if _, ok := p.conv[f.Name]; ok {
			touched = true
		}
	}
	if !touched {
		return t, nil
	}
	if !t.Sorted() {
		t = t.Normalize(memory.DefaultAllocator)
		defer t.Release()
	}
	times := t.Times()
	fields := make([]arrow.Field, len(fs))
	cols := make([]arrow.Array, len(fs))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	fields[0], cols[0] = fs[0], t.Rec.Column(0)
	cols[0].Retain()
	for c := 1; c < len(fs); c++ {
		col := t.Rec.Column(c)
		conv, ok := p.conv[fs[c].Name]
		if !ok {
			fields[c], cols[c] = fs[c], col
			col.Retain()
			continue
		}
		out, err := p.convert(t.Device, fs[c].Name, conv, times, col)
		if err != nil {
			return nil, err
		}
		fields[c] = arrow.Field{Name: fs[c].Name, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
		cols[c] = out
	}
	md := t.Rec.Schema().Metadata()
	rec := array.NewRecord(arrow.NewSchema(fields, &md), cols, t.Rec.NumRows())
	return dropEmptyRows(tsfile.NewTablet(t.Device, rec)), nil
}

// convert returns col in the new unit as DOUBLE, with spikes (and points not newer than
// the series' last point: late, or delivered twice) made null.
func (p *Processor) convert(device, name string, c Conversion, times []int64, col arrow.Array) (arrow.Array, error) {
	key := device + "." + name
	s := p.state[key]
	if s == nil {
		s = &series{Last: math.MinInt64}
		p.state[key] = s
	}
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.Reserve(col.Len())
	for i, ts := range times {
		x, ok := number(col, i)
		if !ok || ts <= s.Last {
			b.UnsafeAppendBoolToBitmap(false)
			continue
		}
		s.Last = ts
		y := x*c.Scale + c.Offset
		if p.keep(s, y) {
			b.UnsafeAppend(y)
		} else {
			b.UnsafeAppendBoolToBitmap(false)
		}
	}
	return b.NewArray(), nil
}

// keep decides whether y is kept, updating the series' spike state.
func (p *Processor) keep(s *series, y float64) bool {
	if p.maxStep <= 0 || !s.HasKept || math.Abs(y-s.Kept) <= p.maxStep {
		s.Kept, s.HasKept, s.Rejected = y, true, 0
		return true
	}
	if s.Rejected == 0 || math.Abs(y-s.RunStart) > p.maxStep {
		s.RunStart, s.Rejected = y, 0 // a new run of outliers starts here
	}
	s.Rejected++
	if s.Rejected > p.maxRun { // not a spike: the level moved
		s.Kept, s.Rejected = y, 0
		return true
	}
	return false
}

// number reads row i of a numeric column as a float64 (false for a null or another type).
func number(col arrow.Array, i int) (float64, bool) {
	if col.IsNull(i) {
		return 0, false
	}
	switch a := col.(type) {
	case *array.Float64:
		return a.Value(i), true
	case *array.Float32:
		return float64(a.Value(i)), true
	case *array.Int64:
		return float64(a.Value(i)), true
	case *array.Int32:
		return float64(a.Value(i)), true
	}
	return 0, false
}

// dropEmptyRows returns t without the rows that hold no value (all spikes), nil when none
// is left; it takes over t.
func dropEmptyRows(t *tsfile.Tablet) *tsfile.Tablet {
	rec := t.Rec
	keep := make([]bool, rec.NumRows())
	n := 0
	for r := range keep {
		for c := 1; c < int(rec.NumCols()); c++ {
			if rec.Column(c).IsValid(r) {
				keep[r] = true
				n++
				break
			}
		}
	}
	if n == len(keep) {
		return t
	}
	defer t.Release()
	if n == 0 {
		return nil
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, rec.Schema())
	defer b.Release()
	for r, k := range keep {
		if !k {
			continue
		}
		for c := 0; c < int(rec.NumCols()); c++ {
			tsfile.AppendValue(b.Field(c), rec.Column(c), r)
		}
	}
	return tsfile.NewTablet(t.Device, b.NewRecord())
}
