package kafka

import (
	"context"
	"math"
	"math/rand"
	"reflect"
	"strconv"
	"testing"
	"testing/quick"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// room returns b's contents in a buffer with n bytes of room after them, filled with junk
// (the fast paths write scratch bytes there).
func room(n int) []byte {
	b := make([]byte, 0, n)
	for i := range b[:n] {
		b[:n][i] = '#'
	}
	return b
}

// A column's floats, written with the guessed decimals of the previous value, are what
// strconv writes, whatever the series: with and without room after them.
func TestColumnFloatsMatchStrconv(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for series := 0; series < 20_000; series++ {
		bits := 64
		if series%2 == 1 {
			bits = 32
		}
		c := colEncoder{scale: noScale}
		slow := colEncoder{scale: noScale}
		kind := rng.Intn(7)
		k := rng.Intn(10)
		base := math.Pow(10, float64(rng.Intn(11)-5))
		phase := rng.Float64() * 100
		for i := 0; i < 200; i++ {
			var f float64
			switch kind {
			case 0: // decimals of k digits, sometimes of other counts
				kk := k
				if rng.Intn(10) == 0 {
					kk = rng.Intn(12)
				}
				f = math.Round(rng.Float64()*base*1e3*math.Pow(10, float64(kk))) / math.Pow(10, float64(kk))
			case 1: // a sensor: a slow sine around an offset (as the benchmark's workload)
				f = base*900 + 5*math.Sin(phase+float64(i)/50)
				if bits == 64 {
					f = math.Round(f*math.Pow(10, float64(k%4))) / math.Pow(10, float64(k%4))
				}
			case 2: // any float32 near a power of ten, by its bits
				f = float64(math.Float32frombits(math.Float32bits(float32(base)) ^ uint32(rng.Intn(1<<20))))
			case 3: // around the limits of the fast paths
				f = []float64{1e-4, 1e6, 1 << 24, 1, 10, 0.1, 1 << 20}[rng.Intn(7)] * (1 + (rng.Float64()-0.5)*1e-6)
				if rng.Intn(3) == 0 {
					f = math.Nextafter(f, math.Inf(rng.Intn(2)*2-1))
				}
			case 4: // any bits
				if bits == 32 {
					f = float64(math.Float32frombits(rng.Uint32()))
				} else {
					f = math.Float64frombits(rng.Uint64())
				}
			case 5: // powers of two and their neighbours, whose lower gap is half
				f = math.Ldexp(1, rng.Intn(40)-14)
				if rng.Intn(2) == 0 {
					f = math.Nextafter(f, 0)
				}
				if bits == 32 && rng.Intn(2) == 0 {
					f = float64(math.Nextafter32(float32(f), float32(math.Inf(1))))
				}
			case 6: // specials among ordinary values
				f = []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), 21.5, 921.25, 1e-5, 1e7}[rng.Intn(8)]
			}
			if rng.Intn(8) == 0 {
				f = -f
			}
			if bits == 32 {
				f = float64(float32(f))
			}
			want := "null"
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				want = strconv.FormatFloat(f, 'g', -1, bits)
			}
			var got string
			if bits == 32 {
				got = string(c.appendF32(room(64), float32(f)))
			} else {
				got = string(c.appendF64(room(64), f))
			}
			if got != want {
				t.Fatalf("series %d kind %d value %d: %v (%d bits, scale %d): %q, want %q", series, kind, i, f, bits, c.scale, got, want)
			}
			if got := string(slow.appendFloatCol(nil, f, bits)); got != want {
				t.Fatalf("series %d kind %d value %d, no room: %v (%d bits): %q, want %q", series, kind, i, f, bits, got, want)
			}
		}
	}
}

// scaled32 and scaled64 agree with strconv at every scale they accept.
func TestScaledMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for i := 0; i < 2_000_000; i++ {
		k := rng.Intn(13)
		f32 := float32(math.Pow(10, rng.Float64()*11-5))
		if rng.Intn(2) == 0 {
			f32 = float32(math.Round(float64(f32)*math.Pow(10, float64(k%8))) / math.Pow(10, float64(k%8)))
		}
		if d, ok := scaled32(f32, k); ok {
			if got, want := string(appendScaled(nil, false, d)), strconv.FormatFloat(float64(f32), 'g', -1, 32); got != want {
				t.Fatalf("scaled32(%v, %d): %q, want %q", f32, k, got, want)
			}
		}
		f64 := math.Pow(10, rng.Float64()*11-5)
		if rng.Intn(2) == 0 {
			f64 = math.Round(f64*math.Pow(10, float64(k))) / math.Pow(10, float64(k))
		}
		if d, ok := scaled64(f64, k); ok {
			if got, want := string(appendScaled(nil, false, d)), strconv.FormatFloat(f64, 'g', -1, 64); got != want {
				t.Fatalf("scaled64(%v, %d): %q, want %q", f64, k, got, want)
			}
		}
	}
}

// appendDecimal writes what appendScaled does.
func TestAppendDecimal(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < 1_000_000; i++ {
		m := uint64(rng.Int63n(1e9)) >> uint(rng.Intn(30))
		n := decimalLen(m)
		d := decimal{m, rng.Intn(n + 2), n}
		neg := rng.Intn(2) == 0
		want := string(appendScaled([]byte("x"), neg, d))
		if got := string(appendDecimal(append(room(32), 'x'), neg, d)); got != want {
			t.Fatalf("%+v: %q, want %q", d, got, want)
		}
		if got := string(appendDecimal([]byte("x"), neg, d)); got != want {
			t.Fatalf("%+v, no room: %q, want %q", d, got, want)
		}
		if out, ok := putDecimal(append(room(32), 'x'), neg, d.m, d.k); ok != (d.m < 1e8 && d.k < d.n) || ok && string(out) != want {
			t.Fatalf("putDecimal %+v: %q %v, want %q", d, out, ok, want)
		}
	}
}

// A column's integers, written by updating the previous one's digits, are what strconv
// writes, whatever the steps.
func TestIntDigitsMatchStrconv(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	for series := 0; series < 20_000; series++ {
		var st intDigits
		v := rng.Int63() >> uint(rng.Intn(64))
		if rng.Intn(5) == 0 {
			v = -v
		}
		if rng.Intn(5) == 0 {
			v = []int64{0, 9, 98, 995, 9990, 99_999, 1732530000000, math.MaxInt64 - 300, math.MinInt64}[rng.Intn(9)]
		}
		step := []int64{0, 1, 1, 2, 7, 10, 100, 1000, 9999, 10000}[rng.Intn(10)]
		for i := 0; i < 300; i++ {
			want := strconv.FormatInt(v, 10)
			b := room(64)
			if i%3 == 2 {
				b = nil
			}
			if got := string(st.appendInt(b, v)); got != want {
				t.Fatalf("series %d value %d: %d: %q, want %q", series, i, v, got, want)
			}
			d := step
			switch rng.Intn(20) {
			case 0:
				d = -rng.Int63n(1000)
			case 1:
				d = rng.Int63n(1 << 20)
			}
			if (d > 0 && v > math.MaxInt64-d) || (d < 0 && v < math.MinInt64-d) {
				d = -d
			}
			v += d
		}
	}
}

// appendUint writes what strconv does, with room after it (the 8-byte store) or not.
func TestAppendUintRoom(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 1_000_000; i++ {
		u := rng.Uint64() >> uint(rng.Intn(64))
		want := "x" + strconv.FormatUint(u, 10)
		if got := string(appendUint(append(room(32), 'x'), u)); got != want {
			t.Fatalf("%d: %q, want %q", u, got, want)
		}
	}
}

// setRecord leaves nothing of what a record held: every field of kgo.Record (those of a
// later version too) is set, then setRecord must give the composite literal.
func TestSetRecord(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	for i := 0; i < 100; i++ {
		var r kgo.Record
		v := reflect.ValueOf(&r).Elem()
		for f := 0; f < v.NumField(); f++ {
			fv := v.Field(f)
			switch {
			case fv.Kind() == reflect.Interface:
				fv.Set(reflect.ValueOf(context.Background()))
				continue
			case fv.Type() == reflect.TypeOf(time.Time{}):
				fv.Set(reflect.ValueOf(time.Now()))
				continue
			case fv.Kind() == reflect.Struct: // unexported fields (RecordAttrs): any bytes but zeros
				for j := range unsafe.Slice((*byte)(fv.Addr().UnsafePointer()), fv.Type().Size()) {
					unsafe.Slice((*byte)(fv.Addr().UnsafePointer()), fv.Type().Size())[j] = byte(1 + rng.Intn(255))
				}
				continue
			}
			x, ok := quick.Value(fv.Type(), rng)
			if !ok {
				t.Fatalf("field %s: no value", v.Type().Field(f).Name)
			}
			fv.Set(x)
		}
		ts := time.UnixMilli(1732530000000 + int64(i))
		hdr := []kgo.RecordHeader{{Key: "k", Value: []byte("v")}}
		setRecord(&r, "topic", []byte("key"), []byte("val"), hdr, ts)
		want := kgo.Record{Topic: "topic", Key: []byte("key"), Value: []byte("val"), Headers: hdr, Timestamp: ts}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("got %+v, want %+v", r, want)
		}
	}
}
