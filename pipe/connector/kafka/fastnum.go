package kafka

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
)

// Fast paths for the numbers of a column, which are alike from row to row: the number of
// decimals of the previous float (a guess, checked exactly: a miss falls back to
// appendFloat), and the digits of the previous integer (updated in place when the change
// does not carry past its last four digits). Both write exactly what strconv does.

// noScale marks a float column without a guessed number of decimals.
const noScale = -1

// scaled64 returns the shortest decimal of |f| if it has at most k decimals (0 ≤ k ≤ 9)
// and f is in [1e-4, 1e6), the range that 'g' writes without an exponent.
//
// r = |f|·10ᵏ rounded reads back as f exactly when r/10ᵏ (a correctly rounded division of
// exact values, r < 2⁵³) is f. The decimals that read back as f lie in an interval narrower
// than an ulp of f (below 2⁻³³ < 10⁻⁹ here), which therefore holds no other multiple of
// 10⁻ᵏ; a decimal of no more significant digits than r/10ᵏ (without its trailing zeros) is
// such a multiple (or, at a lower leading digit, further than an ulp away), so r/10ᵏ is
// the shortest: strconv's.
func scaled64(f float64, k int) (d decimal, ok bool) {
	fb := math.Float64bits(f) &^ (1 << 63)
	a := math.Float64frombits(fb)
	if !(a >= 1e-4 && a < 1e6) || uint(k) > 9 {
		return d, false
	}
	s := pow10[k]
	r := int64(a*s + 0.5)
	// r/10ᵏ reads back as a when |a·10ᵏ - r| < 10ᵏ·ulp(a)/2: e is that difference rounded
	// once (FMA), h the bound (exact: a power of two times 10ᵏ; halved again for a power of
	// two, whose lower neighbour is nearer). |e| < h implies the exact difference is below h.
	h := math.Float64frombits(fb&(0x7ff<<52)-53<<52) * s
	if fb&(1<<52-1) == 0 {
		h /= 2
	}
	if e := math.FMA(a, s, -float64(r)); r == 0 || uint64(r) >= pow10u[6+k] || !(e < h && -e < h) {
		return d, false
	}
	m := uint64(r)
	for k > 0 && m%10 == 0 {
		m, k = m/10, k-1
	}
	return decimal{m, k, decimalLen(m)}, true
}

// scaled32 is the shortest decimal of a float32 |f| in [1e-4, 1e6), where k is such that
// f's rounding interval (the reals that read back as f) scaled by 10ᵏ, (lo, hi), is at
// least 1 and less than 10 wide (ok is false otherwise); the bounds and |f|·10ᵏ are exact
// in a float64 for k ≤ 11. A decimal of fewer than k decimals that reads back as f is then
// a multiple of 10 in (lo, hi), of which there is at most one: the shortest if there is
// one. Else (lo, hi) holds the integer nearest |f|·10ᵏ, strconv's choice of the decimals of
// k digits. Bounds that are integers and ties are left to strconv (ok false).
func scaled32(f float32, k int) (d decimal, ok bool) {
	fb := math.Float32bits(f) &^ (1 << 31)
	a := math.Float32frombits(fb)
	if !(a >= 1e-4 && a < 1e6) || uint(k) > 11 {
		return d, false
	}
	af := float64(a)
	hiHalf := math.Float64frombits(uint64(int(fb>>23)-151+1023) << 52) // half the gap to the next float32
	loHalf := hiHalf                                                   // and to the previous one
	if fb&(1<<23-1) == 0 {
		loHalf /= 2
	}
	s := pow10[k]
	lo, hi := (af-loHalf)*s, (af+hiHalf)*s
	ilo, ihi := int64(lo), int64(hi) // floors: positive
	if w := hi - lo; w < 1 || w >= 10 || float64(ilo) == lo || float64(ihi) == hi || uint64(ihi) >= pow10u[6+k] {
		return d, false
	}
	if ilo/10 != ihi/10 { // a multiple of 10 in (lo, hi): ihi rounded down to one
		m := uint64(ihi / 10)
		k--
		for k > 0 && m%10 == 0 {
			m, k = m/10, k-1
		}
		return decimal{m, k, decimalLen(m)}, m != 0
	}
	x := af * s
	r := int64(x + 0.5)
	if xr := float64(r); xr <= lo || xr >= hi || xr-x == 0.5 {
		return d, false
	}
	return decimal{uint64(r), k, decimalLen(uint64(r))}, true
}

// scale32 returns the k for scaled32 of f (noScale if none).
func scale32(f float32) int {
	fb := math.Float32bits(f) &^ (1 << 31)
	if e := int(fb >> 23); e == 0 || e == 0xff {
		return noScale
	}
	w := 2 * math.Float64frombits(uint64(int(fb>>23)-151+1023)<<52) // an ulp, bounds the interval's width
	for k := 0; k <= 11; k++ {
		if w*pow10[k] >= 1 {
			return k
		}
	}
	return noScale
}

// appendFloatCol is appendFloat for a value of column c, guessing its decimals from the
// previous value's.
func (c *colEncoder) appendFloatCol(b []byte, f float64, bits int) []byte {
	var d decimal
	var ok bool
	if c.scale != noScale {
		if bits == 32 {
			d, ok = scaled32(float32(f), c.scale)
		} else {
			d, ok = scaled64(f, c.scale)
		}
		if ok {
			return appendDecimal(b, f < 0, d)
		}
	}
	if bits == 32 {
		d, ok = shortDecimal32(float32(f))
	} else {
		d, ok = shortDecimal64(f)
	}
	if bits == 32 {
		c.scale = scale32(float32(f))
	} else if ok {
		c.scale = d.k
	} else {
		c.scale = noScale
	}
	if !ok {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, f, 'g', -1, bits)
	}
	return appendScaled(b, f < 0, d)
}

// intDigits holds the decimal text of the previous integer of a column, to write the
// next one by updating its last four digits (two, below 1000) when the higher ones stay.
type intDigits struct {
	prev int64
	low  uint32   // prev % lim
	lim  uint32   // 10000, or 100 for prev < 1000
	n    int      // digits of prev; 0: none kept (prev < 10, or none yet)
	txt  [24]byte // prev's digits, txt[:n]
}

func (st *intDigits) reset() { st.n = 0 }

// appendInt is appendInt(b, v). b must have room for 24 more bytes.
func (st *intDigits) appendInt(b []byte, v int64) []byte {
	if st.n > 0 && v >= st.prev {
		if d := uint64(v - st.prev); d < uint64(st.lim) {
			if lo := st.low + uint32(d); lo < st.lim {
				n := st.n
				l := len(b)
				if cap(b)-l < len(st.txt) {
					b = slices.Grow(b, len(st.txt))
				}
				// the previous text first, then its last digits: stores to the text read back
				// right away would stall
				o := b[l : l+24]
				*(*[16]byte)(o[:16]) = *(*[16]byte)(st.txt[:16])
				*(*[8]byte)(o[16:24]) = *(*[8]byte)(st.txt[16:24])
				t := &st.txt
				if st.lim == 10000 {
					w := uint32(pairWords[uint8(lo/100)]) | uint32(pairWords[uint8(lo%100)])<<16
					binary.LittleEndian.PutUint32(o[n-4:n], w)
					binary.LittleEndian.PutUint32(t[n-4:n], w)
				} else {
					w := pairWords[uint8(lo)]
					binary.LittleEndian.PutUint16(o[n-2:n], w)
					binary.LittleEndian.PutUint16(t[n-2:n], w)
				}
				st.prev, st.low = v, lo
				return b[:l+n]
			}
		}
	}
	l := len(b)
	b = appendInt(b, v)
	switch {
	case v >= 1000:
		st.n = copy(st.txt[:], b[l:])
		st.prev, st.low, st.lim = v, uint32(v%10000), 10000
	case v >= 10:
		st.n = copy(st.txt[:], b[l:])
		st.prev, st.low, st.lim = v, uint32(v%100), 100
	default:
		st.n = 0
	}
	return b
}

// appendDecimal is appendScaled(b, neg, d), faster for d of at most 8 digits of which at
// least one before the point when b has room for 10 more bytes: the digits are made in a
// machine word and stored at once (bytes past the number, within the room, are scratch).
func appendDecimal(b []byte, neg bool, d decimal) []byte {
	l := len(b)
	if d.m >= 1e8 || d.k >= d.n || cap(b)-l < 10 {
		return appendScaled(b, neg, d)
	}
	if neg {
		b = append(b, '-')
		l++
	}
	n, ip := uint(d.n), uint(d.n-d.k) // digits, and before the point
	v := digitWord(uint32(d.m)) >> (8 * (8 - n))
	out := b[l : l+9]
	if d.k == 0 {
		binary.LittleEndian.PutUint64(out, v)
		return b[:l+d.n]
	}
	mask := uint64(1)<<(8*ip) - 1
	binary.LittleEndian.PutUint64(out, v&mask|'.'<<(8*ip)|(v&^mask)<<8)
	out[n] = byte(v >> (8 * (n - 1))) // the last digit, shifted out of the word when n is 8
	return b[:l+d.n+1]
}

// pairWords[i] is the two decimal digits of i as a little-endian uint16.
var pairWords = func() (t [256]uint16) { // indexed by a byte: no bounds check
	for i := range 100 {
		t[i] = uint16('0'+i/10) | uint16('0'+i%10)<<8
	}
	return t
}()

// digitWord returns the 8 decimal digits of u < 1e8 with leading zeros as the bytes of a
// little-endian word (the first digit in the lowest byte).
func digitWord(u uint32) uint64 {
	hi := u / 10000
	lo := u - hi*10000
	h1 := hi / 100
	l1 := lo / 100
	return uint64(pairWords[uint8(h1)]) | uint64(pairWords[uint8(hi-h1*100)])<<16 |
		uint64(pairWords[uint8(l1)])<<32 | uint64(pairWords[uint8(lo-l1*100)])<<48
}

// appendF64 is appendFloatCol(b, f, 64) with the fast path of scaled64 and appendDecimal
// inlined (one call per value, no decimal passed around).
func (c *colEncoder) appendF64(b []byte, f float64) []byte {
	if k := c.scale; uint(k) <= 9 {
		fb := math.Float64bits(f)
		ab := fb &^ (1 << 63)
		a := math.Float64frombits(ab)
		if a >= 1e-4 && a < 1e6 {
			s := pow10[k]
			r := int64(a*s + 0.5)
			h := math.Float64frombits(ab&(0x7ff<<52)-53<<52) * s // see scaled64
			if ab&(1<<52-1) == 0 {
				h /= 2
			}
			if e := math.FMA(a, s, -float64(r)); r != 0 && uint64(r) < pow10u[6+k] && e < h && -e < h {
				m, kk := uint64(r), k
				for kk > 0 && m%10 == 0 {
					m, kk = m/10, kk-1
				}
				if out, ok := putDecimal(b, fb>>63 != 0, m, kk); ok {
					return out
				}
			}
		}
	}
	return c.appendFloatCol(b, f, 64)
}

// appendF32 is appendFloatCol(b, float64(f), 32) with the fast path of scaled32 and
// appendDecimal inlined, its two cases computed side by side and one picked.
func (c *colEncoder) appendF32(b []byte, f float32) []byte {
	if k := c.scale; uint(k) <= 11 {
		fb := math.Float32bits(f)
		ab := fb &^ (1 << 31)
		a := math.Float32frombits(ab)
		if a >= 1e-4 && a < 1e6 {
			af := float64(a)
			hiHalf := math.Float64frombits(uint64(int(ab>>23)-151+1023) << 52) // see scaled32
			loHalf := hiHalf
			if ab&(1<<23-1) == 0 {
				loHalf /= 2
			}
			s := pow10[k]
			lo, hi := (af-loHalf)*s, (af+hiHalf)*s
			ilo, ihi := int64(lo), int64(hi) // floors: positive
			x := af * s
			r := int64(x + 0.5)
			xr := float64(r)
			m, kk := uint64(r), k
			ok := xr > lo && xr < hi && xr-x != 0.5
			if uint64(ilo)/10 != uint64(ihi)/10 { // a multiple of 10 in (lo, hi)
				m, kk, ok = uint64(ihi)/10, k-1, true
			}
			if w := hi - lo; ok && m != 0 && w >= 1 && w < 10 && float64(ilo) != lo && float64(ihi) != hi && uint64(ihi) < pow10u[6+k] {
				for kk > 0 && m%10 == 0 {
					m, kk = m/10, kk-1
				}
				if out, ok := putDecimal(b, fb>>31 != 0, m, kk); ok {
					return out
				}
			}
		}
	}
	return c.appendFloatCol(b, float64(f), 32)
}

// putDecimal is appendDecimal(b, neg, decimal{m, k, decimalLen(m)}) when that takes its
// fast path; ok is false (b unchanged) when it would not.
func putDecimal(b []byte, neg bool, m uint64, k int) (_ []byte, ok bool) {
	n := decimalLen(m)
	l := len(b)
	if m >= 1e8 || k >= n || cap(b)-l < 10 {
		return b, false
	}
	if neg {
		b = b[:l+1]
		b[l] = '-'
		l++
	}
	var v uint64
	if m < 1e4 { // the last four digits only: one step of digit pairs
		hi := uint32(m) / 100
		v = (uint64(pairWords[uint8(hi)]) | uint64(pairWords[uint8(uint32(m)-hi*100)])<<16) >> (8 * uint(4-n))
	} else {
		v = digitWord(uint32(m)) >> (8 * uint(8-n))
	}
	out := b[l : l+9]
	if k == 0 {
		binary.LittleEndian.PutUint64(out, v)
		return b[:l+n], true
	}
	ip := uint(n - k)
	mask := uint64(1)<<(8*ip) - 1
	binary.LittleEndian.PutUint64(out, v&mask|'.'<<(8*ip)|(v&^mask)<<8)
	out[n] = byte(v >> (8 * uint(n-1)))
	return b[:l+n+1], true
}
