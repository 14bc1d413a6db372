package engine

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/weir-dev/weir/tsfile"
)

// TestModelRandomOps checks the region against a map model under random writes (with
// overwrites and nulls), deletions, flushes and reopens.
func TestModelRandomOps(t *testing.T) {
	cols := []tsfile.Column{{Name: "a", Type: tsfile.Int64}, {Name: "b", Type: tsfile.Double}}
	devs := []string{"root.m.d1", "root.m.d2", "root.m.x.d3"}
	pats := []string{"root.m.d1", "root.m.*", "root.m.**", "root.m.d2.a", "root.**.b", "root.m.x.*"}
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		r, err := Open(Options{Dir: dir, FlushAge: -1, MemtableSize: int64(rapid.IntRange(0, 4000).Draw(rt, "memsize"))})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { r.Close() }()
		model := map[string]map[int64]map[string]any{}
		set := func(dev string, tm int64, m string, v any) {
			if model[dev] == nil {
				model[dev] = map[int64]map[string]any{}
			}
			if model[dev][tm] == nil {
				model[dev][tm] = map[string]any{}
			}
			model[dev][tm][m] = v
		}
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for s := 0; s < steps; s++ {
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 6: // write
				dev := rapid.SampledFrom(devs).Draw(rt, "dev")
				n := rapid.IntRange(1, 8).Draw(rt, "rows")
				b := tsfile.NewTabletBuilder(nil, dev, cols)
				type cell struct {
					tm   int64
					a, b any
				}
				var cells []cell
				for i := 0; i < n; i++ {
					tm := int64(rapid.IntRange(0, 20).Draw(rt, "t"))
					var av, bv any
					if rapid.Bool().Draw(rt, "anull") {
						av = int64(rapid.IntRange(-5, 5).Draw(rt, "a"))
					}
					if rapid.Bool().Draw(rt, "bnull") || av == nil {
						bv = float64(rapid.IntRange(-5, 5).Draw(rt, "b"))
					}
					if err := b.AppendRow(tm, av, bv); err != nil {
						rt.Fatal(err)
					}
					cells = append(cells, cell{tm, av, bv})
				}
				tb, err := b.Build()
				b.Release()
				if err != nil {
					rt.Fatal(err)
				}
				if _, err := r.Write(tb); err != nil {
					rt.Fatal(err)
				}
				tb.Release()
				for _, c := range cells {
					if c.a != nil {
						set(dev, c.tm, "a", c.a)
					}
					if c.b != nil {
						set(dev, c.tm, "b", c.b)
					}
				}
			case op == 6: // delete
				p := tsfile.MustPattern(rapid.SampledFrom(pats).Draw(rt, "pat"))
				lo := int64(rapid.IntRange(0, 20).Draw(rt, "lo"))
				hi := lo + int64(rapid.IntRange(0, 10).Draw(rt, "len"))
				if _, err := r.Delete(p, lo, hi); err != nil {
					rt.Fatal(err)
				}
				for dev, rows := range model {
					for tm, ms := range rows {
						if tm < lo || tm > hi {
							continue
						}
						for m := range ms {
							if p.Match(dev, m) {
								delete(ms, m)
							}
						}
					}
				}
			case op == 7:
				if err := r.Flush(); err != nil {
					rt.Fatal(err)
				}
			case op == 8:
				if err := r.Close(); err != nil {
					rt.Fatal(err)
				}
				r, err = Open(Options{Dir: dir, FlushAge: -1})
				if err != nil {
					rt.Fatal(err)
				}
			case op == 9:
				compare(rt, r, model)
			}
		}
		compare(rt, r, model)
	})
}

func compare(rt *rapid.T, r *Region, model map[string]map[int64]map[string]any) {
	got := points(rt, r, Query{})
	want := map[string]map[int64]map[string]any{}
	for dev, rows := range model {
		for tm, ms := range rows {
			for m, v := range ms {
				if want[dev] == nil {
					want[dev] = map[int64]map[string]any{}
				}
				if want[dev][tm] == nil {
					want[dev][tm] = map[string]any{}
				}
				want[dev][tm][m] = v
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		rt.Fatalf("scan differs from model\n got: %v\nwant: %v", got, want)
	}
}
