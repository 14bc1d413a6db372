package tsfile

import (
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// TestDecodeTabletHugeLengths hands DecodeTablet tiny inputs whose length fields claim huge
// sizes: each must fail with ErrBadTablet without allocating memory in proportion to the claim.
func TestDecodeTabletHugeLengths(t *testing.T) {
	uv := func(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
	dev := func() []byte { return uv([]byte{codecV1}, 0) }
	// text column of one row whose offsets claim MaxInt32 bytes of data
	textHuge := uv(uv(dev(), 1), 1)
	textHuge = append(uv(textHuge, 1), 'v', byte(Text))
	textHuge = append(textHuge, make([]byte, 8)...) // time
	textHuge = append(textHuge, 0)                  // no nulls
	textHuge = binary.LittleEndian.AppendUint32(textHuge, 0)
	textHuge = binary.LittleEndian.AppendUint32(textHuge, math.MaxInt32)
	cases := map[string][]byte{
		"device length": uv([]byte{codecV1}, math.MaxUint64),
		"rows":          uv(dev(), math.MaxInt32),
		"rows 2^63":     uv(dev(), 1<<63),
		"columns":       uv(uv(dev(), 0), math.MaxUint64>>1),
		"columns max":   uv(uv(dev(), 0), math.MaxUint64),
		"name length":   uv(uv(uv(dev(), 0), 1), math.MaxUint32),
		"text data":     textHuge,
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			tab, err := DecodeTablet(mem, b)
			runtime.ReadMemStats(&after)
			if err == nil {
				tab.Release()
				t.Fatalf("decoded %d bytes claiming a huge length", len(b))
			}
			if !errors.Is(err, ErrBadTablet) {
				t.Fatalf("error does not wrap ErrBadTablet: %v", err)
			}
			mem.AssertSize(t, 0)
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Fatalf("allocated %d bytes for a %d-byte input", d, len(b))
			}
		})
	}
}
