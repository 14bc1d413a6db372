package kafka

import (
	"math"
	"math/rand"
	"strconv"
	"testing"
)

// appendFloat writes exactly what strconv does ('g', shortest), fast path or not.
func TestAppendFloatMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	check := func(f float64, bits int) {
		t.Helper()
		if bits == 32 {
			f = float64(float32(f))
		}
		want := "null"
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			want = strconv.FormatFloat(f, 'g', -1, bits)
		}
		if got := string(appendFloat(nil, f, bits)); got != want {
			t.Fatalf("%v (%d bits): %q, want %q", f, bits, got, want)
		}
	}
	special := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.2, 0.3, 1e-4, 9.99999e-5, 1e-5, 1e6, 999999.9, 999999.99999,
		1e-4 * (1 + 1e-15), math.Nextafter(1e6, 0), math.Nextafter(1e-4, 0), math.Nextafter(1e-4, 1), 123456.789,
		0.000123, 5e-324, math.MaxFloat64, math.SmallestNonzeroFloat32, math.MaxFloat32, math.NaN(), math.Inf(1), math.Inf(-1),
		16777216, 16777217, 8388608.5, 2.5, 0.5, 1.5, 920.3456, 921.34567, 1.0000001, 0.30000000000000004}
	for _, f := range special {
		for _, bits := range []int{32, 64} {
			check(f, bits)
			check(-f, bits)
			check(math.Nextafter(f, math.Inf(1)), bits)
			check(math.Nextafter(f, math.Inf(-1)), bits)
		}
	}
	for i := 0; i < 3_000_000; i++ {
		var f float64
		switch i % 7 {
		case 0: // decimals of few digits, as measurements often are
			f = math.Round(rng.Float64()*math.Pow(10, float64(rng.Intn(9)))) / math.Pow(10, float64(rng.Intn(9)))
		case 1:
			f = rng.Float64() * math.Pow(10, float64(rng.Intn(14)-6))
		case 2: // any bit pattern
			f = math.Float64frombits(rng.Uint64())
		case 3:
			f = float64(math.Float32frombits(rng.Uint32()))
		case 4:
			f = float64(rng.Int63n(1e7)) / 1e4
		case 6: // any float32 of the fast path's range, by its exponent
			f = float64(float32(math.Pow(10, rng.Float64()*10-4)))
			f = float64(math.Float32frombits(math.Float32bits(float32(f)) ^ uint32(rng.Intn(1<<12))))
		case 5: // around the limits of the fast paths
			f = []float64{1e-4, 1e6, 1 << 24, 1e15 / 1e9}[rng.Intn(4)] * (1 + (rng.Float64()-0.5)*1e-6)
		}
		if rng.Intn(2) == 0 {
			f = -f
		}
		check(f, 64)
		check(f, 32)
	}
}

func BenchmarkAppendFloat(b *testing.B) {
	vals := make([]float64, 1024)
	for i := range vals {
		vals[i] = math.Round((20+5*math.Sin(float64(i)/50))*100) / 100
	}
	buf := make([]byte, 0, 64)
	for _, bits := range []int{64, 32} {
		b.Run(strconv.Itoa(bits), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				v := vals[i%len(vals)]
				if bits == 32 {
					v = float64(float32(900 + v))
				}
				buf = appendFloat(buf[:0], v, bits)
			}
		})
		b.Run(strconv.Itoa(bits)+"-strconv", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				v := vals[i%len(vals)]
				if bits == 32 {
					v = float64(float32(900 + v))
				}
				buf = strconv.AppendFloat(buf[:0], v, 'g', -1, bits)
			}
		})
	}
}

// appendInt and appendUint write what strconv does.
func TestAppendIntMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	vals := []int64{0, 1, -1, 9, 10, 99, 100, 101, 1e8 - 1, 1e8, 1e8 + 1, 1e16, math.MaxInt64, math.MinInt64, 1732530000000}
	for i := 0; i < 1_000_000; i++ {
		vals = append(vals, rng.Int63()>>uint(rng.Intn(63)), -rng.Int63()>>uint(rng.Intn(63)))
	}
	for _, v := range vals {
		if got, want := string(appendInt([]byte("x"), v)), "x"+strconv.FormatInt(v, 10); got != want {
			t.Fatalf("%d: %q, want %q", v, got, want)
		}
		u := uint64(v) * 3
		if got, want := string(appendUint(nil, u)), strconv.FormatUint(u, 10); got != want {
			t.Fatalf("%d: %q, want %q", u, got, want)
		}
	}
}
