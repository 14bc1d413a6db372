package processor

import (
	"math"
	"math/rand"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/weir-dev/weir/tsfile"
)

// sdtStraight is sdtNum written plainly (a division per slope, the state through
// locals): sdtNum's fast loop must keep exactly the same points and state.
func (d *Downsample) sdtStraight(s *dsSeries, col *column, times []int64, xs []float64, i0 int, oc *outColumn) {
	nulls := col.arr.NullN() > 0
	dev, minGap, maxGap := d.cfg.Deviation, d.cfg.MinGap, d.cfg.MaxGap
	// the state in locals for the loop, written back at the end
	hasKept, keptT, keptX := s.HasKept, s.Kept.T, s.KeptNum
	up, down, doors := float64(s.Up), float64(s.Down), s.Doors
	statePend := s.HasPend // the candidate is s.Pend, from an earlier tablet
	pendRow := -1          // the candidate is this row
	started, last := s.Started, s.Last
	for i := i0; i < len(times); i++ {
		if nulls && col.arr.IsNull(i) {
			continue
		}
		t, x := times[i], xs[i]
		started, last = true, t
		if !hasKept {
			oc.rows = append(oc.rows, int32(i))
			hasKept, keptT, keptX, statePend, pendRow, doors = true, t, x, false, -1, false
			continue
		}
		if (pendRow >= 0 || statePend) && doors {
			slope := (x - keptX) / float64(t-keptT)
			pt := s.Pend.T
			if pendRow >= 0 {
				pt = times[pendRow]
			}
			if (slope < up || slope > down) && pt-keptT >= minGap {
				// the candidate ends the segment: archive it
				if pendRow >= 0 {
					oc.rows = append(oc.rows, int32(pendRow))
					keptX = xs[pendRow]
				} else {
					oc.add(s.Pend.T, s.Pend.V)
					keptX = s.Pend.V.Num(s.Type)
				}
				keptT, statePend, pendRow, doors = pt, false, -1, false
			}
		}
		if maxGap > 0 && t-keptT >= maxGap {
			oc.rows = append(oc.rows, int32(i))
			keptT, keptX, statePend, pendRow, doors = t, x, false, -1, false
			continue
		}
		// the point is the candidate, and a point after Kept for the next ones
		pendRow, statePend = i, false
		inv := 1 / float64(t-keptT)
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

// TestSDTFastPathExact feeds random series (steps, sines, wild magnitudes, nulls, slopes
// on the bounds) in pieces of several sizes to sdtNum and to sdtStraight, with and without
// min- and max-interval: the kept rows and the state must be the same.
func TestSDTFastPathExact(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for iter := 0; iter < 4000; iter++ {
		n := 2000
		b := array.NewFloat64Builder(memory.DefaultAllocator)
		times := make([]int64, n)
		tt := int64(r.Intn(1000))
		x := 0.0
		for i := range times {
			tt += int64(1 + r.Intn(5))
			times[i] = tt
			switch iter % 4 {
			case 0:
				x += float64(r.Intn(9)-4) / 4
			case 1:
				x = math.Sin(float64(tt)/7) * 3
			case 2:
				x = float64(int(tt/50) % 4)
			default:
				x += (r.Float64() - 0.5) * math.Pow(10, float64(r.Intn(20)-10))
			}
			if iter%5 == 0 && r.Intn(7) == 0 {
				b.AppendNull()
			} else {
				b.Append(x)
			}
		}
		arr := b.NewFloat64Array()
		col, _ := newColumn(arr)
		dev := []float64{0, 0.25, 0.5, 1, 1e-9, 3, 1e-300}[iter%7]
		d := &Downsample{cfg: DownsampleConfig{Method: MethodSDT, Deviation: dev, MinGap: int64(iter % 3), MaxGap: int64([]int{0, 0, 50, 7}[iter%4])}}
		s1, s2 := &dsSeries{Type: tsfile.Double}, &dsSeries{Type: tsfile.Double}
		step := []int{500, 1, 3, 2000}[iter%4]
		for lo := 0; lo < n; lo += step {
			sub := times[:min(lo+step, n)]
			var o1, o2 outColumn
			xs := col.floats(nil)
			d.sdtStraight(s1, &col, sub, xs, lo, &o1)
			sdtNum(d, s2, &col, sub, col.f64, lo, &o2)
			if len(o1.rows) != len(o2.rows) || len(o1.nums) != len(o2.nums) || len(o1.pts) != len(o2.pts) {
				t.Fatalf("iter %d: rows %d vs %d", iter, len(o1.rows), len(o2.rows))
			}
			for k := range o1.rows {
				if o1.rows[k] != o2.rows[k] {
					t.Fatalf("iter %d: row %d differs", iter, k)
				}
			}
			for k := range o1.pts {
				if o1.pts[k] != o2.pts[k] {
					t.Fatalf("iter %d: pt %d differs", iter, k)
				}
			}
			if *s1 != *s2 {
				t.Fatalf("iter %d: state %+v vs %+v", iter, *s1, *s2)
			}
		}
		arr.Release()
		b.Release()
	}
}
