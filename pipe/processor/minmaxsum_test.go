package processor

import (
	"math"
	"math/rand"
	"testing"
)

// plainMinMaxSum is minMaxSum as the plain loop.
func plainMinMaxSum[T number](vals []T, lo, hi T, sum float64) (T, T, float64) {
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
		sum += float64(v)
	}
	return lo, hi, sum
}

func sameFloat(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
}

// TestMinMaxSumExact: minMaxSum gives exactly the plain loop's minimum, maximum and sum,
// for integers near the limits of exact float64 sums and floats with signed zeros and
// wild magnitudes.
func TestMinMaxSumExact(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for iter := 0; iter < 20000; iter++ {
		n := r.Intn(9)
		ints := make([]int64, n)
		i32s := make([]int32, n)
		fs := make([]float64, n)
		f32s := make([]float32, n)
		scale := []int64{1, 1000, 1 << 40, 1 << 51, 1 << 52, 1<<53 - 1, 1 << 53, 1 << 62}[iter%8]
		for k := range ints {
			ints[k] = r.Int63n(scale) - scale/2
			if r.Intn(5) == 0 {
				ints[k] = []int64{math.MaxInt64, math.MinInt64, 1 << 53, -(1 << 53), 1<<53 + 1}[r.Intn(5)]
			}
			i32s[k] = int32(ints[k])
			fs[k] = (r.Float64() - 0.5) * math.Pow(10, float64(r.Intn(40)-20))
			if r.Intn(6) == 0 {
				fs[k] = []float64{0, math.Copysign(0, -1), math.MaxFloat64, -math.MaxFloat64, 1e-310, math.NaN(), math.Inf(1), math.Inf(-1)}[r.Intn(8)]
			}
			f32s[k] = float32(fs[k])
		}
		sum := []float64{0, 1, -3, 1 << 52, 1<<53 - 2, 1 << 53, 0.5, -1e300}[r.Intn(8)]
		check := func(what string, a1, b1, a2, b2 any, s1, s2 float64) {
			if a1 != a2 || b1 != b2 || !sameFloat(s1, s2) {
				t.Fatalf("iter %d %s: got %v %v %v, want %v %v %v", iter, what, a1, b1, s1, a2, b2, s2)
			}
		}
		if n > 0 {
			lo, hi, s := minMaxSum(ints[1:], ints[0], ints[0], sum, true)
			plo, phi, ps := plainMinMaxSum(ints[1:], ints[0], ints[0], sum)
			check("int64", lo, hi, plo, phi, s, ps)
			lo32, hi32, s32 := minMaxSum(i32s[1:], i32s[0], i32s[0], sum, true)
			plo32, phi32, ps32 := plainMinMaxSum(i32s[1:], i32s[0], i32s[0], sum)
			check("int32", lo32, hi32, plo32, phi32, s32, ps32)
			flo, fhi, fsum := minMaxSum(fs[1:], fs[0], fs[0], sum, false)
			pflo, pfhi, pfs := plainMinMaxSum(fs[1:], fs[0], fs[0], sum)
			if !sameFloat(flo, pflo) || !sameFloat(fhi, pfhi) || !sameFloat(fsum, pfs) {
				t.Fatalf("iter %d float64: got %v %v %v, want %v %v %v", iter, flo, fhi, fsum, pflo, pfhi, pfs)
			}
			glo, ghi, gs := minMaxSum(f32s[1:], f32s[0], f32s[0], sum, false)
			pglo, pghi, pgs := plainMinMaxSum(f32s[1:], f32s[0], f32s[0], sum)
			if math.Float32bits(glo) != math.Float32bits(pglo) || math.Float32bits(ghi) != math.Float32bits(pghi) || !sameFloat(gs, pgs) {
				t.Fatalf("iter %d float32: got %v %v %v, want %v %v %v", iter, glo, ghi, gs, pglo, pghi, pgs)
			}
		}
	}
}

// TestSumRunExact: sumRun gives exactly the plain loop's sum.
func TestSumRunExact(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for iter := 0; iter < 20000; iter++ {
		n := r.Intn(9)
		ints := make([]int64, n)
		i32s := make([]int32, n)
		scale := []int64{1, 1000, 1 << 40, 1 << 51, 1 << 52, 1<<53 - 1, 1 << 53, 1 << 62}[iter%8]
		for k := range ints {
			ints[k] = r.Int63n(scale) - scale/2
			if r.Intn(5) == 0 {
				ints[k] = []int64{math.MaxInt64, math.MinInt64, 1 << 53, -(1 << 53), 1<<53 + 1}[r.Intn(5)]
			}
			i32s[k] = int32(ints[k])
			if r.Intn(5) == 0 {
				i32s[k] = math.MinInt32
			}
		}
		sum := []float64{0, 1, -3, 1 << 52, 1<<53 - 2, 1 << 53, 0.5, -1e300}[r.Intn(8)]
		_, _, want := plainMinMaxSum(ints, 0, 0, sum)
		if got := sumRun(ints, sum, true); !sameFloat(got, want) {
			t.Fatalf("iter %d int64: got %v, want %v", iter, got, want)
		}
		_, _, want = plainMinMaxSum(i32s, 0, 0, sum)
		if got := sumRun(i32s, sum, true); !sameFloat(got, want) {
			t.Fatalf("iter %d int32: got %v, want %v", iter, got, want)
		}
	}
}

// TestIncreasing: increasing agrees with tsfile's Sorted.
func TestIncreasing(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for iter := 0; iter < 20000; iter++ {
		ts := make([]int64, r.Intn(40))
		v := int64(r.Intn(5)) - 2
		for i := range ts {
			v += int64(r.Intn(200)) + 1
			if r.Intn(60) == 0 {
				v -= int64(r.Intn(3))
			}
			ts[i] = v
		}
		if r.Intn(10) == 0 && len(ts) > 1 {
			ts[len(ts)-1] = math.MinInt64
		}
		want := true
		for i := 1; i < len(ts); i++ {
			want = want && ts[i] > ts[i-1]
		}
		if got := increasing(ts); got != want {
			t.Fatalf("increasing(%v) = %v", ts, got)
		}
	}
}
