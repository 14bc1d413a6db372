package wal

import (
	"encoding/binary"
	"os"
	"runtime"
	"testing"
)

// TestRecoverHugeLengthField recovers a segment whose last frame claims the largest length
// (256 MiB of payload) in a few bytes: the torn tail is dropped without allocating memory in
// proportion to the claimed length.
func TestRecoverHugeLengthField(t *testing.T) {
	dir := t.TempDir()
	segs := buildWAL(t, dir, 5, 1<<20)
	path := segs[len(segs)-1].Path
	mutate(t, path, func(b []byte) []byte {
		h := make([]byte, headerSize+16)
		binary.LittleEndian.PutUint32(h, maxLen)
		binary.LittleEndian.PutUint64(h[offIndex:], 6)
		return append(b, h...)
	})
	o, _ := testOpts(t, dir)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	w := mustOpen(t, o)
	var n int
	if err := w.Replay(0, func(Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n != 5 || w.LastIndex() != 5 {
		t.Fatalf("replayed %d entries, LastIndex %d; want 5, 5", n, w.LastIndex())
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 8<<20 {
		t.Fatalf("recovery allocated %d bytes for a %d-byte claim in a tiny file", d, maxLen)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != segs[len(segs)-1].Size {
		t.Fatalf("segment is %d bytes after recovery, want the torn tail dropped (%d)", st.Size(), segs[len(segs)-1].Size)
	}
}
