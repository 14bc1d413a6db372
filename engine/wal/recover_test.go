package wal

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// buildWAL writes entries 1..n (segment size segSize) and returns the
// segments, closed.
func buildWAL(t *testing.T, dir string, n uint64, segSize int64) []SegmentInfo {
	t.Helper()
	o, _ := testOpts(t, dir)
	o.SegmentSize = segSize
	w := mustOpen(t, o)
	appendRange(t, w, 1, n)
	segs := w.Segments()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return segs
}

// frameOffsets returns the offset of every frame in a segment file.
func frameOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := 0; off < len(b); off += frameLen(b[off:]) {
		offs = append(offs, int64(off))
	}
	return offs
}

func mutate(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverTornTail(t *testing.T) {
	const n = 30
	for _, tc := range []struct {
		name string
		last uint64 // expected LastIndex after recovery
		fn   func(b []byte, offs []int64) []byte
	}{
		{"partial header", n - 1, func(b []byte, o []int64) []byte { return b[:o[len(o)-1]+10] }},
		{"partial length field", n - 1, func(b []byte, o []int64) []byte { return b[:o[len(o)-1]+2] }},
		{"partial payload", n - 1, func(b []byte, o []int64) []byte { return b[:len(b)-3] }},
		{"length past EOF", n, func(b []byte, o []int64) []byte {
			f := Entry{Index: n + 1, Payload: make([]byte, 100)}
			return append(b, appendFrame(nil, &f)[:60]...)
		}},
		{"crc of final frame", n - 1, func(b []byte, o []int64) []byte { b[len(b)-1] ^= 0xff; return b }},
		{"zeros", n, func(b []byte, o []int64) []byte { return append(b, make([]byte, 4096)...) }},
		{"zeros over the last frame", n - 1, func(b []byte, o []int64) []byte {
			clear(b[o[len(o)-1]+5:])
			return append(b, make([]byte, 100)...)
		}},
		{"stale old frame", n, func(b []byte, o []int64) []byte {
			// An old, CRC-valid frame left behind by a previous file.
			f := entry(3)
			return append(b, appendFrame(nil, &f)...)
		}},
		{"garbage", n, func(b []byte, o []int64) []byte {
			return append(b, []byte("this is not a frame at all, just some junk bytes..")...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			segs := buildWAL(t, dir, n, 0)
			path := segs[len(segs)-1].Path
			offs := frameOffsets(t, path)
			var before int
			mutate(t, path, func(b []byte) []byte { before = len(b); return tc.fn(b, offs) })
			fi, _ := os.Stat(path)
			o, lb := testOpts(t, dir)
			w := mustOpen(t, o)
			if w.LastIndex() != tc.last || w.DurableIndex() != tc.last {
				t.Fatalf("LastIndex %d DurableIndex %d, want %d", w.LastIndex(), w.DurableIndex(), tc.last)
			}
			log := lb.String()
			wantOff := fmt.Sprintf("offset=%d", min(int64(before), offs[len(offs)-1]))
			if tc.last == n {
				wantOff = fmt.Sprintf("offset=%d", before)
			}
			wantDropped := fmt.Sprintf("dropped_bytes=%d", fi.Size()-w.Segments()[0].Size)
			for _, want := range []string{"truncating torn tail", path, wantOff, wantDropped} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q: %s", want, log)
				}
			}
			checkEntries(t, replayAll(t, w, 1), 1, tc.last)
			// The log goes on, and reopens clean.
			appendRange(t, w, tc.last+1, tc.last+5)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			o, lb = testOpts(t, dir)
			w = mustOpen(t, o)
			defer w.Close()
			checkEntries(t, replayAll(t, w, 1), 1, tc.last+5)
			if lb.String() != "" {
				t.Errorf("second open logged: %s", lb)
			}
		})
	}
}

func TestRecoverCorruptMiddle(t *testing.T) {
	const n = 30
	dir := t.TempDir()
	segs := buildWAL(t, dir, n, 0)
	path := segs[0].Path
	offs := frameOffsets(t, path)
	bad := offs[10] + headerSize + 2 // payload byte of entry 11
	mutate(t, path, func(b []byte) []byte { b[bad] ^= 0x55; return b })

	o, _ := testOpts(t, dir)
	_, err := Open(o)
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
	if ce.Path != path || ce.Offset != offs[10] || !strings.Contains(ce.Check, "crc mismatch") {
		t.Fatalf("error %+v (want offset %d)", ce, offs[10])
	}
	for _, want := range []string{path, fmt.Sprint(offs[10]), "crc"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	// The refused open changed nothing.
	if fi, _ := os.Stat(path); fi.Size() != segs[0].Size {
		t.Fatalf("file changed to %d bytes", fi.Size())
	}

	o, lb := testOpts(t, dir)
	o.Repair = true
	w := mustOpen(t, o)
	if w.LastIndex() != 10 {
		t.Fatalf("LastIndex %d", w.LastIndex())
	}
	if !strings.Contains(lb.String(), "repair") || !strings.Contains(lb.String(), fmt.Sprintf("dropped_bytes=%d", segs[0].Size-offs[10])) {
		t.Errorf("log: %s", lb)
	}
	checkEntries(t, replayAll(t, w, 1), 1, 10)
	appendRange(t, w, 11, 12)
	w.Close()
	o, _ = testOpts(t, dir)
	w = mustOpen(t, o)
	defer w.Close()
	checkEntries(t, replayAll(t, w, 1), 1, 12)
}

func TestRecoverDamagedEarlierSegment(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check string
		fn    func(b []byte, offs []int64) []byte
	}{
		{"truncated", "truncated frame", func(b []byte, o []int64) []byte { return b[:len(b)-5] }},
		{"crc", "crc mismatch", func(b []byte, o []int64) []byte { b[o[2]+headerSize] ^= 1; return b }},
		{"length", "length out of range", func(b []byte, o []int64) []byte { b[o[2]+3] = 0xff; return b }},
		{"index", "index order", func(b []byte, o []int64) []byte {
			// A valid frame whose index belongs to the next segment.
			f := entry(10_000)
			return append(b, appendFrame(nil, &f)...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			segs := buildWAL(t, dir, 100, 1000)
			if len(segs) < 4 {
				t.Fatalf("%d segments", len(segs))
			}
			path := segs[1].Path
			offs := frameOffsets(t, path)
			mutate(t, path, func(b []byte) []byte { return tc.fn(b, offs) })
			o, _ := testOpts(t, dir)
			_, err := Open(o)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(ce.Check, tc.check) {
				t.Fatalf("Open = %v", err)
			}
			o, lb := testOpts(t, dir)
			o.Repair = true
			w := mustOpen(t, o)
			defer w.Close()
			last := w.LastIndex()
			if last < segs[0].LastIndex || last > segs[1].LastIndex {
				t.Fatalf("LastIndex %d", last)
			}
			checkEntries(t, replayAll(t, w, 1), 1, last)
			got := w.Segments()
			if len(got) != 2 || got[1].Path != path || got[1].Size != ce.Offset {
				t.Fatalf("segments after repair %+v", got)
			}
			for _, s := range segs[2:] {
				if _, err := os.Stat(s.Path); !os.IsNotExist(err) {
					t.Fatalf("%s not removed", s.Path)
				}
				if !strings.Contains(lb.String(), s.Path) {
					t.Errorf("removal of %s not logged", s.Path)
				}
			}
		})
	}
}

func TestRecoverEmptyAndForeignFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"wal-1.log", "notes.txt", "wal-00000000000000000000.log"} {
		if err := os.WriteFile(dir+"/"+name, []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An empty (e.g. just rolled) last segment named 51.
	segs := buildWAL(t, dir, 50, 0)
	if err := os.WriteFile(fmt.Sprintf("%s/wal-%020d.log", dir, 51), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	o, lb := testOpts(t, dir)
	w := mustOpen(t, o)
	defer w.Close()
	if w.LastIndex() != 50 || len(w.Segments()) != 2 || lb.String() != "" {
		t.Fatalf("LastIndex %d segments %+v log %s", w.LastIndex(), w.Segments(), lb)
	}
	appendRange(t, w, 51, 52)
	if got := w.Segments(); got[0] != segs[0] || got[1].FirstIndex != 51 || got[1].LastIndex != 52 {
		t.Fatalf("segments %+v", got)
	}
}

func TestRecoverRepairWithoutDamageIsNoop(t *testing.T) {
	dir := t.TempDir()
	segs := buildWAL(t, dir, 40, 500)
	o, lb := testOpts(t, dir)
	o.Repair = true
	w := mustOpen(t, o)
	defer w.Close()
	if got := w.Segments(); len(got) != len(segs) || lb.String() != "" {
		t.Fatalf("segments %d vs %d, log %s", len(got), len(segs), lb)
	}
	checkEntries(t, replayAll(t, w, 1), 1, 40)
}
