package processor

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// drawStream draws tablets of two devices with times increasing per device, numeric
// values as random walks (so that sdt has lines to follow), and nulls.
func drawStream(rt *rapid.T) []*tsfile.Tablet {
	next := map[string]int64{}
	walk := map[string]float64{}
	var out []*tsfile.Tablet
	for i, n := 0, rapid.IntRange(1, 8).Draw(rt, "tablets"); i < n; i++ {
		dev := rapid.SampledFrom([]string{"root.db.d1", "root.db.d2"}).Draw(rt, "dev")
		var cols []tsfile.Column
		for _, c := range allCols {
			if rapid.IntRange(0, 3).Draw(rt, "has-"+c.Name) > 0 {
				cols = append(cols, c)
			}
		}
		if len(cols) == 0 {
			cols = allCols[1:2]
		}
		rows := make([]row, rapid.IntRange(1, 25).Draw(rt, "rows"))
		for r := range rows {
			next[dev] += int64(rapid.IntRange(1, 9).Draw(rt, "step"))
			rows[r].T = next[dev]
			for _, c := range cols {
				key := dev + c.Name
				walk[key] += float64(rapid.IntRange(-12, 12).Draw(rt, "dv")) / 4
				var v any
				switch c.Type {
				case tsfile.Int64:
					v = int64(walk[key])
				case tsfile.Int32:
					v = int32(walk[key])
				case tsfile.Double:
					v = walk[key]
				case tsfile.Float:
					v = float32(walk[key])
				default:
					v = drawValue(rt, c.Type, c.Name)
				}
				if rapid.IntRange(0, 6).Draw(rt, "null") == 0 {
					v = nil
				}
				rows[r].Vals = append(rows[r].Vals, v)
			}
		}
		out = append(out, makeTablet(rt, dev, cols, rows))
	}
	return out
}

// seriesOf groups the points of tablets by series, in time order.
func seriesOf(tablets []*tsfile.Tablet) map[string][]point {
	out := map[string][]point{}
	for _, tb := range tablets {
		for _, p := range pointsOf(tb) {
			k := p.Device + "." + p.M
			out[k] = append(out[k], p)
		}
	}
	for k, ps := range out {
		out[k] = sortPoints(ps)
	}
	return out
}

func typeOf(m string) tsfile.DataType {
	for _, c := range allCols {
		if c.Name == m {
			return c.Type
		}
	}
	return 0
}

func num(v any) float64 {
	switch v.(type) {
	case string, bool:
		return 0
	}
	return asFloat(v)
}

// toGo turns a Value of type t into the Go value tsfile.Value gives.
func toGo(v Value, t tsfile.DataType) any {
	switch t {
	case tsfile.Int32:
		return int32(v.I)
	case tsfile.Int64:
		return v.I
	case tsfile.Float:
		return float32(v.F)
	case tsfile.Double:
		return v.F
	case tsfile.Text:
		return v.S
	}
	return v.B
}

// naiveDownsample computes what a method keeps of one series (every point, in order),
// including what the processor still holds back at the end.
func naiveDownsample(cfg DownsampleConfig, ps []point) []point {
	var out []point
	if len(ps) == 0 {
		return nil
	}
	t := typeOf(ps[0].M)
	switch cfg.Method {
	case MethodTumblingTime:
		strategy := cfg.Strategy
		if strategy == StrategyAvg && !numeric(t) {
			strategy = StrategyFirst
		}
		for i := 0; i < len(ps); {
			w := floorDiv(ps[i].T, cfg.Interval)
			j := i
			for j < len(ps) && floorDiv(ps[j].T, cfg.Interval) == w {
				j++
			}
			switch strategy {
			case StrategyFirst:
				out = append(out, ps[i])
			case StrategyLast:
				out = append(out, ps[j-1])
			case StrategyAvg:
				sum := 0.0
				for _, p := range ps[i:j] {
					sum += num(p.V)
				}
				p := ps[i]
				p.T, p.V = w*cfg.Interval, toGo(FromNum(sum/float64(j-i), t), t)
				out = append(out, p)
			}
			i = j
		}
	case MethodChangingValue:
		var kept *point
		for i := range ps {
			p := ps[i]
			if kept != nil {
				gap := p.T - kept.T
				if gap < cfg.MinGap {
					continue
				}
				var moved bool
				if numeric(t) {
					moved = math.Abs(num(p.V)-num(kept.V)) > cfg.Deviation
				} else {
					moved = p.V != kept.V
				}
				if !moved && (cfg.MaxGap == 0 || gap < cfg.MaxGap) {
					continue
				}
			}
			out = append(out, p)
			kept = &ps[i]
		}
	}
	return out
}

func drawDownsampleConfig(rt *rapid.T, method string) DownsampleConfig {
	cfg := DownsampleConfig{Method: method}
	switch method {
	case MethodTumblingTime:
		cfg.Interval = int64(rapid.IntRange(1, 30).Draw(rt, "interval"))
		cfg.Strategy = rapid.SampledFrom([]string{StrategyFirst, StrategyLast, StrategyAvg}).Draw(rt, "strategy")
	default:
		cfg.Deviation = float64(rapid.IntRange(0, 12).Draw(rt, "deviation")) / 4
		if method == MethodChangingValue {
			cfg.MinGap = int64(rapid.IntRange(0, 5).Draw(rt, "min"))
		}
		if rapid.Bool().Draw(rt, "hasMax") {
			cfg.MaxGap = int64(rapid.IntRange(max(1, int(cfg.MinGap)), 40).Draw(rt, "max"))
		}
	}
	return cfg
}

// runWithRestarts feeds the tablets through a downsample made for cfg, restarting it from
// its saved state at random points (as a pipe restarts from a checkpoint), and returns
// every point it kept plus what it still holds back.
func runWithRestarts(rt *rapid.T, cfg DownsampleConfig, tablets []*tsfile.Tablet) []point {
	d, err := NewDownsample(cfg)
	if err != nil {
		rt.Fatal(err)
	}
	var got []point
	for i, tb := range tablets {
		if rapid.IntRange(0, 3).Draw(rt, "restart") == 0 {
			st, err := d.SaveState()
			if err != nil {
				rt.Fatal(err)
			}
			d, _ = NewDownsample(cfg)
			if err := d.LoadState(st); err != nil {
				rt.Fatal(err)
			}
		}
		in := tabletEvent(tb, 1, uint64(i+1))
		outs := run(rt, d, in)
		if len(outs) > 1 {
			rt.Fatalf("%d outputs for one tablet", len(outs))
		}
		for _, o := range outs {
			if err := o.Tablet.Validate(); err != nil {
				rt.Fatal(err)
			}
			if o.Origin != 1 || o.OriginIndex != uint64(i+1) {
				rt.Fatalf("output identity (%d,%d)", o.Origin, o.OriginIndex)
			}
		}
		got = append(got, outPoints(outs)...)
		releaseOutputs(outs, in)
	}
	for k, s := range d.pending() {
		dev, m, _ := strings.Cut(k, "\x00")
		got = append(got, point{dev, m, s.T, toGo(s.V, typeOf(m))})
	}
	return got
}

func TestDownsampleMatchesNaive(t *testing.T) {
	for _, method := range []string{MethodTumblingTime, MethodChangingValue} {
		t.Run(method, func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				cfg := drawDownsampleConfig(rt, method)
				tablets := drawStream(rt)
				defer func() {
					for _, tb := range tablets {
						tb.Release()
					}
				}()
				var want []point
				for _, ps := range seriesOf(tablets) {
					want = append(want, naiveDownsample(cfg, ps)...)
				}
				equalPoints(rt, fmt.Sprintf("%+v", cfg), runWithRestarts(rt, cfg, tablets), want)
			})
		})
	}
}

// sdt keeps the first point of each series, and every point it drops lies within the
// deviation of the line between the kept points around it; with max-interval, no dropped
// point is max-interval or more after the kept point before it.
func TestSDTErrorBound(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := drawDownsampleConfig(rt, MethodSDT)
		tablets := drawStream(rt)
		defer func() {
			for _, tb := range tablets {
				tb.Release()
			}
		}()
		kept := seriesOf(nil)
		for _, p := range runWithRestarts(rt, cfg, tablets) {
			k := p.Device + "." + p.M
			kept[k] = append(kept[k], p)
		}
		for k, all := range seriesOf(tablets) {
			ks := sortPoints(kept[k])
			if len(ks) == 0 || ks[0] != all[0] {
				rt.Fatalf("%s: first point %v not kept (kept %v)", k, all[0], head(ks))
			}
			if !numeric(typeOf(all[0].M)) {
				continue
			}
			j := 0 // ks[j] is the last kept point at or before p
			for _, p := range all {
				for j+1 < len(ks) && ks[j+1].T <= p.T {
					j++
				}
				if ks[j].T == p.T {
					if ks[j] != p {
						rt.Fatalf("%s: kept %v is not the input point %v", k, ks[j], p)
					}
					continue
				}
				a := ks[j]
				if cfg.MaxGap > 0 && p.T-a.T >= cfg.MaxGap {
					rt.Fatalf("%s: dropped %v is %d after kept %v (max-interval %d)", k, p, p.T-a.T, a, cfg.MaxGap)
				}
				if j+1 >= len(ks) {
					rt.Fatalf("%s: dropped %v after the last kept point %v", k, p, a)
				}
				b := ks[j+1]
				line := num(a.V) + (num(b.V)-num(a.V))*float64(p.T-a.T)/float64(b.T-a.T)
				if err := math.Abs(num(p.V) - line); err > cfg.Deviation+1e-9*(1+math.Abs(line)) {
					rt.Fatalf("%s: dropped %v is %g from the line %v–%v (deviation %g)", k, p, err, a, b, cfg.Deviation)
				}
			}
		}
	})
}

func TestDownsampleConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  DownsampleConfig
		want string
	}{
		{DownsampleConfig{Method: "median"}, `method: unknown method "median"`},
		{DownsampleConfig{Method: MethodTumblingTime, Interval: 0, Strategy: StrategyFirst}, "interval: 0 must be above zero"},
		{DownsampleConfig{Method: MethodTumblingTime, Interval: 5, Strategy: "mode"}, `strategy: "mode"`},
		{DownsampleConfig{Method: MethodSDT, Deviation: -1}, "compression-deviation: -1"},
		{DownsampleConfig{Method: MethodChangingValue, MinGap: 10, MaxGap: 5}, "min-interval: above max-interval"},
	} {
		if _, err := NewDownsample(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// Series the pattern leaves out pass through; a tablet of none of them passes as is.
func TestDownsamplePattern(t *testing.T) {
	d, err := NewDownsample(DownsampleConfig{Method: MethodChangingValue, Deviation: 100, Pattern: tsfile.MustPattern("root.db.d1.b")})
	if err != nil {
		t.Fatal(err)
	}
	cols := []tsfile.Column{{Name: "a", Type: tsfile.Int64}, {Name: "b", Type: tsfile.Double}}
	tb := makeTablet(t, "root.db.d1", cols, []row{{1, []any{int64(1), 1.0}}, {2, []any{int64(2), 2.0}}, {3, []any{nil, 3.0}}})
	defer tb.Release()
	in := tabletEvent(tb, 1, 1)
	outs := run(t, d, in)
	defer releaseOutputs(outs, in)
	equalPoints(t, "pattern", outPoints(outs), []point{
		{"root.db.d1", "a", 1, int64(1)}, {"root.db.d1", "a", 2, int64(2)}, {"root.db.d1", "b", 1, 1.0},
	})
	other := makeTablet(t, "root.db.d2", cols, []row{{1, []any{int64(1), 1.0}}})
	defer other.Release()
	oe := tabletEvent(other, 1, 2)
	if outs := run(t, d, oe); len(outs) != 1 || outs[0] != oe {
		t.Fatalf("a tablet with nothing to downsample must pass as is: %+v", outs)
	}
	hb := &pipe.Event{Kind: pipe.KindHeartbeat}
	if outs := run(t, d, hb); len(outs) != 1 || outs[0] != hb {
		t.Fatalf("heartbeat: %+v", outs)
	}
}

// Parameters only Open can check (they involve two keys, or the time unit) fail the pipe
// for good, naming the key.
func TestOpenErrorsArePermanent(t *testing.T) {
	d := &Downsample{}
	err := d.Open(context.Background(), &pipe.Env{Params: pipe.NewParams(map[string]string{
		keyMethod: MethodSDT, keyDeviation: "1", keyMinInterval: "2m", keyMaxInterval: "1m", keyTimeUnit: "ms"})})
	if !pipe.IsPermanent(err) || !strings.Contains(err.Error(), "min-interval: above max-interval") {
		t.Fatalf("min above max: %v", err)
	}
	a := &Aggregate{}
	err = a.Open(context.Background(), &pipe.Env{Params: pipe.NewParams(map[string]string{
		keyFunctions: "avg", keyInterval: "1500us", keyTimeUnit: "ms"})})
	if !pipe.IsPermanent(err) || !strings.Contains(err.Error(), "interval: 1.5ms is not a whole number of ms") {
		t.Fatalf("sub-unit interval: %v", err)
	}
}

// The swinging door's slope bounds overflow to ±Inf on finite doubles near the type's
// limits: the state must still save, and a pipe restarted from it must keep the same
// points as one that never stopped.
func TestSDTStateSavesInfiniteBounds(t *testing.T) {
	cfg := DownsampleConfig{Method: MethodSDT, Deviation: 1}
	cols := []tsfile.Column{{Name: "v", Type: tsfile.Double}}
	first := makeTablet(t, "root.db.d", cols, []row{{0, []any{0.0}}, {1, []any{1e308}}, {2, []any{-1e308}}})
	next := makeTablet(t, "root.db.d", cols, []row{{3, []any{-1e308}}, {4, []any{0.0}}})
	defer first.Release()
	defer next.Release()
	whole, _ := NewDownsample(cfg)
	e1, e2 := tabletEvent(first, 1, 1), tabletEvent(next, 1, 2)
	outs := run(t, whole, e1)
	defer releaseOutputs(outs, e1)
	st, err := whole.SaveState()
	if err != nil {
		t.Fatalf("save state: %v", err)
	}
	restarted, _ := NewDownsample(cfg)
	if err := restarted.LoadState(st); err != nil {
		t.Fatal(err)
	}
	want := run(t, whole, e2)
	defer releaseOutputs(want, e2)
	got := run(t, restarted, e2)
	defer releaseOutputs(got, e2)
	equalPoints(t, "after a restart", outPoints(got), outPoints(want))
}
