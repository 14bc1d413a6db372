package wal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/weir-dev/weir/engine/vfs"
)

// noSyncFS skips fsyncs, to keep fuzzing fast (durability is not what the
// fuzz test checks).
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error     { return nil }
func (noSyncFile) SyncData() error { return nil }

func (fs noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := fs.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}
func (fs noSyncFS) Open(name string) (vfs.File, error) { return fs.OpenFile(name, os.O_RDONLY, 0) }
func (noSyncFS) SyncDir(string) error                  { return nil }

// fuzzSegments lays data out as one segment (wal-1), or two when split cuts
// it (the second named second).
func fuzzSegments(t *testing.T, data []byte, split uint16, second uint64) string {
	dir := t.TempDir()
	write := func(first uint64, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("wal-%020d.log", first)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if int(split) > 0 && int(split) < len(data) && second > 1 {
		write(1, data[:split])
		write(second, data[split:])
	} else {
		write(1, data)
	}
	return dir
}

// checkUsable replays w, appends and closes it, and returns the last index.
func checkUsable(t *testing.T, w *WAL) uint64 {
	t.Helper()
	var prev uint64
	err := w.Replay(0, func(e Entry) error {
		if e.Index <= prev {
			return fmt.Errorf("index %d after %d", e.Index, prev)
		}
		prev = e.Index
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	last := w.LastIndex()
	if prev > last {
		t.Fatalf("replayed %d > LastIndex %d", prev, last)
	}
	if last < ^uint64(0) {
		c, err := w.Append(Entry{Index: last + 1, Payload: []byte("after")})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if err := c.Wait(); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		last++
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return last
}

func FuzzWALRecovery(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.data, s.split, s.second)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, second uint64) {
		dir := fuzzSegments(t, data, split, second)
		o := Options{Dir: dir, Logger: quiet, FS: noSyncFS{vfs.Default}}
		w, err := Open(o)
		if err == nil {
			checkUsable(t, w)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open: %v", err)
		}

		dir = fuzzSegments(t, data, split, second)
		o = Options{Dir: dir, Logger: quiet, Repair: true, FS: noSyncFS{vfs.Default}}
		w, err = Open(o)
		if err != nil {
			t.Fatalf("Open with Repair: %v", err)
		}
		last := checkUsable(t, w)
		// What Repair left is clean.
		o.Repair = false
		w, err = Open(o)
		if err != nil {
			t.Fatalf("reopen after repair: %v", err)
		}
		if w.LastIndex() != last {
			t.Fatalf("reopen: LastIndex %d, want %d", w.LastIndex(), last)
		}
		checkUsable(t, w)
	})
}

type fuzzSeed struct {
	name   string
	data   []byte
	split  uint16
	second uint64
}

// fuzzSeeds are valid logs and typical damage; they are also committed
// under testdata/fuzz/FuzzWALRecovery (regenerate with
// WAL_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds).
func fuzzSeeds() []fuzzSeed {
	var log []byte
	var offs []int
	for i := uint64(1); i <= 6; i++ {
		offs = append(offs, len(log))
		e := Entry{Kind: uint8(i), Origin: 2, Index: i, OriginIndex: i + 100, Payload: []byte(fmt.Sprintf("p%d", i))}
		log = appendFrame(log, &e)
	}
	cp := func(b []byte) []byte { return append([]byte(nil), b...) }
	flip := func(b []byte, at int) []byte { b = cp(b); b[at] ^= 0x40; return b }
	return []fuzzSeed{
		{"empty", nil, 0, 0},
		{"valid", cp(log), 0, 0},
		{"two-segments", cp(log), uint16(offs[3]), 4},
		{"torn-tail", cp(log[:len(log)-4]), 0, 0},
		{"zero-tail", append(cp(log), make([]byte, 64)...), 0, 0},
		{"corrupt-middle", flip(log, offs[2]+headerSize), 0, 0},
		{"corrupt-first-segment", flip(log, offs[1]+headerSize), uint16(offs[3]), 4},
		{"bad-length", flip(log, offs[4]+2), 0, 0},
		{"index-order", append(cp(log), log[offs[1]:offs[2]]...), 0, 0},
		{"split-mid-frame", cp(log), uint16(offs[3] + 5), 4},
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("WAL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set WAL_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz/FuzzWALRecovery")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzWALRecovery")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range fuzzSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint16(%d)\nuint64(%d)\n", s.data, s.split, s.second)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
