package processor

import (
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// naiveRename renames by string surgery on the path nodes.
func naiveRename(from, to, device string) string {
	fn, dn := strings.Split(from, "."), strings.Split(device, ".")
	if len(dn) < len(fn) {
		return device
	}
	for i := range fn {
		if fn[i] != dn[i] {
			return device
		}
	}
	return strings.Join(append(strings.Split(to, "."), dn[len(fn):]...), ".")
}

func TestRenameMatchesNaive(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		from := rapid.SampledFrom([]string{"root.src", "root.src.line1", "root.src.line"}).Draw(rt, "from")
		to := rapid.SampledFrom([]string{"root.dst", "root.dst.a.b", "root.src.line2"}).Draw(rt, "to")
		r, err := NewRename(from, to)
		if err != nil {
			rt.Fatal(err)
		}
		var next int64
		for i, n := 0, rapid.IntRange(1, 5).Draw(rt, "n"); i < n; i++ {
			dev := rapid.SampledFrom([]string{"root.src", "root.src.line1", "root.src.line1.d1", "root.src.line10.d1", "root.other.d"}).Draw(rt, "dev")
			tb := drawTablet(rt, dev, &next, false)
			want := pointsOf(tb)
			for j := range want {
				want[j].Device = naiveRename(from, to, dev)
			}
			in := tabletEvent(tb, 1, uint64(i+1))
			outs := run(rt, r, in)
			if len(outs) != 1 || outs[0].OriginIndex != uint64(i+1) {
				rt.Fatalf("outputs %+v", outs)
			}
			if md, _ := outs[0].Tablet.Rec.Schema().Metadata().GetValue(tsfile.MetaDevice); md != outs[0].Tablet.Device {
				rt.Fatalf("schema names device %q, tablet %q", md, outs[0].Tablet.Device)
			}
			equalPoints(rt, "rename "+from+" → "+to, outPoints(outs), want)
			releaseOutputs(outs, in)
			tb.Release()
		}
		pat := rapid.SampledFrom([]string{"root.src.**", "root.src.line1.*.a", "root.**", "root.src"}).Draw(rt, "pattern")
		de := &pipe.Event{Kind: pipe.KindDeletion, Origin: 1, OriginIndex: 9, Deletion: &engine.Deletion{Pattern: tsfile.MustPattern(pat), MinTime: 1, MaxTime: 2}}
		outs := run(rt, r, de)
		want := pat
		if pat == from || strings.HasPrefix(pat, from+".") {
			want = to + pat[len(from):]
		}
		if len(outs) != 1 || outs[0].Deletion.Pattern.String() != want || outs[0].OriginIndex != 9 || de.Deletion.Pattern.String() != pat {
			rt.Fatalf("deletion %s renamed to %s, want %s", pat, outs[0].Deletion.Pattern, want)
		}
	})
}

func TestRenameFiles(t *testing.T) {
	dir := t.TempDir()
	cols := []tsfile.Column{{Name: "v", Type: tsfile.Int64}}
	a := makeTablet(t, "root.src.a", cols, []row{{1, []any{int64(1)}}})
	b := makeTablet(t, "root.other.b", cols, []row{{2, []any{int64(2)}}})
	defer a.Release()
	defer b.Release()
	del := engine.IndexedDeletion{Deletion: engine.Deletion{Pattern: tsfile.MustPattern("root.src.**"), MinTime: 0, MaxTime: 0}, Index: 11, Origin: 1, OriginIndex: 11}
	fe := writeFile(t, dir, []*tsfile.Tablet{a, b}, []engine.IndexedDeletion{del})
	r, _ := NewRename("root.src", "root.dst")
	outs := run(t, r, fe)
	defer releaseOutputs(outs, fe)
	if len(outs) != 3 || outs[0].Kind != pipe.KindDeletion || outs[0].Deletion.Pattern.String() != "root.dst.**" {
		t.Fatalf("outputs %+v", outs)
	}
	if fe.File.Deletions[0].Pattern.String() != "root.src.**" {
		t.Fatal("the input file's deletion was modified")
	}
	equalPoints(t, "renamed file", outPoints(outs), []point{{"root.dst.a", "v", 1, int64(1)}, {"root.other.b", "v", 2, int64(2)}})

	// a file with nothing to rename passes untouched
	r2, _ := NewRename("root.nothing", "root.dst")
	if outs := run(t, r2, fe); len(outs) != 1 || outs[0] != fe {
		t.Fatalf("untouched file: %+v", outs)
	}
}
