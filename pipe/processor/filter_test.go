package processor

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

func TestParsePredicateErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"temp => 80", `column 6: unknown operator "=>"`},
		{"temp ~ 80", `unknown operator "~"`},
		{"80 > 70", "compares two constants: name a measurement"},
		{"temp > 80 and temp = 'hot'", `measurement "temp" is compared with a number at column 8 and with a string`},
		{"a = b and b = 'x' and a > 3", `measurement "a" is compared with a string`},
		{"ok > true", "booleans compare only with = and !="},
		{"time = true", "time compares with numbers or RFC 3339 times"},
		{"time > 'yesterday'", "time compares with numbers or RFC 3339 times"},
		{"temp >", "unexpected end of predicate"},
		{"temp > 80 80", `unexpected token "80"`},
		{"(temp > 80", "unexpected end of predicate"},
		{"temp > 1e999", "not a finite number"},
		{"`a.b` > 1", `measurement "a.b"`},
		{"", "empty predicate"},
	} {
		_, err := ParsePredicate(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePredicate(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
	for _, ok := range []string{
		"temp > 80", "temp>80 AND state != \"off\"", "not (a > 1 or b <= -2.5e1)", "!(a=1) && b<>2 || c == 'x''y'",
		"time >= '2024-01-01T00:00:00Z' and time < 1800000000000", "a = b", "`1x` = 3", "ok = TRUE",
	} {
		if _, err := ParsePredicate(ok); err != nil {
			t.Errorf("ParsePredicate(%q): %v", ok, err)
		}
	}
}

func TestPredicateCheckTypes(t *testing.T) {
	p, err := ParsePredicate("temp > 80 and name = 'x'")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckTypes(map[string]tsfile.DataType{"temp": tsfile.Int32, "name": tsfile.Text}); err != nil {
		t.Fatal(err)
	}
	err = p.CheckTypes(map[string]tsfile.DataType{"temp": tsfile.Text})
	if err == nil || !strings.Contains(err.Error(), `measurement "temp" is TEXT, the predicate compares it with a number`) {
		t.Fatalf("got %v", err)
	}
	tb := makeTablet(t, "root.db.d", []tsfile.Column{{Name: "temp", Type: tsfile.Text}}, []row{{1, []any{"hot"}}})
	defer tb.Release()
	if _, err := p.Eval(tb); err == nil || !strings.Contains(err.Error(), "is TEXT") {
		t.Fatalf("Eval on a TEXT temp: %v", err)
	}
}

// A random predicate over allCols, rendered as text, with a naive row evaluator.
type predGen struct {
	text string
	eval func(m map[string]any, ts int64) (val, known bool)
}

var numericCols = []string{"a", "b", "e", "f"}

func asFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case float64:
		return x
	case float32:
		return float64(x)
	}
	panic(fmt.Sprintf("not a number: %T", v))
}

func compare(op string, c int) bool {
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

func cmp3[T int | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func drawPredicate(rt *rapid.T, depth int) predGen {
	kind := rapid.IntRange(0, 9).Draw(rt, "pkind")
	if depth > 0 && kind < 4 {
		l := drawPredicate(rt, depth-1)
		r := drawPredicate(rt, depth-1)
		switch kind {
		case 0, 1:
			return predGen{"(" + l.text + " and " + r.text + ")", func(m map[string]any, ts int64) (bool, bool) {
				lv, lk := l.eval(m, ts)
				rv, rk := r.eval(m, ts)
				switch {
				case (lk && !lv) || (rk && !rv):
					return false, true
				case lk && rk:
					return true, true
				}
				return false, false
			}}
		case 2:
			return predGen{"(" + l.text + " or " + r.text + ")", func(m map[string]any, ts int64) (bool, bool) {
				lv, lk := l.eval(m, ts)
				rv, rk := r.eval(m, ts)
				switch {
				case (lk && lv) || (rk && rv):
					return true, true
				case lk && rk:
					return false, true
				}
				return false, false
			}}
		default:
			return predGen{"not " + l.text, func(m map[string]any, ts int64) (bool, bool) {
				v, k := l.eval(m, ts)
				return !v, k
			}}
		}
	}
	op := rapid.SampledFrom([]string{"=", "!=", "<", "<=", ">", ">="}).Draw(rt, "op")
	switch rapid.IntRange(0, 5).Draw(rt, "cmpkind") {
	case 0, 1: // numeric measurement (or a missing one) vs a number
		name := rapid.SampledFrom(append(numericCols, "zz")).Draw(rt, "m")
		num := float64(rapid.IntRange(-60, 60).Draw(rt, "num")) / 4
		return predGen{fmt.Sprintf("%s %s %v", name, op, num), func(m map[string]any, _ int64) (bool, bool) {
			v, ok := m[name]
			if !ok || v == nil {
				return false, false
			}
			return compare(op, cmp3(asFloat(v), num)), true
		}}
	case 2: // two numeric measurements
		l := rapid.SampledFrom(numericCols).Draw(rt, "l")
		r := rapid.SampledFrom(numericCols).Draw(rt, "r")
		return predGen{fmt.Sprintf("%s %s %s", l, op, r), func(m map[string]any, _ int64) (bool, bool) {
			lv, rv := m[l], m[r]
			if lv == nil || rv == nil {
				return false, false
			}
			return compare(op, cmp3(asFloat(lv), asFloat(rv))), true
		}}
	case 3: // text
		s := rapid.SampledFrom([]string{"on", "off", "x"}).Draw(rt, "s")
		return predGen{fmt.Sprintf("c %s '%s'", op, s), func(m map[string]any, _ int64) (bool, bool) {
			v := m["c"]
			if v == nil {
				return false, false
			}
			return compare(op, cmp3(v.(string), s)), true
		}}
	case 4: // boolean
		eq := rapid.SampledFrom([]string{"=", "!="}).Draw(rt, "beq")
		b := rapid.Bool().Draw(rt, "b")
		return predGen{fmt.Sprintf("%v %s d", b, eq), func(m map[string]any, _ int64) (bool, bool) {
			v := m["d"]
			if v == nil {
				return false, false
			}
			return (v.(bool) == b) == (eq == "="), true
		}}
	}
	n := rapid.IntRange(0, 60).Draw(rt, "tn")
	return predGen{fmt.Sprintf("time %s %d", op, n), func(_ map[string]any, ts int64) (bool, bool) {
		return compare(op, cmp3(int(ts), n)), true
	}}
}

// The filter keeps exactly the points a naive row-by-row evaluation keeps.
func TestFilterMatchesNaive(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		pg := drawPredicate(rt, 2)
		usePred := rapid.IntRange(0, 3).Draw(rt, "usePred") > 0
		pat := rapid.SampledFrom([]string{"root.**", "root.db.d1", "root.db.*.a", "root.db.**.b", "root.other.**"}).Draw(rt, "pattern")
		minT, maxT := int64(math.MinInt64), int64(math.MaxInt64)
		if rapid.Bool().Draw(rt, "range") {
			minT = int64(rapid.IntRange(0, 40).Draw(rt, "minT"))
			maxT = minT + int64(rapid.IntRange(0, 40).Draw(rt, "len"))
		}
		var pred *Predicate
		if usePred {
			var err error
			if pred, err = ParsePredicate(pg.text); err != nil {
				rt.Fatalf("%s: %v", pg.text, err)
			}
		}
		pattern := tsfile.MustPattern(pat)
		f := NewFilter(pattern, minT, maxT, pred)
		var next int64
		unsorted := rapid.Bool().Draw(rt, "unsorted")
		for i, n := 0, rapid.IntRange(1, 4).Draw(rt, "tablets"); i < n; i++ {
			dev := rapid.SampledFrom([]string{"root.db.d1", "root.db.d2"}).Draw(rt, "dev")
			tb := drawTablet(rt, dev, &next, unsorted)
			// the reference
			var want []point
			ts := tb.Times()
			cols := tb.Columns()
			for r := range ts {
				m := map[string]any{}
				for c, col := range cols {
					m[col.Name] = tsfile.Value(tb.Rec.Column(c+1), r)
				}
				if ts[r] < minT || ts[r] > maxT {
					continue
				}
				if usePred {
					if v, k := pg.eval(m, ts[r]); !k || !v {
						continue
					}
				}
				for _, col := range cols {
					if v := m[col.Name]; v != nil && pattern.Match(dev, col.Name) {
						want = append(want, point{dev, col.Name, ts[r], v})
					}
				}
			}
			in := tabletEvent(tb, 1, uint64(i+1))
			outs := run(rt, f, in)
			for _, o := range outs {
				if err := o.Tablet.Validate(); err != nil {
					rt.Fatalf("output tablet: %v", err)
				}
				if o.Origin != 1 || o.OriginIndex != uint64(i+1) {
					rt.Fatalf("output identity (%d,%d), want the input's", o.Origin, o.OriginIndex)
				}
			}
			equalPoints(rt, fmt.Sprintf("pattern %s range [%d,%d] predicate %q (%v)", pat, minT, maxT, pg.text, usePred), outPoints(outs), want)
			releaseOutputs(outs, in)
			tb.Release()
		}
	})
}

func TestFilterFiles(t *testing.T) {
	dir := t.TempDir()
	cols := []tsfile.Column{{Name: "temp", Type: tsfile.Double}, {Name: "state", Type: tsfile.Text}}
	d1 := makeTablet(t, "root.db.d1", cols, []row{{1, []any{70.0, "on"}}, {2, []any{85.0, "on"}}, {3, []any{90.0, "off"}}})
	d2 := makeTablet(t, "root.db.d2", cols, []row{{1, []any{81.0, nil}}, {5, []any{60.0, "on"}}})
	defer d1.Release()
	defer d2.Release()
	del := engine.IndexedDeletion{Deletion: engine.Deletion{Pattern: tsfile.MustPattern("root.db.d1"), MinTime: 0, MaxTime: 0}, Index: 12, Origin: 1, OriginIndex: 12}
	fe := writeFile(t, dir, []*tsfile.Tablet{d1, d2}, []engine.IndexedDeletion{del})

	// no predicate: the file passes as a file, narrowed, unopened
	f := NewFilter(tsfile.MustPattern("root.db.d1"), 2, maxInt, nil)
	outs := run(t, f, fe)
	if len(outs) != 1 || outs[0].Kind != pipe.KindTsFile || outs[0].File.Pattern.String() != "root.db.d1" || outs[0].File.MinTime != 2 || outs[0].File.Path != fe.File.Path {
		t.Fatalf("narrowed file: %+v", outs)
	}
	if outs := run(t, NewFilter(tsfile.Pattern{}, minInt, maxInt, nil), fe); len(outs) != 1 || outs[0] != fe {
		t.Fatalf("a filter that keeps everything must pass the file itself: %+v", outs)
	}
	// the source selected root.db.**: the filter's pattern inside it narrows the file too
	ref := *fe.File
	ref.Pattern = tsfile.MustPattern("root.db.**")
	sel := &pipe.Event{Kind: pipe.KindTsFile, File: &ref, Progress: fe.Progress, MaxIndex: fe.MaxIndex}
	outs = run(t, NewFilter(tsfile.MustPattern("root.db.*.temp"), minInt, maxInt, nil), sel)
	if len(outs) != 1 || outs[0].Kind != pipe.KindTsFile || outs[0].File.Pattern.String() != "root.db.*.temp" {
		t.Fatalf("narrowed inside the source's pattern: %+v", outs)
	}
	ref.Pattern = tsfile.MustPattern("root.*.d1")
	outs = run(t, NewFilter(tsfile.MustPattern("root.db.*.temp"), minInt, maxInt, nil), sel)
	equalPoints(t, "two patterns: rows read", outPoints(outs), []point{{"root.db.d1", "temp", 1, 70.0}, {"root.db.d1", "temp", 2, 85.0}, {"root.db.d1", "temp", 3, 90.0}})
	releaseOutputs(outs, sel)

	// a predicate reads the rows: deletions first, then derived tablets
	pred, err := ParsePredicate("temp > 80")
	if err != nil {
		t.Fatal(err)
	}
	outs = run(t, NewFilter(tsfile.Pattern{}, minInt, maxInt, pred), fe)
	defer releaseOutputs(outs, fe)
	if len(outs) != 3 || outs[0].Kind != pipe.KindDeletion || outs[0].OriginIndex != 12 {
		t.Fatalf("outputs: %+v", outs)
	}
	equalPoints(t, "file rows", outPoints(outs), []point{
		{"root.db.d1", "temp", 2, 85.0}, {"root.db.d1", "state", 2, "on"},
		{"root.db.d1", "temp", 3, 90.0}, {"root.db.d1", "state", 3, "off"},
		{"root.db.d2", "temp", 1, 81.0},
	})
	for i, o := range outs[1:] {
		if o.Origin != DerivedOrigin(engine.DefaultOrigin) || o.OriginIndex != 50<<DerivedShift|uint64(i) {
			t.Errorf("output %d identity (%x, %x)", i, o.Origin, o.OriginIndex)
		}
		if !o.Progress.Covers(fe.Progress) {
			t.Errorf("output %d progress %v, want the file's %v", i, o.Progress, fe.Progress)
		}
	}
}
