package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/weir-dev/weir/engine/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuf captures slog output.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testOpts(t testing.TB, dir string) (Options, *logBuf) {
	lb := &logBuf{}
	return Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(lb, nil))}, lb
}

func mustOpen(t testing.TB, o Options) *WAL {
	t.Helper()
	w, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

func entry(i uint64) Entry {
	return Entry{Kind: uint8(i % 3), Origin: uint32(i % 5), Index: i, OriginIndex: i * 10,
		Payload: []byte(fmt.Sprintf("payload-%d-%s", i, strings.Repeat("x", int(i%17))))}
}

func appendWait(t testing.TB, w *WAL, e Entry) {
	t.Helper()
	c, err := w.Append(e)
	if err != nil {
		t.Fatalf("Append(%d): %v", e.Index, err)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("Wait(%d): %v", e.Index, err)
	}
}

func appendRange(t testing.TB, w *WAL, from, to uint64) {
	t.Helper()
	var last Commit
	for i := from; i <= to; i++ {
		c, err := w.Append(entry(i))
		if err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		last = c
	}
	if last != nil {
		if err := last.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

func replayAll(t testing.TB, w *WAL, from uint64) []Entry {
	t.Helper()
	var out []Entry
	if err := w.Replay(from, func(e Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatalf("Replay(%d): %v", from, err)
	}
	return out
}

func checkEntries(t testing.TB, got []Entry, from, to uint64) {
	t.Helper()
	if uint64(len(got)) != to-from+1 && !(to < from && len(got) == 0) {
		t.Fatalf("got %d entries, want %d..%d", len(got), from, to)
	}
	for k, e := range got {
		want := entry(from + uint64(k))
		if e.Index != want.Index || e.Kind != want.Kind || e.Origin != want.Origin ||
			e.OriginIndex != want.OriginIndex || !bytes.Equal(e.Payload, want.Payload) {
			t.Fatalf("entry %d = %+v, want %+v", k, e, want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := Entry{
			Kind:        rapid.Uint8().Draw(t, "kind"),
			Origin:      rapid.Uint32().Draw(t, "origin"),
			Index:       rapid.Uint64().Draw(t, "index"),
			OriginIndex: rapid.Uint64().Draw(t, "originIndex"),
			Payload:     rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "payload"),
		}
		b := appendFrame(nil, &e)
		if len(b) != headerSize+len(e.Payload) || frameLen(b) != len(b) {
			t.Fatalf("frame length %d", len(b))
		}
		n, st := checkFrame(b)
		if st != frameOK || n != len(b) {
			t.Fatalf("checkFrame = %d, %v", n, st)
		}
		got := decodeFrame(b)
		if got.Kind != e.Kind || got.Origin != e.Origin || got.Index != e.Index ||
			got.OriginIndex != e.OriginIndex || !bytes.Equal(got.Payload, e.Payload) {
			t.Fatalf("decoded %+v, want %+v", got, e)
		}
		// Any single flipped bit is caught; any cut is partial.
		bit := rapid.IntRange(0, len(b)*8-1).Draw(t, "bit")
		c := append([]byte(nil), b...)
		c[bit/8] ^= 1 << (bit % 8)
		if _, st := checkFrame(c); st == frameOK {
			t.Fatalf("flipped bit %d not detected", bit)
		}
		cut := rapid.IntRange(1, len(b)-1).Draw(t, "cut")
		if _, st := checkFrame(b[:cut]); st != framePartial {
			t.Fatalf("cut at %d: %v", cut, st)
		}
	})
}

func TestFrameLayout(t *testing.T) {
	e := Entry{Kind: 7, Origin: 0x01020304, Index: 0x1112131415161718, OriginIndex: 0x2122232425262728, Payload: []byte("ab")}
	b := appendFrame(nil, &e)
	want := []byte{
		23, 0, 0, 0, // len = 21 + 2
		0, 0, 0, 0, // crc, checked below
		7,
		4, 3, 2, 1,
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
		0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,
		'a', 'b',
	}
	copy(want[4:8], b[4:8])
	if !bytes.Equal(b, want) {
		t.Fatalf("frame = % x\nwant    % x", b, want)
	}
}

func TestParseDurability(t *testing.T) {
	for _, d := range []Durability{Sync, Batch, Async} {
		got, err := ParseDurability(d.String())
		if err != nil || got != d {
			t.Fatalf("ParseDurability(%q) = %v, %v", d.String(), got, err)
		}
	}
	if d, err := ParseDurability("BATCH"); err != nil || d != Batch {
		t.Fatalf("case-insensitive: %v %v", d, err)
	}
	if _, err := ParseDurability("fsync"); err == nil {
		t.Fatal("accepted fsync")
	}
}

func TestAppendReopenReplay(t *testing.T) {
	for _, mode := range []Durability{Sync, Batch, Async} {
		t.Run(mode.String(), func(t *testing.T) {
			o, _ := testOpts(t, t.TempDir())
			o.Durability = mode
			w := mustOpen(t, o)
			if w.LastIndex() != 0 || w.DurableIndex() != 0 {
				t.Fatalf("fresh: last %d durable %d", w.LastIndex(), w.DurableIndex())
			}
			appendRange(t, w, 1, 100)
			if _, err := w.Append(entry(100)); !errors.Is(err, ErrIndexOrder) {
				t.Fatalf("repeated index: %v", err)
			}
			if _, err := w.Append(Entry{Index: 101, Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("large: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Append(entry(101)); !errors.Is(err, ErrClosed) {
				t.Fatalf("append after close: %v", err)
			}
			w = mustOpen(t, o)
			defer w.Close()
			if w.LastIndex() != 100 || w.DurableIndex() != 100 {
				t.Fatalf("reopened: last %d durable %d", w.LastIndex(), w.DurableIndex())
			}
			checkEntries(t, replayAll(t, w, 0), 1, 100)
			checkEntries(t, replayAll(t, w, 42), 42, 100)
			checkEntries(t, replayAll(t, w, 101), 101, 100)
			appendRange(t, w, 101, 120)
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			checkEntries(t, replayAll(t, w, 90), 90, 120)
		})
	}
}

func TestReplayStopsAtCallbackError(t *testing.T) {
	o, _ := testOpts(t, t.TempDir())
	w := mustOpen(t, o)
	defer w.Close()
	appendRange(t, w, 1, 10)
	stop := errors.New("stop")
	n := 0
	err := w.Replay(1, func(Entry) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("Replay = %v after %d", err, n)
	}
}

// Many goroutines append concurrently (indexes assigned under a lock, as
// the region does); in Sync mode the syncs are shared.
func TestGroupCommitConcurrent(t *testing.T) {
	ffs := vfs.NewFaulty(vfs.Default)
	o, _ := testOpts(t, t.TempDir())
	o.FS = ffs
	o.SegmentSize = 64 << 10
	w := mustOpen(t, o)
	const writers, each = 16, 100
	var mu sync.Mutex
	var next uint64
	syncs0 := ffs.Syncs()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				mu.Lock()
				next++
				c, err := w.Append(entry(next))
				idx := next
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
				if err := c.Wait(); err != nil {
					errs <- err
					return
				}
				if d := w.DurableIndex(); d < idx {
					errs <- fmt.Errorf("after Wait(%d): DurableIndex %d", idx, d)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	syncs := ffs.Syncs() - syncs0
	t.Logf("%d appends, %d syncs (incl. rolls), %d segments", writers*each, syncs, len(w.Segments()))
	if syncs >= writers*each {
		t.Errorf("no group commit: %d syncs for %d appends", syncs, writers*each)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, o)
	defer w.Close()
	checkEntries(t, replayAll(t, w, 1), 1, writers*each)
}

// blockSyncs makes every file sync wait until release is closed.
func blockSyncs(ffs *vfs.Faulty) (release func()) {
	ch := make(chan struct{})
	ffs.SetHook(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && strings.HasSuffix(name, ".log") {
			<-ch
		}
		return nil
	})
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func TestDurabilityModes(t *testing.T) {
	t.Run("sync", func(t *testing.T) {
		ffs := vfs.NewFaulty(vfs.Default)
		o, _ := testOpts(t, t.TempDir())
		o.FS = ffs
		w := mustOpen(t, o)
		defer w.Close()
		release := blockSyncs(ffs)
		defer release()
		c, err := w.Append(entry(1))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
			t.Fatal("Wait returned before the fdatasync")
		case <-time.After(50 * time.Millisecond):
		}
		if w.DurableIndex() != 0 {
			t.Fatalf("DurableIndex %d before sync", w.DurableIndex())
		}
		release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if w.DurableIndex() != 1 {
			t.Fatalf("DurableIndex %d", w.DurableIndex())
		}
	})
	t.Run("batch", func(t *testing.T) {
		ffs := vfs.NewFaulty(vfs.Default)
		o, _ := testOpts(t, t.TempDir())
		o.FS, o.Durability, o.SyncInterval = ffs, Batch, 5*time.Millisecond
		w := mustOpen(t, o)
		defer w.Close()
		release := blockSyncs(ffs)
		appendWait(t, w, entry(1)) // returns although syncs are blocked
		if w.DurableIndex() != 1 {
			t.Fatalf("DurableIndex %d", w.DurableIndex())
		}
		seg := w.Segments()[0]
		if fi, err := os.Stat(seg.Path); err != nil || fi.Size() != seg.Size || seg.Size == 0 {
			t.Fatalf("file size %v (%v), segment says %d", fi, err, seg.Size)
		}
		s0 := ffs.Syncs()
		release()
		deadline := time.Now().Add(5 * time.Second)
		for ffs.Syncs() == s0 {
			if time.Now().After(deadline) {
				t.Fatal("no background fdatasync")
			}
			time.Sleep(time.Millisecond)
		}
	})
	t.Run("async", func(t *testing.T) {
		ffs := vfs.NewFaulty(vfs.Default)
		o, _ := testOpts(t, t.TempDir())
		o.FS, o.Durability = ffs, Async
		w := mustOpen(t, o)
		defer w.Close()
		// Writes are blocked: Wait must still return at once.
		wch := make(chan struct{})
		ffs.SetHook(func(op vfs.Op, _ string) error {
			if op == vfs.OpWrite {
				<-wch
			}
			return nil
		})
		c, err := w.Append(entry(1))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
		if w.LastIndex() != 1 || w.DurableIndex() != 0 {
			t.Fatalf("last %d durable %d", w.LastIndex(), w.DurableIndex())
		}
		close(wch)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.WaitDurable(ctx, 1); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRollSegmentsRemove(t *testing.T) {
	dir := t.TempDir()
	o, _ := testOpts(t, dir)
	o.SegmentSize = 1000
	w := mustOpen(t, o)
	defer func() { w.Close() }()
	appendRange(t, w, 1, 100) // frames are 29+~20 bytes: several segments
	segs := w.Segments()
	if len(segs) < 3 {
		t.Fatalf("only %d segments", len(segs))
	}
	for i, s := range segs {
		if want := filepath.Join(dir, fmt.Sprintf("wal-%020d.log", s.FirstIndex)); s.Path != want {
			t.Fatalf("path %s, want %s", s.Path, want)
		}
		if fi, err := os.Stat(s.Path); err != nil || fi.Size() != s.Size {
			t.Fatalf("segment %d: size %v %v vs %d", i, fi, err, s.Size)
		}
		if i > 0 && s.FirstIndex != segs[i-1].LastIndex+1 {
			t.Fatalf("segment %d starts at %d after %d", i, s.FirstIndex, segs[i-1].LastIndex)
		}
		if s.Size > o.SegmentSize {
			t.Fatalf("segment %d has %d bytes", i, s.Size)
		}
	}
	if segs[0].FirstIndex != 1 || segs[len(segs)-1].LastIndex != 100 {
		t.Fatalf("range %d..%d", segs[0].FirstIndex, segs[len(segs)-1].LastIndex)
	}

	// Explicit roll: a new empty active segment at 101; rolling again is a no-op.
	if err := w.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := w.Roll(); err != nil {
		t.Fatal(err)
	}
	segs = w.Segments()
	act := segs[len(segs)-1]
	if act.FirstIndex != 101 || act.LastIndex != 100 || act.Size != 0 {
		t.Fatalf("active after roll: %+v", act)
	}

	// Remove up to an index in the middle of a segment: only whole segments go.
	mid := segs[1].FirstIndex + 1
	removed, err := w.RemoveSegments(mid)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != segs[0] {
		t.Fatalf("removed %+v", removed)
	}
	if _, err := os.Stat(segs[0].Path); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
	if err := w.Replay(1, func(Entry) error { return nil }); !errors.Is(err, ErrSegmentRemoved) {
		t.Fatalf("Replay from removed: %v", err)
	}
	checkEntries(t, replayAll(t, w, segs[1].FirstIndex), segs[1].FirstIndex, 100)

	// Remove everything: the empty active segment stays.
	if _, err := w.RemoveSegments(1 << 62); err != nil {
		t.Fatal(err)
	}
	if got := w.Segments(); len(got) != 1 || got[0] != act {
		t.Fatalf("segments %+v", got)
	}
	// Reopen: LastIndex survives via the active segment's name.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, o)
	if w.LastIndex() != 100 {
		t.Fatalf("LastIndex after reopen %d", w.LastIndex())
	}
	appendRange(t, w, 101, 105)
	checkEntries(t, replayAll(t, w, 101), 101, 105)
}

func TestLargeFrameOwnSegment(t *testing.T) {
	o, _ := testOpts(t, t.TempDir())
	o.SegmentSize = 100
	w := mustOpen(t, o)
	defer w.Close()
	big := Entry{Index: 1, Payload: bytes.Repeat([]byte{1}, 500)}
	appendWait(t, w, big)
	appendWait(t, w, entry(2))
	appendWait(t, w, Entry{Index: 3, Payload: bytes.Repeat([]byte{3}, 500)})
	segs := w.Segments()
	if len(segs) != 3 || segs[0].LastIndex != 1 || segs[1].FirstIndex != 2 || segs[2].FirstIndex != 3 {
		t.Fatalf("segments %+v", segs)
	}
}

func TestReaderFollowsAppends(t *testing.T) {
	for _, mode := range []Durability{Sync, Batch, Async} {
		t.Run(mode.String(), func(t *testing.T) {
			o, _ := testOpts(t, t.TempDir())
			o.Durability, o.SegmentSize = mode, 700
			w := mustOpen(t, o)
			defer w.Close()
			r := w.NewReader(1)
			defer r.Close()
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("empty: %v", err)
			}
			var got []Entry
			const total = 300
			done := make(chan error, 1)
			go func() {
				for i := uint64(1); i <= total; i++ {
					if _, err := w.Append(entry(i)); err != nil {
						done <- err
						return
					}
					if i%50 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
				done <- nil
			}()
			timeout := time.After(10 * time.Second)
			for len(got) < total {
				ch := w.Notify()
				e, err := r.Next()
				if err == io.EOF {
					select {
					case <-ch:
					case <-timeout:
						t.Fatalf("stuck after %d entries (durable %d)", len(got), w.DurableIndex())
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if e.Index > w.DurableIndex() {
					t.Fatalf("read %d above durable %d", e.Index, w.DurableIndex())
				}
				got = append(got, e)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			checkEntries(t, got, 1, total)
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("caught up: %v", err)
			}
			if len(w.Segments()) < 2 {
				t.Fatal("reader did not cross segments")
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Next(); !errors.Is(err, ErrClosed) {
				t.Fatalf("after close: %v", err)
			}
			select {
			case <-w.Notify():
			default:
				t.Fatal("Notify not closed after Close")
			}
		})
	}
}

// In Sync mode a reader sees an entry only after its fdatasync.
func TestReaderOnlyDurable(t *testing.T) {
	ffs := vfs.NewFaulty(vfs.Default)
	o, _ := testOpts(t, t.TempDir())
	o.FS = ffs
	w := mustOpen(t, o)
	defer w.Close()
	appendWait(t, w, entry(1))
	r := w.NewReader(1)
	defer r.Close()
	if e, err := r.Next(); err != nil || e.Index != 1 {
		t.Fatalf("Next = %v, %v", e.Index, err)
	}
	release := blockSyncs(ffs)
	defer release()
	c, err := w.Append(entry(2))
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the frame is in the file, then check the reader ignores it.
	deadline := time.Now().Add(5 * time.Second)
	for w.Segments()[0].LastIndex != 2 {
		if time.Now().After(deadline) {
			t.Fatal("entry 2 never written")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("read unsynced entry: %v", err)
	}
	ch := w.Notify()
	release()
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	<-ch
	if e, err := r.Next(); err != nil || e.Index != 2 {
		t.Fatalf("Next = %v, %v", e.Index, err)
	}
}

func TestReaderSegmentRemoved(t *testing.T) {
	o, _ := testOpts(t, t.TempDir())
	o.SegmentSize = 300
	w := mustOpen(t, o)
	defer w.Close()
	appendRange(t, w, 1, 40)
	r := w.NewReader(1)
	defer r.Close()
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	// The reader's own segment may go (the open file still reads), but once
	// the next one is gone it must say so.
	segs := w.Segments()
	if _, err := w.RemoveSegments(segs[1].LastIndex); err != nil {
		t.Fatal(err)
	}
	var err error
	for err == nil {
		_, err = r.Next()
	}
	if !errors.Is(err, ErrSegmentRemoved) {
		t.Fatalf("Next = %v", err)
	}
	r2 := w.NewReader(1)
	defer r2.Close()
	if _, err := r2.Next(); !errors.Is(err, ErrSegmentRemoved) {
		t.Fatalf("new reader: %v", err)
	}
}

func TestWaitDurableContext(t *testing.T) {
	o, _ := testOpts(t, t.TempDir())
	w := mustOpen(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.WaitDurable(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDurable = %v", err)
	}
	w.Close()
	if err := w.WaitDurable(context.Background(), 5); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestSyncFailureIsSticky(t *testing.T) {
	for _, mode := range []Durability{Sync, Batch} {
		t.Run(mode.String(), func(t *testing.T) {
			ffs := vfs.NewFaulty(vfs.Default)
			o, lb := testOpts(t, t.TempDir())
			o.FS, o.Durability, o.SyncInterval = ffs, mode, time.Millisecond
			w := mustOpen(t, o)
			appendWait(t, w, entry(1))
			ffs.FailSyncAfter(0)
			var err error
			for i := uint64(2); i < 1000 && err == nil; i++ {
				var c Commit
				if c, err = w.Append(entry(i)); err == nil {
					err = c.Wait()
				}
				if mode == Batch {
					time.Sleep(time.Millisecond)
				}
			}
			if !errors.Is(err, vfs.ErrInjected) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("err = %v", err)
			}
			ffs.Reset() // the disk "recovers": the WAL must still refuse
			if _, err2 := w.Append(entry(5000)); !errors.Is(err2, syscall.EIO) {
				t.Fatalf("sticky: %v", err2)
			}
			if err2 := w.Sync(); !errors.Is(err2, syscall.EIO) {
				t.Fatalf("Sync: %v", err2)
			}
			if err2 := w.Roll(); !errors.Is(err2, syscall.EIO) {
				t.Fatalf("Roll: %v", err2)
			}
			if err2 := w.Close(); !errors.Is(err2, syscall.EIO) {
				t.Fatalf("Close: %v", err2)
			}
			if !strings.Contains(lb.String(), "refusing further appends") {
				t.Fatalf("no error logged: %s", lb)
			}
		})
	}
}

func TestENOSPC(t *testing.T) {
	ffs := vfs.NewFaulty(vfs.Default)
	o, _ := testOpts(t, t.TempDir())
	o.FS = ffs
	w := mustOpen(t, o)
	appendRange(t, w, 1, 10)
	ffs.FailWritesAfter(100) // the frames after this cut short
	var err error
	var ok uint64 = 10
	for i := uint64(11); i < 100; i++ {
		var c Commit
		if c, err = w.Append(entry(i)); err == nil {
			err = c.Wait()
		}
		if err != nil {
			break
		}
		ok = i
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v", err)
	}
	if _, err := w.Append(entry(1000)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sticky: %v", err)
	}
	w.Close()
	// Reopen on a healthy disk: the short write is a torn tail.
	o.FS = nil
	w = mustOpen(t, o)
	defer w.Close()
	if w.LastIndex() < ok {
		t.Fatalf("LastIndex %d, acknowledged %d", w.LastIndex(), ok)
	}
	checkEntries(t, replayAll(t, w, 1), 1, w.LastIndex())
}

// A crash in the middle of a write (torn write) loses only unsynced entries.
func TestTornWriteCrash(t *testing.T) {
	for _, keep := range []int64{0, 1, 28, 29, 40, 500} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			ffs := vfs.NewFaulty(vfs.Default)
			o, lb := testOpts(t, t.TempDir())
			o.FS = ffs
			w := mustOpen(t, o)
			appendRange(t, w, 1, 20)
			ffs.TornWritesAfter(keep)
			appendRange(t, w, 21, 40) // "acknowledged" but the disk kept a prefix
			w.Close()
			o.FS = nil
			w = mustOpen(t, o)
			defer w.Close()
			last := w.LastIndex()
			if last < 20 || last > 40 {
				t.Fatalf("LastIndex %d", last)
			}
			checkEntries(t, replayAll(t, w, 1), 1, last)
			if keep != 0 && !strings.Contains(lb.String(), "truncating torn tail") {
				t.Errorf("no warning: %s", lb)
			}
		})
	}
}
