package processor

import (
	"math"
	"sort"

	"github.com/weir-dev/weir/tsfile"
)

// epochGuard keeps a stateful processor from counting rows twice when the hybrid source
// ships an epoch partly as tablets and then whole as its sealed file (the file holds the
// rows of the tablets already shipped). It remembers, for the epoch of the last tablets
// seen, each device's time range; rows of that epoch's file inside the range are left out.
// The range is exact for writes in time order per device; a write of an older time that
// arrives after the switch to files, within the same epoch, is left out too.
type epochGuard struct {
	Epoch  uint64              `json:"epoch,omitempty"`
	Ranges map[string][2]int64 `json:"ranges,omitempty"` // device → [min, max] time
}

// sawRange records the times [lo, hi] of a tablet of device of epoch (0: unknown, not
// recorded).
func (g *epochGuard) sawRange(epoch uint64, device string, lo, hi int64) {
	if epoch == 0 {
		return
	}
	if epoch != g.Epoch {
		g.Epoch, g.Ranges = epoch, map[string][2]int64{}
	}
	if g.Ranges == nil {
		g.Ranges = map[string][2]int64{}
	}
	r, ok := g.Ranges[device]
	if !ok {
		r = [2]int64{math.MaxInt64, math.MinInt64}
	}
	g.Ranges[device] = [2]int64{min(r[0], lo), max(r[1], hi)}
}

// unseen returns the parts of a file's tablet t (rows in time order) not covered by the
// tablets of the same epoch: t itself (retained) when nothing was, else up to two slices.
// The caller releases them.
func (g *epochGuard) unseen(epoch uint64, t *tsfile.Tablet) []*tsfile.Tablet {
	r, ok := g.Ranges[t.Device]
	if epoch == 0 || epoch != g.Epoch || !ok {
		t.Retain()
		return []*tsfile.Tablet{tsfile.NewTablet(t.Device, t.Rec)}
	}
	ts := t.Times()
	lo := sort.Search(len(ts), func(i int) bool { return ts[i] >= r[0] })
	hi := sort.Search(len(ts), func(i int) bool { return ts[i] > r[1] })
	var out []*tsfile.Tablet
	if lo > 0 {
		out = append(out, tsfile.NewTablet(t.Device, t.Rec.NewSlice(0, int64(lo))))
	}
	if hi < len(ts) {
		out = append(out, tsfile.NewTablet(t.Device, t.Rec.NewSlice(int64(hi), int64(len(ts)))))
	}
	return out
}

// fileDone forgets the epochs up to that of a file just handled: no tablet of them follows.
func (g *epochGuard) fileDone(epoch uint64) {
	if epoch >= g.Epoch {
		g.Epoch, g.Ranges = 0, nil
	}
}
