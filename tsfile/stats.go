package tsfile

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
)

// statAcc accumulates the count, min and max of one measurement column over arrays.
type statAcc struct {
	typ        DataType
	count      int64
	bmin, bmax bool
	imin, imax int64
	fmin, fmax float64
	smin, smax string // cloned: they do not point into Arrow buffers
}

// add folds the non-null values of a (an array of the accumulator's type) into the stats.
// Floating values must be finite.
func (s *statAcc) add(a arrow.Array) error {
	n := a.Len()
	valid := n - a.NullN()
	if valid <= 0 {
		return nil
	}
	first := s.count == 0
	s.count += int64(valid)
	var bm []byte
	off := a.Data().Offset()
	if a.NullN() > 0 {
		bm = a.NullBitmapBytes()
	}
	switch s.typ {
	case Boolean:
		c, ok := a.(*array.Boolean)
		if !ok {
			return fmt.Errorf("array %T is not BOOLEAN", a)
		}
		var trues int
		if bm == nil {
			trues = bitutil.CountSetBits(c.Data().Buffers()[1].Bytes(), off, n)
		} else {
			for i := 0; i < n; i++ {
				if bitutil.BitIsSet(bm, off+i) && c.Value(i) {
					trues++
				}
			}
		}
		lo, hi := trues == valid, trues > 0 // min is true only if every value is true
		if first {
			s.bmin, s.bmax = lo, hi
		} else {
			s.bmin, s.bmax = s.bmin && lo, s.bmax || hi
		}
	case Int32:
		c, ok := a.(*array.Int32)
		if !ok {
			return fmt.Errorf("array %T is not INT32", a)
		}
		lo, hi := minMax(c.Int32Values(), bm, off)
		s.mergeInt(int64(lo), int64(hi), first)
	case Int64:
		c, ok := a.(*array.Int64)
		if !ok {
			return fmt.Errorf("array %T is not INT64", a)
		}
		lo, hi := minMax(c.Int64Values(), bm, off)
		s.mergeInt(lo, hi, first)
	case Float:
		c, ok := a.(*array.Float32)
		if !ok {
			return fmt.Errorf("array %T is not FLOAT", a)
		}
		lo, hi, bad := minMaxFloat(c.Float32Values(), bm, off)
		if bad >= 0 {
			return fmt.Errorf("row %d: value %v is not finite", bad, c.Value(bad))
		}
		s.mergeFloat(float64(lo), float64(hi), first)
	case Double:
		c, ok := a.(*array.Float64)
		if !ok {
			return fmt.Errorf("array %T is not DOUBLE", a)
		}
		lo, hi, bad := minMaxFloat(c.Float64Values(), bm, off)
		if bad >= 0 {
			return fmt.Errorf("row %d: value %v is not finite", bad, c.Value(bad))
		}
		s.mergeFloat(lo, hi, first)
	case Text:
		c, ok := a.(*array.String)
		if !ok {
			return fmt.Errorf("array %T is not TEXT", a)
		}
		if bad := firstInvalidUTF8(c, bm, off); bad >= 0 {
			return fmt.Errorf("row %d: TEXT value %q is not valid UTF-8", bad, c.Value(bad))
		}
		var lo, hi string
		set := false
		for i := 0; i < n; i++ {
			if bm != nil && !bitutil.BitIsSet(bm, off+i) {
				continue
			}
			v := c.Value(i)
			if !set {
				lo, hi, set = v, v, true
				continue
			}
			if v < lo {
				lo = v
			} else if v > hi {
				hi = v
			}
		}
		if first || lo < s.smin {
			s.smin = strings.Clone(lo)
		}
		if first || hi > s.smax {
			s.smax = strings.Clone(hi)
		}
	default:
		return fmt.Errorf("unknown type %s", s.typ)
	}
	return nil
}

// firstInvalidUTF8 returns the first valid (non-null) value of c that is not valid UTF-8, or -1.
// Fast path: the values' bytes are valid UTF-8 as a whole and every non-empty value starts a
// rune.
func firstInvalidUTF8(c *array.String, bm []byte, off int) int {
	offs := c.ValueOffsets()
	var vb []byte
	if b := c.Data().Buffers()[2]; b != nil {
		vb = b.Bytes()
	}
	if utf8.Valid(vb[offs[0]:offs[len(offs)-1]]) {
		ok := true
		for i := 0; i+1 < len(offs); i++ {
			if offs[i] < offs[i+1] && !utf8.RuneStart(vb[offs[i]]) {
				ok = false
				break
			}
		}
		if ok {
			return -1
		}
	}
	for i := 0; i < c.Len(); i++ {
		if (bm == nil || bitutil.BitIsSet(bm, off+i)) && !utf8.ValidString(c.Value(i)) {
			return i
		}
	}
	return -1
}

func (s *statAcc) mergeInt(lo, hi int64, first bool) {
	if first || lo < s.imin {
		s.imin = lo
	}
	if first || hi > s.imax {
		s.imax = hi
	}
}

func (s *statAcc) mergeFloat(lo, hi float64, first bool) {
	if first || lo < s.fmin {
		s.fmin = lo
	}
	if first || hi > s.fmax {
		s.fmax = hi
	}
}

// result returns the stats of column name.
func (s *statAcc) result(name string) ColumnStats {
	cs := ColumnStats{Name: name, Type: s.typ, Count: s.count}
	if s.count == 0 {
		return cs
	}
	switch s.typ {
	case Boolean:
		cs.Min, cs.Max = s.bmin, s.bmax
	case Int32, Int64:
		cs.Min, cs.Max = s.imin, s.imax
	case Float, Double:
		cs.Min, cs.Max = s.fmin, s.fmax
	case Text:
		cs.Min, cs.Max = s.smin, s.smax
	}
	return cs
}

// minMax returns the smallest and largest of vals whose validity bit (at off+i of bm) is set;
// bm == nil means all are valid. At least one value must be valid.
func minMax[T int32 | int64](vals []T, bm []byte, off int) (lo, hi T) {
	if bm == nil {
		// two independent lanes: the min/max chains do not wait on each other
		lo0, hi0, lo1, hi1 := vals[0], vals[0], vals[0], vals[0]
		i := 1
		for ; i+1 < len(vals); i += 2 {
			a, b := vals[i], vals[i+1]
			lo0, hi0 = min(lo0, a), max(hi0, a)
			lo1, hi1 = min(lo1, b), max(hi1, b)
		}
		if i < len(vals) {
			lo0, hi0 = min(lo0, vals[i]), max(hi0, vals[i])
		}
		return min(lo0, lo1), max(hi0, hi1)
	}
	set := false
	for i, v := range vals {
		if !bitutil.BitIsSet(bm, off+i) {
			continue
		}
		if !set {
			lo, hi, set = v, v, true
			continue
		}
		lo = min(lo, v)
		hi = max(hi, v)
	}
	return lo, hi
}

// minMaxFloat is minMax for floating values; bad is the index of the first valid value that is
// NaN or infinite, or -1.
func minMaxFloat[T float32 | float64](vals []T, bm []byte, off int) (lo, hi T, bad int) {
	if bm == nil {
		// Branch-free: compare the values as sign-magnitude-corrected integers (same order as
		// the floats, -0 < +0, NaN beyond ±Inf) and check for non-finite values at the end.
		var lo, hi T
		switch vs := any(vals).(type) {
		case []float32:
			l, h := minMaxFloatBits(vs)
			lo, hi = T(l), T(h)
		case []float64:
			l, h := minMaxFloatBits(vs)
			lo, hi = T(l), T(h)
		}
		if lo-lo != 0 || hi-hi != 0 || lo != lo || hi != hi {
			for i, v := range vals {
				if v-v != 0 {
					return 0, 0, i
				}
			}
		}
		return lo, hi, -1
	}
	set := false
	for i, v := range vals {
		if !bitutil.BitIsSet(bm, off+i) {
			continue
		}
		if v-v != 0 { // NaN or ±Inf
			return 0, 0, i
		}
		if !set {
			lo, hi, set = v, v, true
			continue
		}
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi, -1
}

// minMaxFloatBits returns the min and max of vals (not empty), comparing the bits of the
// floats as integers corrected for sign-magnitude: the order of the floats, with -0 < +0 and
// NaN beyond the infinities, so a NaN shows as a NaN min or max.
func minMaxFloatBits[T float32 | float64](vals []T) (T, T) {
	switch vs := any(vals).(type) {
	case []float32:
		lo, hi := minMaxBits32(unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(vs))), len(vs)))
		return T(math.Float32frombits(uint32(lo ^ int32(uint32(lo>>31)>>1)))), T(math.Float32frombits(uint32(hi ^ int32(uint32(hi>>31)>>1))))
	case []float64:
		lo, hi := minMaxBits64(unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(vs))), len(vs)))
		return T(math.Float64frombits(uint64(lo ^ int64(uint64(lo>>63)>>1)))), T(math.Float64frombits(uint64(hi ^ int64(uint64(hi>>63)>>1))))
	}
	panic("unreachable")
}

func minMaxBits64(vals []int64) (int64, int64) {
	k := vals[0] ^ int64(uint64(vals[0]>>63)>>1)
	lo0, hi0, lo1, hi1 := k, k, k, k
	i := 1
	for ; i+1 < len(vals); i += 2 {
		a, b := vals[i], vals[i+1]
		a ^= int64(uint64(a>>63) >> 1)
		b ^= int64(uint64(b>>63) >> 1)
		lo0, hi0 = min(lo0, a), max(hi0, a)
		lo1, hi1 = min(lo1, b), max(hi1, b)
	}
	if i < len(vals) {
		a := vals[i] ^ int64(uint64(vals[i]>>63)>>1)
		lo0, hi0 = min(lo0, a), max(hi0, a)
	}
	return min(lo0, lo1), max(hi0, hi1)
}

func minMaxBits32(vals []int32) (int32, int32) {
	k := vals[0] ^ int32(uint32(vals[0]>>31)>>1)
	lo0, hi0, lo1, hi1 := k, k, k, k
	i := 1
	for ; i+1 < len(vals); i += 2 {
		a, b := vals[i], vals[i+1]
		a ^= int32(uint32(a>>31) >> 1)
		b ^= int32(uint32(b>>31) >> 1)
		lo0, hi0 = min(lo0, a), max(hi0, a)
		lo1, hi1 = min(lo1, b), max(hi1, b)
	}
	if i < len(vals) {
		a := vals[i] ^ int32(uint32(vals[i]>>31)>>1)
		lo0, hi0 = min(lo0, a), max(hi0, a)
	}
	return min(lo0, lo1), max(hi0, hi1)
}
