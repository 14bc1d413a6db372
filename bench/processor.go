package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/processor" // the built-in processors
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// ProcessorCase is one processor configuration to measure: a name for the report and the
// processor's plugin map in YAML flow style.
type ProcessorCase struct {
	Name string
	Spec string
}

// DefaultProcessorCases are the built-ins measured by Processor, do-nothing first (the
// baseline). The workload is workload.Columns: temp (DOUBLE, about 15-25), pressure
// (FLOAT), count (INT64), state (INT32), ok (BOOLEAN), one point a second per device.
var DefaultProcessorCases = []ProcessorCase{
	{"do-nothing", "{plugin: do-nothing}"},
	{"filter-predicate", `{plugin: filter, predicate: "temp > 22 and ok = true"}`},
	{"filter-pattern", "{plugin: filter, pattern: root.bench.**.temp}"},
	{"downsample-tumbling-avg", "{plugin: downsample, method: tumbling-time, interval: 10s, strategy: avg}"},
	{"downsample-sdt", "{plugin: downsample, method: sdt, compression-deviation: 0.5}"},
	{"downsample-changing-value", "{plugin: downsample, method: changing-value, compression-deviation: 0.5}"},
	{"aggregate", `{plugin: aggregate, functions: "count,avg,min,max", interval: 1m}`},
	{"rename", "{plugin: rename, from: root.bench, to: root.renamed}"},
}

// ProcessorConfig configures Processor.
type ProcessorConfig struct {
	Dir    string
	Points int64
	Cases  []ProcessorCase // default DefaultProcessorCases; the first is the baseline
	Rounds int             // default 5; figures are medians over rounds
	// Progress, if set, is told what the benchmark does.
	Progress func(phase string)
}

// Processor measures points/s through each processor case in a real pipe: a region holds
// Points points in memory (1,000-row tablets of 100 devices), and for each case a wal →
// processor → do-nothing pipe drains them from the start. The baseline is the first case
// (do-nothing). Each round runs the baseline before and after every other case (base,
// case 1, base, case 2, ..., base); a case's ratio in a round is its rate over the mean of
// the two baseline runs around it (so that drift on a shared machine favours neither
// side), and the figures are medians over the rounds. It also reports each processor
// alone (Process called in a loop on the same tablets, no runtime) against the round's
// baseline: a ratio above 1 means the processor is not what limits the pipe.
func Processor(cfg ProcessorConfig) ([]Result, error) {
	if cfg.Points <= 0 {
		return nil, fmt.Errorf("points must be > 0")
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 5
	}
	cases := cfg.Cases
	if len(cases) == 0 {
		cases = DefaultProcessorCases
	}
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 1000, Start: 1_700_000_000_000, Step: 1000}
	tablets, per, release := generate(gen, cfg.Points)
	defer release()
	n := len(tablets)
	total := float64(int64(n) * per)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := engine.Open(engine.Options{Dir: filepath.Join(cfg.Dir, "region"), Durability: wal.Batch, FlushAge: -1,
		MemtableSize: 4 << 30, RecentBytes: 2 << 30, Logger: log})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := ingest(r, tablets); err != nil {
		return nil, err
	}
	mgr, err := pipe.NewManager(pipe.ManagerOptions{Dir: filepath.Join(cfg.Dir, "pipes"), Logger: log,
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{r}, nil }})
	if err != nil {
		return nil, err
	}
	defer mgr.Close()

	runs := 0
	drain := func(c ProcessorCase) (float64, error) {
		runs++
		name := fmt.Sprintf("bench-%d", runs)
		spec := fmt.Sprintf("name: %s\nsource: {plugin: wal}\nprocessors:\n  - %s\nsink: {plugin: do-nothing}\n", name, c.Spec)
		s, err := pipe.ParseSpec([]byte(spec))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", c.Name, err)
		}
		if err := mgr.Create(s, false); err != nil {
			return 0, fmt.Errorf("%s: %w", c.Name, err)
		}
		start := time.Now()
		if err := mgr.Start(name); err != nil {
			return 0, err
		}
		if err := drained(mgr, name, int64(n), 10*time.Minute); err != nil {
			return 0, fmt.Errorf("%s: %w", c.Name, err)
		}
		d := time.Since(start)
		if err := mgr.Drop(name); err != nil {
			return 0, err
		}
		return total / d.Seconds(), nil
	}

	baseRates := make([]float64, 0, len(cases)*cfg.Rounds)
	rates := make([][]float64, len(cases))  // per case, per round
	ratios := make([][]float64, len(cases)) // per case, per round
	alones := make([][]float64, len(cases))
	for round := 0; round < cfg.Rounds; round++ {
		tell(cfg.Progress, "round %d/%d: %d cases, each between two baseline runs", round+1, cfg.Rounds, len(cases)-1)
		// base, case 1, base, case 2, ..., base: each case against the baseline runs
		// just before and after it (drift on a shared machine favours neither side)
		before, err := drain(cases[0])
		if err != nil {
			return nil, err
		}
		bases := []float64{before}
		got := make([]float64, len(cases))
		for i, c := range cases[1:] {
			if got[i+1], err = drain(c); err != nil {
				return nil, err
			}
			after, err := drain(cases[0])
			if err != nil {
				return nil, err
			}
			bases = append(bases, after)
			rates[i+1] = append(rates[i+1], got[i+1])
			ratios[i+1] = append(ratios[i+1], got[i+1]/((before+after)/2))
			before = after
		}
		baseRates = append(baseRates, bases...)
		base := 0.0
		for _, b := range bases {
			base += b / float64(len(bases))
		}
		rates[0] = append(rates[0], base)
		ratios[0] = append(ratios[0], 1)
		for i := range cases {
			d, err := runAlone(cases[i], tablets)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", cases[i].Name, err)
			}
			alones[i] = append(alones[i], total/d.Seconds()/base)
		}
	}
	base := medianOf(baseRates)
	baseName := cases[0].Name + " pipe (wal source, in memory)"
	var out []Result
	for i, c := range cases {
		out = append(out, Result{Bench: "processor-" + c.Name, Metric: "pipe_points_per_second", Unit: "points/s",
			Value: medianOf(rates[i]), Baseline: baseName, BaselineValue: base, Ratio: medianOf(ratios[i])})
	}
	for i, c := range cases {
		ratio := medianOf(alones[i])
		out = append(out, Result{Bench: "processor-" + c.Name, Metric: "alone_points_per_second", Unit: "points/s",
			Value: ratio * base, Baseline: baseName, BaselineValue: base, Ratio: ratio})
	}
	return out, nil
}

// drained waits until the pipe committed every one of events (tablets) and nothing is in
// flight, polling its status finely (a do-nothing drain of 10 M points takes some 40 ms).
func drained(m *pipe.Manager, name string, events int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		st, err := m.Describe(name)
		if err != nil {
			return err
		}
		if st.LastError != "" {
			return fmt.Errorf("pipe %s: %s", name, st.LastError)
		}
		if st.CommittedEvents >= events && st.InFlightEvents == 0 && st.LagEvents == 0 {
			return nil
		}
		time.Sleep(200 * time.Microsecond)
	}
	return fmt.Errorf("pipe %s did not drain in %s", name, limit)
}

func medianOf(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ingest writes the tablets with two writers.
func ingest(r *engine.Region, tablets []*tsfile.Tablet) error {
	return writeTablets(tablets, 2, regionWriter(r))
}

// runAlone opens the case's processor as a pipe would and times Process over every tablet
// (as tablet events), releasing the outputs as a sink would.
func runAlone(c ProcessorCase, tablets []*tsfile.Tablet) (time.Duration, error) {
	s, err := pipe.ParseSpec([]byte("name: alone\nsource: {plugin: wal}\nprocessors:\n  - " + c.Spec + "\nsink: {plugin: do-nothing}\n"))
	if err != nil {
		return 0, err
	}
	norm, err := s.Normalize()
	if err != nil {
		return 0, err
	}
	p, err := pipe.NewProcessor(norm.Processors[0].Plugin)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	env := &pipe.Env{Pipe: "alone", Params: norm.ParamsOf(pipe.RoleProcessor, 0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := p.Open(ctx, env); err != nil {
		return 0, err
	}
	defer p.Close()
	var outs []*pipe.Event
	emit := func(e *pipe.Event) { outs = append(outs, e) }
	start := time.Now()
	for i, tb := range tablets {
		tb.Retain()
		in := &pipe.Event{Kind: pipe.KindTablet, Tablet: tb, Origin: 1, OriginIndex: uint64(i + 1), MinIndex: uint64(i + 1), MaxIndex: uint64(i + 1)}
		if err := p.Process(ctx, in, emit); err != nil {
			in.Release()
			return 0, err
		}
		for _, o := range outs {
			if o != in {
				o.Release()
			}
		}
		outs = outs[:0]
		in.Release()
	}
	return time.Since(start), nil
}
