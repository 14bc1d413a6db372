package processor

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// drawDisorderedStream draws tablets of two devices with distinct times per device that
// arrive out of order now and then (neighbouring tablets swapped, rows shuffled).
func drawDisorderedStream(rt *rapid.T) []*tsfile.Tablet {
	var next int64
	tablets := make([]*tsfile.Tablet, rapid.IntRange(1, 10).Draw(rt, "tablets"))
	for i := range tablets {
		dev := rapid.SampledFrom([]string{"root.db.d1", "root.db.d2"}).Draw(rt, "dev")
		tablets[i] = drawTablet(rt, dev, &next, rapid.IntRange(0, 3).Draw(rt, "shuffle") == 0)
	}
	for i := 1; i < len(tablets); i++ {
		if rapid.IntRange(0, 3).Draw(rt, "swap") == 0 {
			tablets[i-1], tablets[i] = tablets[i], tablets[i-1]
		}
	}
	return tablets
}

// naiveAggregate computes, row by row, what the aggregate emits: it drops the points whose
// window had closed when their tablet arrived (the frontier as of the tablets before),
// then aggregates each (device, measurement, window).
func naiveAggregate(cfg AggregateConfig, tablets []*tsfile.Tablet) []point {
	type key struct {
		dev, m string
		w      int64
	}
	groups := map[key][]point{}
	maxSeen := map[string]int64{}
	for _, tb := range tablets {
		frontier, seen := int64(math.MinInt64), false
		if mx, ok := maxSeen[tb.Device]; ok {
			frontier, seen = floorDiv(mx-cfg.Lateness, cfg.Interval)*cfg.Interval, true
		}
		for _, p := range pointsOf(tb) {
			w := floorDiv(p.T, cfg.Interval) * cfg.Interval
			if seen && w+cfg.Interval <= frontier {
				continue // late
			}
			k := key{p.Device, p.M, w}
			groups[k] = append(groups[k], p)
		}
		for _, ts := range tb.Times() {
			if mx, ok := maxSeen[tb.Device]; !ok || ts > mx {
				maxSeen[tb.Device] = ts
			}
		}
	}
	var out []point
	for k, ps := range groups {
		t := typeOf(k.m)
		for _, f := range cfg.Functions {
			if _, ok := outputType(f, t); !ok {
				continue
			}
			var v any
			switch f {
			case FuncCount:
				v = int64(len(ps))
			case FuncSum, FuncAvg:
				sum := 0.0
				for _, p := range ps {
					sum += num(p.V)
				}
				v = sum
				if f == FuncAvg {
					v = sum / float64(len(ps))
				}
			case FuncMin, FuncMax:
				best := ps[0]
				for _, p := range ps[1:] {
					if (f == FuncMin) == (num(p.V) < num(best.V)) && num(p.V) != num(best.V) {
						best = p
					}
				}
				v = best.V
			case FuncFirst, FuncLast:
				best := ps[0]
				for _, p := range ps[1:] {
					if (f == FuncFirst && p.T < best.T) || (f == FuncLast && p.T > best.T) {
						best = p
					}
				}
				v = best.V
			}
			out = append(out, point{k.dev, k.m + "_" + f, k.w, v})
		}
	}
	return out
}

func drawAggregateConfig(rt *rapid.T) AggregateConfig {
	fns := rapid.SliceOfNDistinct(rapid.SampledFrom(AggregateFunctions), 1, len(AggregateFunctions), rapid.ID[string]).Draw(rt, "functions")
	return AggregateConfig{
		Functions: fns,
		Interval:  int64(rapid.IntRange(1, 25).Draw(rt, "interval")),
		Lateness:  int64(rapid.IntRange(0, 12).Draw(rt, "lateness")),
	}
}

// runAggregate feeds the tablets through an aggregate made for cfg, restarting it from its
// saved state at random points, then flushes the windows still open.
func runAggregate(rt *rapid.T, cfg AggregateConfig, tablets []*tsfile.Tablet) []point {
	a, err := NewAggregate(cfg)
	if err != nil {
		rt.Fatal(err)
	}
	var got []point
	for i, tb := range tablets {
		if rapid.IntRange(0, 3).Draw(rt, "restart") == 0 {
			st, err := a.SaveState()
			if err != nil {
				rt.Fatal(err)
			}
			a, _ = NewAggregate(cfg)
			if err := a.LoadState(st); err != nil {
				rt.Fatal(err)
			}
		}
		in := tabletEvent(tb, 1, uint64(i+1))
		outs := run(rt, a, in)
		for _, o := range outs {
			if err := o.Tablet.Validate(); err != nil {
				rt.Fatal(err)
			}
		}
		got = append(got, outPoints(outs)...)
		releaseOutputs(outs, in)
	}
	for _, tb := range a.flush() {
		got = append(got, pointsOf(tb)...)
		tb.Release()
	}
	return got
}

// The aggregate equals a row-by-row computation, across restarts and out-of-order data:
// no window is lost or counted twice.
func TestAggregateMatchesRowByRow(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := drawAggregateConfig(rt)
		tablets := drawDisorderedStream(rt)
		defer func() {
			for _, tb := range tablets {
				tb.Release()
			}
		}()
		equalPoints(rt, fmt.Sprintf("%+v", cfg), runAggregate(rt, cfg, tablets), naiveAggregate(cfg, tablets))
	})
}

// Restarting from a snapshot taken after any event gives exactly the outputs, in order,
// of a run that never stopped.
func TestAggregateStateSurvivesRestartExactly(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := drawAggregateConfig(rt)
		tablets := drawDisorderedStream(rt)
		defer func() {
			for _, tb := range tablets {
				tb.Release()
			}
		}()
		k := rapid.IntRange(0, len(tablets)).Draw(rt, "checkpoint")
		whole, _ := NewAggregate(cfg)
		var snap []byte
		var want []string
		for i, tb := range tablets {
			if i == k {
				var err error
				if snap, err = whole.SaveState(); err != nil {
					rt.Fatal(err)
				}
			}
			in := tabletEvent(tb, 1, uint64(i+1))
			outs := run(rt, whole, in)
			if i >= k {
				for _, p := range outPoints(outs) {
					want = append(want, p.String())
				}
			}
			releaseOutputs(outs, in)
		}
		if k == len(tablets) {
			snap, _ = whole.SaveState()
		}
		restarted, _ := NewAggregate(cfg)
		if err := restarted.LoadState(snap); err != nil {
			rt.Fatal(err)
		}
		var got []string
		for i := k; i < len(tablets); i++ {
			in := tabletEvent(tablets[i], 1, uint64(i+1))
			outs := run(rt, restarted, in)
			for _, p := range outPoints(outs) {
				got = append(got, p.String())
			}
			releaseOutputs(outs, in)
		}
		if !slices.Equal(got, want) {
			rt.Fatalf("after a restart at %d:\ngot  %v\nwant %v", k, got, want)
		}
		a, b := whole.flush(), restarted.flush()
		var pa, pb []point
		for _, tb := range a {
			pa = append(pa, pointsOf(tb)...)
			tb.Release()
		}
		for _, tb := range b {
			pb = append(pb, pointsOf(tb)...)
			tb.Release()
		}
		equalPoints(rt, "open windows", pb, pa)
	})
}

func TestAggregateOutputs(t *testing.T) {
	cfg := AggregateConfig{Functions: []string{FuncCount, FuncAvg, FuncLast}, Interval: 10, Pattern: tsfile.MustPattern("root.db.d.temp")}
	a, err := NewAggregate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cols := []tsfile.Column{{Name: "temp", Type: tsfile.Int32}, {Name: "state", Type: tsfile.Text}}
	t1 := makeTablet(t, "root.db.d", cols, []row{{1, []any{int32(10), "a"}}, {5, []any{int32(20), "b"}}})
	t2 := makeTablet(t, "root.db.d", cols, []row{{12, []any{int32(30), nil}}})
	defer t1.Release()
	defer t2.Release()
	e1, e2 := tabletEvent(t1, 1, 7), tabletEvent(t2, 1, 8)
	outs := run(t, a, e1, e2)
	defer releaseOutputs(outs, e1, e2)
	// e1: the state column passes (the pattern leaves it out), with e1's identity; e2: its
	// state is null, so only the closed window [0,10), with e2's identity
	if len(outs) != 2 || outs[0].OriginIndex != 7 || outs[1].Origin != 1 || outs[1].OriginIndex != 8 {
		t.Fatalf("outputs: %+v", outs)
	}
	equalPoints(t, "outputs", outPoints(outs), []point{
		{"root.db.d", "state", 1, "a"}, {"root.db.d", "state", 5, "b"},
		{"root.db.d", "temp_count", 0, int64(2)}, {"root.db.d", "temp_avg", 0, 15.0}, {"root.db.d", "temp_last", 0, int32(20)},
	})

	// keep-raw passes the input itself; a file passes untouched and its windows follow
	cfg.KeepRaw, cfg.Pattern = true, tsfile.Pattern{}
	k, _ := NewAggregate(cfg)
	fe := writeFile(t, t.TempDir(), []*tsfile.Tablet{t1}, []engine.IndexedDeletion{{Index: 3, Origin: 1, OriginIndex: 3}})
	late := makeTablet(t, "root.db.d", cols, []row{{40, []any{int32(1), "z"}}})
	defer late.Release()
	le := tabletEvent(late, 1, 60)
	outs2 := run(t, k, fe, le)
	defer releaseOutputs(outs2, fe, le)
	if len(outs2) != 3 || outs2[0] != fe || outs2[1] != le || outs2[2].Origin != DerivedOrigin(1) {
		t.Fatalf("keep-raw outputs: %+v", outs2)
	}
	if ps := pointsOf(outs2[2].Tablet); !strings.Contains(fmt.Sprint(ps), "temp_count@0=2") || !strings.Contains(fmt.Sprint(ps), "state_count@0=2") {
		t.Fatalf("windows of the file: %v", ps)
	}
	hb := &pipe.Event{Kind: pipe.KindHeartbeat}
	if outs := run(t, k, hb); len(outs) != 1 || outs[0] != hb {
		t.Fatalf("heartbeat: %+v", outs)
	}
}

func TestAggregateConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  AggregateConfig
		want string
	}{
		{AggregateConfig{Functions: []string{"median"}, Interval: 1}, `functions: unknown function "median"`},
		{AggregateConfig{Functions: []string{"avg"}, Interval: 0}, "interval: 0 must be above zero"},
		{AggregateConfig{Functions: []string{"avg"}, Interval: 5, Lateness: -1}, "allowed-lateness: -1 is negative"},
		{AggregateConfig{Interval: 5}, "functions: none given"},
	} {
		if _, err := NewAggregate(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// A sum that overflows is left out of the outputs, and the state still saves and loads.
func TestAggregateOverflowedSum(t *testing.T) {
	a, _ := NewAggregate(AggregateConfig{Functions: []string{FuncSum, FuncCount}, Interval: 10})
	cols := []tsfile.Column{{Name: "v", Type: tsfile.Double}}
	tb := makeTablet(t, "root.db.d", cols, []row{{1, []any{1.5e308}}, {2, []any{1.5e308}}})
	defer tb.Release()
	outs := run(t, a, tabletEvent(tb, 1, 1))
	st, err := a.SaveState()
	if err != nil || len(outs) != 0 {
		t.Fatalf("save: %v, outputs %v", err, outs)
	}
	b, _ := NewAggregate(AggregateConfig{Functions: []string{FuncSum, FuncCount}, Interval: 10})
	if err := b.LoadState(st); err != nil {
		t.Fatal(err)
	}
	closer := makeTablet(t, "root.db.d", cols, []row{{25, []any{1.0}}})
	defer closer.Release()
	in := tabletEvent(closer, 1, 2)
	outs = run(t, b, in)
	defer releaseOutputs(outs, in)
	equalPoints(t, "overflowed window", outPoints(outs), []point{{"root.db.d", "v_count", 0, int64(2)}})
}

// naiveLate counts the points naiveAggregate drops as late.
func naiveLate(cfg AggregateConfig, tablets []*tsfile.Tablet) int64 {
	var late int64
	maxSeen := map[string]int64{}
	for _, tb := range tablets {
		if mx, ok := maxSeen[tb.Device]; ok {
			frontier := floorDiv(mx-cfg.Lateness, cfg.Interval) * cfg.Interval
			for _, p := range pointsOf(tb) {
				if floorDiv(p.T, cfg.Interval)*cfg.Interval+cfg.Interval <= frontier {
					late++
				}
			}
		}
		for _, ts := range tb.Times() {
			if mx, ok := maxSeen[tb.Device]; !ok || ts > mx {
				maxSeen[tb.Device] = ts
			}
		}
	}
	return late
}

// Late counts every point dropped because its window had closed.
func TestAggregateCountsLatePoints(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := drawAggregateConfig(rt)
		tablets := drawDisorderedStream(rt)
		defer func() {
			for _, tb := range tablets {
				tb.Release()
			}
		}()
		a, err := NewAggregate(cfg)
		if err != nil {
			rt.Fatal(err)
		}
		for i, tb := range tablets {
			in := tabletEvent(tb, 1, uint64(i+1))
			releaseOutputs(run(rt, a, in), in)
		}
		if got, want := a.Late(), naiveLate(cfg, tablets); got != want {
			rt.Fatalf("%+v: late %d, want %d", cfg, got, want)
		}
	})
}
