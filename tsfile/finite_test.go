package tsfile

import (
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"pgregory.net/rapid"
)

// The branch-free scans agree with math.IsNaN and math.IsInf on any bit pattern.
func TestAnyNonFiniteMatchesMath(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bits64 := rapid.SliceOfN(rapid.OneOf(rapid.Uint64(),
			rapid.SampledFrom([]uint64{math.Float64bits(math.NaN()), math.Float64bits(math.Inf(1)), math.Float64bits(math.Inf(-1)),
				0x7FF0000000000001, 0xFFF8000000000000, 0x7FEFFFFFFFFFFFFF, 0x8000000000000000, 0})), 0, 20).Draw(t, "bits64")
		vs := make([]float64, len(bits64))
		want := false
		for i, b := range bits64 {
			vs[i] = math.Float64frombits(b)
			want = want || math.IsNaN(vs[i]) || math.IsInf(vs[i], 0)
		}
		if got := anyNonFinite64(vs); got != want {
			t.Fatalf("anyNonFinite64(%x) = %v, want %v", bits64, got, want)
		}
		bits32 := rapid.SliceOfN(rapid.OneOf(rapid.Uint32(),
			rapid.SampledFrom([]uint32{math.Float32bits(float32(math.NaN())), math.Float32bits(float32(math.Inf(1))),
				0x7F800001, 0xFF800000, 0x7F7FFFFF, 0x80000000, 0})), 0, 20).Draw(t, "bits32")
		vs32 := make([]float32, len(bits32))
		want = false
		for i, b := range bits32 {
			vs32[i] = math.Float32frombits(b)
			want = want || math.IsNaN(float64(vs32[i])) || math.IsInf(float64(vs32[i]), 0)
		}
		if got := anyNonFinite32(vs32); got != want {
			t.Fatalf("anyNonFinite32(%x) = %v, want %v", bits32, got, want)
		}
	})
}

func BenchmarkAnyNonFinite64(b *testing.B) {
	vs := make([]float64, 1000)
	for i := range vs {
		vs[i] = 20 + 5*math.Sin(float64(i))
	}
	b.SetBytes(int64(8 * len(vs)))
	for b.Loop() {
		if anyNonFinite64(vs) {
			b.Fatal("finite values reported")
		}
	}
}

// A NaN in a null slot is no value and passes; a NaN in a valid one names its row.
func TestCheckFiniteNullSlots(t *testing.T) {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues([]float64{1, math.NaN(), 3}, []bool{true, false, true})
	col := b.NewArray()
	defer col.Release()
	if err := checkFinite(col); err != nil {
		t.Fatalf("NaN in a null slot: %v", err)
	}
	b.AppendValues([]float64{1, 2, math.Inf(-1)}, nil)
	col2 := b.NewArray()
	defer col2.Release()
	if err := checkFinite(col2); err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Fatalf("Inf in row 2: got %v", err)
	}
}
