package writeback

import (
	"math"
	"testing"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// A deletion written back into another database deletes what it deleted in the source:
// `**` right after root stands for the database node and zero or more nodes after it, so
// root.**.d1 covers root.src.d1 (renamed root.copy.d1) as well as root.src.x.d1.
func TestRenamedDeletionDeletesWhatTheSourceDeleted(t *testing.T) {
	devices := []string{"root.src", "root.src.d1", "root.src.x.d1", "root.src.x.y.d1", "root.src.d2", "root.src.x.d2"}
	for _, pat := range []string{"root.**.d1", "root.**.v", "root.**", "root.*.d1", "root.src.**", "root.src.*", "root.src.**.d1", "root.src.d1", "root.src.d1.v", "root.*.**.d1", "root.src", "root.*", "root"} {
		t.Run(pat, func(t *testing.T) {
			src, dst := openRegion(t, 1), openRegion(t, 2)
			a := &Applier{Target: dst, DB: "root.copy", Tmp: t.TempDir()}
			for _, d := range devices {
				b := tsfile.NewTabletBuilder(nil, d, []tsfile.Column{{Name: "v", Type: tsfile.Int64}})
				for i := int64(0); i < 4; i++ {
					_ = b.AppendRow(i, i)
				}
				tb, _ := b.Build()
				b.Release()
				idx, err := src.Write(tb)
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Apply(&pipe.Event{Kind: pipe.KindTablet, Origin: 1, OriginIndex: idx, Tablet: tb}); err != nil {
					t.Fatal(err)
				}
				tb.Release()
			}
			p := tsfile.MustPattern(pat)
			idx, err := src.Delete(p, math.MinInt64, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Apply(&pipe.Event{Kind: pipe.KindDeletion, Origin: 1, OriginIndex: idx,
				Deletion: &engine.Deletion{Pattern: p, MinTime: math.MinInt64, MaxTime: math.MaxInt64}}); err != nil {
				t.Fatal(err)
			}
			ds, _ := src.Digest()
			dd, _ := dst.Digest()
			if ds != dd {
				t.Fatalf("after deleting %s: source %+v, copy %+v", pat, ds, dd)
			}
		})
	}
}
