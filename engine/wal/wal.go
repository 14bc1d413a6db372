package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-dev/weir/engine/vfs"
)

// Durability says when Commit.Wait returns; see the package documentation.
type Durability int

const (
	// Sync acknowledges after the fdatasync covering the entry (group commit).
	Sync Durability = iota
	// Batch acknowledges after the entry's write(2); fdatasync every SyncInterval.
	Batch
	// Async acknowledges at once; writes happen in the background and are
	// fdatasynced every SyncInterval.
	Async
)

var durabilityNames = [...]string{"sync", "batch", "async"}

func (d Durability) String() string {
	if d >= 0 && int(d) < len(durabilityNames) {
		return durabilityNames[d]
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// ParseDurability parses "sync", "batch" or "async" (case-insensitive).
func ParseDurability(s string) (Durability, error) {
	for i, n := range durabilityNames {
		if strings.EqualFold(s, n) {
			return Durability(i), nil
		}
	}
	return 0, fmt.Errorf("wal: unknown durability %q (want sync, batch or async)", s)
}

const (
	// DefaultSegmentSize is used when Options.SegmentSize is 0.
	DefaultSegmentSize = 64 << 20
	// DefaultSyncInterval is used when Options.SyncInterval is 0.
	DefaultSyncInterval = 10 * time.Millisecond
	// Append blocks while this many bytes are queued for the writer. In Sync
	// mode the queue is the next group commit, so it may be large; in Batch
	// and Async mode a short queue keeps appenders and the writer in step
	// (measured: large write(2)s racing the background fdatasync are slower).
	maxPendingSync  = 16 << 20
	maxPendingBatch = 1 << 20
)

// Options configure Open.
type Options struct {
	Dir          string
	FS           vfs.FS // nil: vfs.Default
	SegmentSize  int64  // 0: DefaultSegmentSize
	Durability   Durability
	SyncInterval time.Duration // Batch and Async: fdatasync cadence; 0: DefaultSyncInterval
	// Repair makes Open keep the valid prefix of a corrupt log instead of
	// failing; see the package documentation.
	Repair bool
	Logger *slog.Logger // nil: slog.Default()
}

// Entry is one log record.
type Entry struct {
	Kind        uint8
	Origin      uint32
	Index       uint64
	OriginIndex uint64
	Payload     []byte
}

// SegmentInfo describes one segment file. An empty segment has
// LastIndex == FirstIndex-1. Size and LastIndex count what has been written
// to the file (not what is still queued).
type SegmentInfo struct {
	Path                  string
	FirstIndex, LastIndex uint64
	Size                  int64
}

var (
	// ErrCorrupt is wrapped by every error about invalid log data.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrClosed is returned by operations on a closed WAL, and by a Reader
	// that has read everything a closed WAL holds.
	ErrClosed = errors.New("wal: closed")
	// ErrSegmentRemoved is returned by a Reader that needs entries from a
	// segment that RemoveSegments deleted.
	ErrSegmentRemoved = errors.New("wal: segment removed")
	// ErrIndexOrder is returned by Append for an index not greater than
	// LastIndex.
	ErrIndexOrder = errors.New("wal: index not increasing")
	// ErrTooLarge is returned by Append for a payload over MaxPayload.
	ErrTooLarge = errors.New("wal: payload too large")
)

// CorruptError describes invalid data found in a segment.
type CorruptError struct {
	Path   string
	Offset int64
	Check  string // "crc mismatch", "length out of range", "truncated frame", "index order"
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt segment %s at offset %d: %s", e.Path, e.Offset, e.Check)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Commit is the handle of an appended entry.
type Commit interface {
	// Wait blocks until the entry is durable per the WAL's Durability and
	// returns the write or sync error if it never will be.
	Wait() error
}

type asyncCommit struct{}

func (asyncCommit) Wait() error { return nil }

// group is a batch of frames handed to the writer together. It is also the
// Commit of every entry in it.
type group struct {
	buf   []byte
	last  uint64 // index of the last frame in buf; 0 if none
	marks []mark // Roll requests, in order
	sync  bool   // someone called Sync
	done  chan struct{}
	err   error
}

type mark struct {
	off  int    // roll before buf[off:]
	prev uint64 // LastIndex when Roll was called
}

func (g *group) Wait() error {
	<-g.done
	return g.err
}

func (g *group) empty() bool { return len(g.buf) == 0 && len(g.marks) == 0 && !g.sync }

type segment struct {
	seq   uint64 // position in this WAL instance's sequence of segments
	first uint64
	last  uint64
	size  int64
	path  string
}

func (s segment) info() SegmentInfo {
	return SegmentInfo{Path: s.path, FirstIndex: s.first, LastIndex: s.last, Size: s.size}
}

// WAL is a segmented write-ahead log. All methods are safe for concurrent
// use; Append calls must be serialised by the caller if their indexes are to
// be accepted in order.
type WAL struct {
	fs         vfs.FS
	dir        string
	log        *slog.Logger
	segSize    int64
	mode       Durability
	interval   time.Duration
	maxPending int

	mu           sync.Mutex
	space        sync.Cond // signalled when the pending buffer is taken
	pending      *group
	spare        []byte
	err          error // sticky
	closing      bool
	waitingSpace int
	lastIndex    atomic.Uint64 // stored under mu

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	// Owned by the writer goroutine (and Open/Close); active is replaced
	// under syncMu so the background syncer never uses a closed file.
	active     vfs.File
	activePath string
	activeSize int64
	nextSeq    uint64

	syncMu  sync.Mutex
	syncs   atomic.Int64 // fdatasyncs done
	failed  atomic.Bool  // a write or sync failed (set under syncMu for syncs)
	syncErr error        // the failed sync's error; under syncMu

	segMu    sync.Mutex
	segs     []segment
	removeMu sync.Mutex

	written atomic.Uint64
	synced  atomic.Uint64
	durable atomic.Uint64
	closed  atomic.Bool

	notifyMu     sync.Mutex
	notifyCh     chan struct{}
	notifyClosed bool
}

// Open opens (creating if needed) the WAL in opts.Dir, recovering what is on
// disk; see the package documentation for what recovery does.
func Open(opts Options) (*WAL, error) {
	if opts.Dir == "" {
		return nil, errors.New("wal: Options.Dir is empty")
	}
	if opts.Durability < Sync || opts.Durability > Async {
		return nil, fmt.Errorf("wal: invalid durability %d", opts.Durability)
	}
	w := &WAL{
		fs:       opts.FS,
		dir:      opts.Dir,
		log:      opts.Logger,
		segSize:  opts.SegmentSize,
		mode:     opts.Durability,
		interval: opts.SyncInterval,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	if w.fs == nil {
		w.fs = vfs.Default
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.segSize <= 0 {
		w.segSize = DefaultSegmentSize
	}
	if w.interval <= 0 {
		w.interval = DefaultSyncInterval
	}
	w.space.L = &w.mu
	w.maxPending = maxPendingBatch
	if w.mode == Sync {
		w.maxPending = maxPendingSync
	}
	if err := w.recover(opts.Repair); err != nil {
		if w.active != nil {
			_ = w.active.Close()
		}
		return nil, err
	}
	w.pending = &group{done: make(chan struct{})}
	w.wg.Add(1)
	go w.writeLoop()
	if w.mode != Sync {
		w.wg.Add(1)
		go w.syncLoop()
	}
	return w, nil
}

func (w *WAL) segPath(first uint64) string {
	return filepath.Join(w.dir, fmt.Sprintf("wal-%020d.log", first))
}

// LastIndex returns the highest index appended (after Open: the highest
// index on disk, or the index reserved by the name of an empty last segment;
// 0 for an empty log).
func (w *WAL) LastIndex() uint64 { return w.lastIndex.Load() }

// DurableIndex returns the highest index readers may see: fdatasynced in
// Sync mode, written to the OS in Batch and Async mode.
func (w *WAL) DurableIndex() uint64 { return w.durable.Load() }

// Append queues e and returns its Commit. e.Index must be greater than
// LastIndex (callers serialise their Appends). The payload is copied; the
// caller may reuse it at once. Append blocks only while too much is queued
// for the writer (16 MiB in Sync mode, 1 MiB otherwise). In Async mode the
// Commit's Wait returns nil at once. After a write or sync failure every
// Append returns that error.
func (w *WAL) Append(e Entry) (Commit, error) {
	if len(e.Payload) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(e.Payload))
	}
	h := frameHeader(&e) // the CRC, outside the lock
	w.mu.Lock()
	for len(w.pending.buf) >= w.maxPending && w.err == nil && !w.closing {
		w.waitingSpace++
		w.space.Wait()
		w.waitingSpace--
	}
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return nil, err
	}
	if last := w.lastIndex.Load(); e.Index <= last {
		w.mu.Unlock()
		return nil, fmt.Errorf("%w: %d after %d", ErrIndexOrder, e.Index, last)
	}
	g := w.pending
	g.buf = append(g.buf, h[:]...)
	g.buf = append(g.buf, e.Payload...)
	g.last = e.Index
	w.lastIndex.Store(e.Index)
	w.mu.Unlock()
	w.wake()
	if w.mode == Async {
		return asyncCommit{}, nil
	}
	return g, nil
}

func (w *WAL) usableLocked() error {
	if w.err != nil {
		return w.err
	}
	if w.closing {
		return ErrClosed
	}
	return nil
}

func (w *WAL) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Sync makes every entry appended so far durable (fdatasync), in any mode.
func (w *WAL) Sync() error {
	w.mu.Lock()
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	g := w.pending
	g.sync = true
	w.mu.Unlock()
	w.wake()
	return g.Wait()
}

// Roll closes the current segment (after writing and fdatasyncing what was
// appended before the call) and starts a new one named LastIndex()+1. It is
// a no-op when the current segment is empty.
func (w *WAL) Roll() error {
	w.mu.Lock()
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	g := w.pending
	g.marks = append(g.marks, mark{off: len(g.buf), prev: w.lastIndex.Load()})
	w.mu.Unlock()
	w.wake()
	return g.Wait()
}

// fail records err as the sticky error.
func (w *WAL) fail(err error) {
	w.failed.Store(true)
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = err
	}
	w.space.Broadcast()
	w.mu.Unlock()
	if first {
		w.log.Error("wal: write path failed; refusing further appends", "dir", w.dir, "err", err)
	}
}

// writeLoop is the single writer: it takes the pending group, writes it,
// syncs it if required and completes it.
func (w *WAL) writeLoop() {
	defer w.wg.Done()
	for range w.kick {
		for {
			w.mu.Lock()
			g := w.pending
			if g.empty() {
				closing := w.closing
				w.mu.Unlock()
				if closing {
					return
				}
				break
			}
			w.pending = &group{buf: w.spare, done: make(chan struct{})}
			w.spare = nil
			if w.waitingSpace > 0 {
				w.space.Broadcast()
			}
			err := w.err
			w.mu.Unlock()

			if err == nil {
				if err = w.process(g); err != nil {
					w.fail(err)
				}
			}
			buf := g.buf[:0]
			g.buf, g.marks = nil, nil
			g.err = err
			close(g.done)

			w.mu.Lock()
			w.spare = buf
			w.mu.Unlock()
		}
	}
}

func (w *WAL) process(g *group) error {
	start := 0
	for _, m := range g.marks {
		if err := w.writeFrames(g.buf[start:m.off], m.prev); err != nil {
			return err
		}
		start = m.off
		if w.activeSize > 0 {
			if err := w.roll(m.prev + 1); err != nil {
				return err
			}
		}
	}
	if err := w.writeFrames(g.buf[start:], g.last); err != nil {
		return err
	}
	if w.failed.Load() {
		// a background fdatasync failed while this group was being written: the group is
		// not acknowledged, nor shown to readers
		w.syncMu.Lock()
		err := w.failedErrLocked()
		w.syncMu.Unlock()
		return err
	}
	if w.mode == Sync || g.sync {
		if err := w.syncActive(); err != nil {
			return err
		}
	}
	if w.mode == Sync {
		w.setDurable(w.synced.Load())
	} else {
		w.setDurable(w.written.Load())
	}
	return nil
}

// writeFrames writes whole frames b, whose last index is last, starting new
// segments where the current one would exceed the segment size.
func (w *WAL) writeFrames(b []byte, last uint64) error {
	for len(b) > 0 {
		if w.activeSize+int64(len(b)) <= w.segSize {
			return w.write(b, last)
		}
		n, nl := 0, uint64(0)
		for n < len(b) {
			fl := frameLen(b[n:])
			if w.activeSize+int64(n) > 0 && w.activeSize+int64(n+fl) > w.segSize {
				break
			}
			nl = frameIndex(b[n:])
			n += fl
		}
		if n > 0 {
			if err := w.write(b[:n], nl); err != nil {
				return err
			}
			b = b[n:]
		}
		if len(b) > 0 {
			if err := w.roll(frameIndex(b)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *WAL) write(b []byte, last uint64) error {
	n, err := w.active.Write(b)
	w.activeSize += int64(n)
	if err == nil && n < len(b) {
		err = errors.New("short write")
	}
	w.segMu.Lock()
	s := &w.segs[len(w.segs)-1]
	s.size = w.activeSize
	if err == nil {
		s.last = last
	}
	w.segMu.Unlock()
	if err != nil {
		w.failed.Store(true)
		return fmt.Errorf("wal: write %s: %w", w.activePath, err)
	}
	w.written.Store(last)
	return nil
}

// roll fdatasyncs and closes the active segment and creates the next one.
func (w *WAL) roll(first uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.failed.Load() {
		return w.failedErrLocked()
	}
	old := w.activePath
	if err := vfs.SyncData(w.active); err != nil {
		w.syncErr = fmt.Errorf("wal: sync %s: %w", old, err)
		w.failed.Store(true)
		return w.syncErr
	}
	w.synced.Store(w.written.Load())
	err := w.active.Close()
	w.active = nil
	if err != nil {
		return fmt.Errorf("wal: close %s: %w", old, err)
	}
	path := w.segPath(first)
	f, err := w.fs.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("wal: create segment: %w", err)
	}
	w.active, w.activePath, w.activeSize = f, path, 0
	w.segMu.Lock()
	w.segs = append(w.segs, segment{seq: w.nextSeq, first: first, last: first - 1, path: path})
	w.nextSeq++
	w.segMu.Unlock()
	if err := w.fs.SyncDir(w.dir); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", w.dir, err)
	}
	return nil
}

// syncActive fdatasyncs the active segment if anything written is unsynced.
// After one failure it never syncs again (a retried fsync can succeed after
// the kernel dropped the dirty pages).
func (w *WAL) syncActive() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.failed.Load() {
		return w.failedErrLocked()
	}
	target := w.written.Load()
	if w.synced.Load() >= target || w.active == nil {
		return nil
	}
	if err := vfs.SyncData(w.active); err != nil {
		w.syncErr = fmt.Errorf("wal: sync %s: %w", w.activePath, err)
		w.failed.Store(true)
		return w.syncErr
	}
	w.synced.Store(target)
	w.syncs.Add(1)
	return nil
}

// failedErrLocked returns the error to give after a failure: the failed sync's, if a sync
// failed. Caller holds syncMu.
func (w *WAL) failedErrLocked() error {
	if w.syncErr != nil {
		return w.syncErr
	}
	return errors.New("wal: write path failed earlier")
}

// Syncs returns how many fdatasyncs the WAL has done (for benchmarks and metrics).
func (w *WAL) Syncs() int64 { return w.syncs.Load() }

// syncLoop fdatasyncs every interval in Batch and Async mode.
func (w *WAL) syncLoop() {
	defer w.wg.Done()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		if w.failed.Load() || w.synced.Load() >= w.written.Load() {
			continue
		}
		if err := w.syncActive(); err != nil {
			w.fail(err)
		}
	}
}

func (w *WAL) setDurable(idx uint64) {
	if idx <= w.durable.Load() {
		return
	}
	w.durable.Store(idx)
	w.notifyMu.Lock()
	if w.notifyCh != nil {
		close(w.notifyCh)
		w.notifyCh = nil
	}
	w.notifyMu.Unlock()
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Notify returns a channel that is closed when DurableIndex next advances,
// or when the WAL is closed. Take the channel before checking DurableIndex
// (or calling Reader.Next) so that no advance is missed.
func (w *WAL) Notify() <-chan struct{} {
	w.notifyMu.Lock()
	defer w.notifyMu.Unlock()
	if w.notifyClosed {
		return closedCh
	}
	if w.notifyCh == nil {
		w.notifyCh = make(chan struct{})
	}
	return w.notifyCh
}

// WaitDurable blocks until DurableIndex >= idx, ctx is done, or the WAL is
// closed (ErrClosed).
func (w *WAL) WaitDurable(ctx context.Context, idx uint64) error {
	for {
		ch := w.Notify()
		if w.durable.Load() >= idx {
			return nil
		}
		if w.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Segments returns the segments in index order; the last is the active one.
func (w *WAL) Segments() []SegmentInfo {
	w.segMu.Lock()
	defer w.segMu.Unlock()
	out := make([]SegmentInfo, len(w.segs))
	for i, s := range w.segs {
		out[i] = s.info()
	}
	return out
}

func (w *WAL) segmentsSnapshot() []segment {
	w.segMu.Lock()
	defer w.segMu.Unlock()
	return append([]segment(nil), w.segs...)
}

// RemoveSegments deletes the oldest closed segments whose LastIndex <= upTo,
// stopping at the first that does not qualify; the active segment is never
// removed. It returns what it removed.
func (w *WAL) RemoveSegments(upTo uint64) (removed []SegmentInfo, err error) {
	w.removeMu.Lock()
	defer w.removeMu.Unlock()
	w.segMu.Lock()
	var cand []segment
	for i := 0; i < len(w.segs)-1 && w.segs[i].last <= upTo; i++ {
		cand = append(cand, w.segs[i])
	}
	w.segMu.Unlock()
	for _, s := range cand {
		if rerr := w.fs.Remove(s.path); rerr != nil && !vfs.IsNotExist(rerr) {
			err = fmt.Errorf("wal: remove segment: %w", rerr)
			break
		}
		removed = append(removed, s.info())
	}
	if len(removed) == 0 {
		return nil, err
	}
	w.segMu.Lock()
	w.segs = append([]segment(nil), w.segs[len(removed):]...)
	w.segMu.Unlock()
	if derr := w.fs.SyncDir(w.dir); derr != nil && err == nil {
		err = fmt.Errorf("wal: sync dir %s: %w", w.dir, derr)
	}
	return removed, err
}

// Replay calls fn for every entry with Index >= from, in order, up to
// DurableIndex (right after Open: everything on disk). It fails with
// ErrSegmentRemoved if entries at from were removed, and stops at fn's first
// error, returning it.
func (w *WAL) Replay(from uint64, fn func(Entry) error) error {
	r := w.NewReader(from)
	defer r.Close()
	for {
		e, err := r.Next()
		if err == io.EOF || errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Close writes and fdatasyncs everything appended, stops the goroutines and
// closes the files. It returns the sticky error if the WAL failed earlier.
// Readers keep working on what is on disk and end with ErrClosed.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return nil
	}
	w.closing = true
	w.space.Broadcast()
	w.mu.Unlock()
	w.wake()
	close(w.stop)
	w.wg.Wait()

	err := w.stickyErr()
	if err == nil {
		err = w.syncActive()
		if err == nil {
			w.setDurable(w.synced.Load())
		}
	}
	if w.active != nil {
		if cerr := w.active.Close(); cerr != nil && err == nil {
			err = cerr
		}
		w.active = nil
	}
	w.closed.Store(true)
	w.notifyMu.Lock()
	w.notifyClosed = true
	if w.notifyCh != nil {
		close(w.notifyCh)
		w.notifyCh = nil
	}
	w.notifyMu.Unlock()
	return err
}

func (w *WAL) stickyErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
