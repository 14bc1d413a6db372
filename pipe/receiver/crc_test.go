package receiver

import (
	"hash/crc32"
	"math/rand"
	"testing"
)

func TestCRC32CCombine(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range [][2]int{{0, 0}, {0, 5}, {5, 0}, {1, 1}, {3, 4096}, {1 << 20, 7}, {12345, 1<<20 + 3}} {
		a, b := make([]byte, n[0]), make([]byte, n[1])
		rng.Read(a)
		rng.Read(b)
		want := crc32.Update(crc32.Checksum(a, castagnoli), castagnoli, b)
		if got := crc32cCombine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), int64(len(b))); got != want {
			t.Fatalf("lengths %v: combined %08x, want %08x", n, got, want)
		}
	}
}
