package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/tsfile"
)

// WAL entry kinds.
const (
	KindTablet uint8 = 1 // payload: epoch (8 bytes LE) + tablet codec
	KindDelete uint8 = 2 // payload: epoch (8 bytes LE) + JSON deletion
)

// Defaults of Options.
const (
	DefaultMemtableSize = 64 << 20
	DefaultFlushAge     = 10 * time.Minute
	DefaultMaxImmutable = 2
	DefaultRecentBytes  = 64 << 20
	DefaultOrigin       = 1
	// DefaultWALRetainAfterOpen is how long the WAL found at open is kept for pipes to pin.
	DefaultWALRetainAfterOpen = time.Minute
)

// Options configure a Region.
type Options struct {
	Dir            string             // region directory (created if missing)
	Name           string             // region name recorded in files; default: base of Dir
	Origin         uint32             // origin id of local writes; default 1
	Durability     wal.Durability     // sync (default), batch, async
	SyncInterval   time.Duration      // fdatasync cadence for batch/async; default 10ms
	WALSegmentSize int64              // default 64 MiB
	MemtableSize   int64              // flush threshold in bytes; default 64 MiB
	FlushAge       time.Duration      // flush a memtable older than this; default 10m, <0 disables
	Compression    tsfile.Compression // TsFile compression; default lz4 (as IoTDB)
	MaxImmutable   int                // sealed memtables awaiting flush before writes wait; default 2
	RecentBytes    int64              // recent entries kept in memory for subscribers; default 64 MiB
	Repair         bool               // open despite a corrupt WAL middle or TsFile, dropping the damage
	// WALRetainAfterOpen keeps the WAL found at open (what pipes had pinned before a restart,
	// and what was not flushed) this long, so that pipes resuming from their durable
	// progress pin it again instead of falling back to files; default 1m, <0 disables.
	WALRetainAfterOpen time.Duration
	FS                 vfs.FS           // default: the OS
	Logger             *slog.Logger     // default: slog.Default()
	Allocator          memory.Allocator // default: memory.DefaultAllocator
}

func (o *Options) fill() error {
	if o.Dir == "" {
		return errors.New("region options: Dir is empty")
	}
	if o.Name == "" {
		o.Name = filepath.Base(o.Dir)
	}
	if o.Origin == 0 {
		o.Origin = DefaultOrigin
	}
	if o.MemtableSize == 0 {
		o.MemtableSize = DefaultMemtableSize
	}
	if o.MemtableSize < 0 {
		return fmt.Errorf("region options: MemtableSize %d < 0", o.MemtableSize)
	}
	if o.FlushAge == 0 {
		o.FlushAge = DefaultFlushAge
	}
	if o.Compression == "" {
		o.Compression = "lz4"
	}
	if _, err := tsfile.ParseCompression(string(o.Compression)); err != nil {
		return fmt.Errorf("region options: compression: %w", err)
	}
	if o.MaxImmutable <= 0 {
		o.MaxImmutable = DefaultMaxImmutable
	}
	if o.RecentBytes == 0 {
		o.RecentBytes = DefaultRecentBytes
	}
	if o.WALRetainAfterOpen == 0 {
		o.WALRetainAfterOpen = DefaultWALRetainAfterOpen
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Allocator == nil {
		o.Allocator = memory.DefaultAllocator
	}
	return nil
}

// ErrClosed is returned by operations on a closed region.
var ErrClosed = errors.New("region closed")

// TypeConflictError reports a write whose measurement type differs from the stored one.
type TypeConflictError struct {
	Device, Measurement string
	Have, Got           tsfile.DataType
}

func (e *TypeConflictError) Error() string {
	return fmt.Sprintf("type conflict: %s.%s is %s, this write has %s", e.Device, e.Measurement, e.Have, e.Got)
}

// Region is one data region: a WAL, memtables, sealed TsFiles and tombstones, with the
// hooks that pipes read from.
type Region struct {
	opts Options
	log  *slog.Logger
	mem  memory.Allocator
	wal  *wal.WAL

	mu          sync.Mutex
	cond        *sync.Cond // signalled when immutables shrink or the region closes
	closed      bool
	failed      error
	live        *memtable
	immutables  []*memtable
	man         *manifest
	files       map[string]*fileHandle
	lastIndex   uint64
	nextVersion uint64
	recent      []Entry
	recentBytes int64
	recentHead  int
	closedCh    chan struct{} // closed by Close, wakes subscribers
	listeners   map[int]func(FileInfo)
	nextID      int
	walPins     map[int]*Pin
	retainUntil time.Time // the WAL found at open is kept until then (Options.WALRetainAfterOpen)
	progress    map[uint32]uint64
	times       []indexTime
	recvSeq     atomic.Uint64 // man.ReceivedSeq, read without the lock (ReceivedSeq)
	stats       Stats

	flushCh chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

type fileHandle struct {
	info FileInfo
	mu   sync.Mutex
	rd   *tsfile.Reader
	pins int
}

// Stats are counters of a region.
type Stats struct {
	Writes        int64  `json:"writes"`
	Points        int64  `json:"points"`
	Deletes       int64  `json:"deletes"`
	Flushes       int64  `json:"flushes"`
	Files         int    `json:"files"`
	FileBytes     int64  `json:"file_bytes"`
	MemtableBytes int64  `json:"memtable_bytes"`
	WALBytes      int64  `json:"wal_bytes"`
	PinnedWAL     int64  `json:"pinned_wal_bytes"`
	PinnedFiles   int64  `json:"pinned_file_bytes"`
	LastIndex     uint64 `json:"last_index"`
	FlushedIndex  uint64 `json:"flushed_index"`
}

// Open opens (or creates) the region in opts.Dir and recovers it: the manifest, every file it
// lists (size, CRC32C, structure), then the WAL after the last flushed index.
func Open(opts Options) (*Region, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	fs := opts.FS
	if err := fs.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create region dir %s: %w", opts.Dir, err)
	}
	r := &Region{
		opts: opts, log: opts.Logger.With("region", opts.Name), mem: opts.Allocator,
		files: map[string]*fileHandle{}, progress: map[uint32]uint64{}, listeners: map[int]func(FileInfo){}, walPins: map[int]*Pin{},
		closedCh: make(chan struct{}), flushCh: make(chan struct{}, 1), done: make(chan struct{}),
	}
	r.cond = sync.NewCond(&r.mu)
	man, err := loadManifest(fs, opts.Dir)
	if err != nil {
		return nil, err
	}
	if man == nil {
		man = &manifest{Format: 1, Region: opts.Name, NextVersion: 1, Schema: map[string]tsfile.DataType{}}
	}
	r.man = man
	r.recvSeq.Store(man.ReceivedSeq)
	if err := r.openFiles(); err != nil {
		r.closeFiles()
		return nil, err
	}
	w, err := wal.Open(wal.Options{
		Dir: filepath.Join(opts.Dir, "wal"), FS: fs, SegmentSize: opts.WALSegmentSize,
		Durability: opts.Durability, SyncInterval: opts.SyncInterval, Repair: opts.Repair, Logger: r.log,
	})
	if err != nil {
		r.closeFiles()
		return nil, fmt.Errorf("open region %s: %w", opts.Name, err)
	}
	r.wal = w
	if err := r.replay(); err != nil {
		w.Close()
		r.closeFiles()
		return nil, fmt.Errorf("open region %s: replay wal: %w", opts.Name, err)
	}
	r.wg.Add(1)
	go r.flushLoop()
	if len(r.immutables) > 0 {
		r.kickFlush()
	}
	return r, nil
}

// openFiles verifies and opens every file of the manifest; with Repair a bad file is moved
// to corrupt/ and dropped from the manifest.
func (r *Region) openFiles() error {
	var keep []FileInfo
	for _, fi := range r.man.Files {
		p := filepath.Join(r.opts.Dir, fi.Name)
		err := tsfile.VerifyFile(p, fi.Size, fi.CRC32C)
		var rd *tsfile.Reader
		if err == nil {
			rd, err = tsfile.OpenFile(p)
		}
		if err != nil {
			if !r.opts.Repair {
				return fmt.Errorf("open region %s: %w (open with repair to set the file aside)", r.opts.Name, err)
			}
			qdir := filepath.Join(r.opts.Dir, "corrupt")
			_ = r.opts.FS.MkdirAll(qdir, 0o755)
			_ = r.opts.FS.Rename(p, filepath.Join(qdir, fi.Name))
			r.log.Warn("repair: set aside a corrupt tsfile", "file", p, "err", err)
			continue
		}
		r.files[fi.Name] = &fileHandle{info: fi, rd: rd}
		keep = append(keep, fi)
		mergeProgress(r.progress, fi.Progress)
		for _, t := range r.man.Tombstones {
			// the deletions that came with a received file count as it does
			if t.File == fi.Name && t.OriginIndex > r.progress[t.Origin] {
				r.progress[t.Origin] = t.OriginIndex
			}
		}
		if fi.Version >= r.man.NextVersion {
			r.man.NextVersion = fi.Version + 1
		}
	}
	if len(keep) != len(r.man.Files) {
		r.man.Files = keep
		if err := saveManifest(r.opts.FS, r.opts.Dir, r.man); err != nil {
			return err
		}
	}
	// leftovers of an interrupted flush
	if ents, err := r.opts.FS.ReadDir(r.opts.Dir); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tmp") {
				_ = r.opts.FS.Remove(filepath.Join(r.opts.Dir, e.Name()))
			}
		}
	}
	return nil
}

func (r *Region) closeFiles() {
	for _, h := range r.files {
		if h.rd != nil {
			h.rd.Close()
		}
	}
}

// replay rebuilds the unflushed epochs from the WAL: each becomes a sealed memtable queued
// for flush, and a new live memtable starts.
func (r *Region) replay() error {
	r.lastIndex = r.man.FlushedIndex
	if r.opts.WALRetainAfterOpen > 0 && r.wal.LastIndex() > 0 {
		// flushed segments still on disk were pinned by pipes before the restart: keep them
		// (and the replayed epochs' segments) a while for the pipes to pin again
		r.retainUntil = time.Now().Add(r.opts.WALRetainAfterOpen)
	} else if _, err := r.wal.RemoveSegments(r.man.FlushedIndex); err != nil {
		return err
	}
	seen := map[uint64]bool{}
	for _, t := range r.man.Tombstones {
		seen[t.Index] = true
	}
	var cur *memtable
	err := r.wal.Replay(r.man.FlushedIndex+1, func(e wal.Entry) error {
		if e.Index <= r.man.FlushedIndex {
			return nil
		}
		if len(e.Payload) < 8 {
			return fmt.Errorf("wal entry %d: payload of %d bytes has no epoch", e.Index, len(e.Payload))
		}
		epoch := binary.LittleEndian.Uint64(e.Payload)
		if cur == nil || cur.version != epoch {
			if cur != nil {
				r.immutables = append(r.immutables, cur)
			}
			cur = newMemtable(epoch)
		}
		switch e.Kind {
		case KindTablet:
			t, err := tsfile.DecodeTablet(r.mem, e.Payload[8:])
			if err != nil {
				return fmt.Errorf("wal entry %d: %w", e.Index, err)
			}
			r.noteSchema(t)
			cur.insert(t, e.Index, e.Origin, e.OriginIndex)
			t.Release()
		case KindDelete:
			var d Deletion
			if err := json.Unmarshal(e.Payload[8:], &d); err != nil {
				return fmt.Errorf("wal entry %d: deletion: %w", e.Index, err)
			}
			cur.deleteInPlace(r.mem, d.Pattern, d.MinTime, d.MaxTime)
			cur.noteIndex(e.Index, e.Origin, e.OriginIndex)
			if !seen[e.Index] {
				r.man.Tombstones = append(r.man.Tombstones, tomb{Pattern: d.Pattern, MinTime: d.MinTime, MaxTime: d.MaxTime, Version: epoch, Index: e.Index, Origin: e.Origin, OriginIndex: e.OriginIndex})
			}
		default:
			return fmt.Errorf("wal entry %d: unknown kind %d", e.Index, e.Kind)
		}
		if epoch >= r.man.NextVersion {
			r.man.NextVersion = epoch + 1
		}
		if e.OriginIndex > r.progress[e.Origin] {
			r.progress[e.Origin] = e.OriginIndex
		}
		r.lastIndex = e.Index
		return nil
	})
	if err != nil {
		return err
	}
	if cur != nil {
		r.immutables = append(r.immutables, cur)
		if err := r.wal.Roll(); err != nil {
			return err
		}
	}
	r.nextVersion = r.man.NextVersion
	r.live = r.newLive()
	return nil
}

func (r *Region) newLive() *memtable {
	m := newMemtable(r.nextVersion)
	r.nextVersion++
	return m
}

// noteSchema records the types of a tablet's measurements (replay: no conflict check).
func (r *Region) noteSchema(t *tsfile.Tablet) {
	for _, c := range t.Columns() {
		if _, ok := r.man.Schema[c.Name]; !ok {
			r.man.Schema[c.Name] = c.Type
		}
	}
}

// checkSchema rejects a tablet whose measurement types conflict with stored ones and records
// new ones. Caller holds r.mu.
func (r *Region) checkSchema(t *tsfile.Tablet) error {
	cols := t.Columns()
	for _, c := range cols {
		if have, ok := r.man.Schema[c.Name]; ok && have != c.Type {
			return &TypeConflictError{Device: t.Device, Measurement: c.Name, Have: have, Got: c.Type}
		}
	}
	for _, c := range cols {
		r.man.Schema[c.Name] = c.Type
	}
	return nil
}

// Deletion is a delete request: a pattern and an inclusive time range.
type Deletion struct {
	Pattern tsfile.Pattern `json:"pattern"`
	MinTime int64          `json:"min_time"`
	MaxTime int64          `json:"max_time"`
}

// Entry is one committed write as pipes see it.
type Entry struct {
	Index       uint64
	Origin      uint32
	OriginIndex uint64
	Epoch       uint64
	Kind        uint8
	Tablet      *tsfile.Tablet // KindTablet; shared, read-only
	Deletion    *Deletion      // KindDelete
	size        int64
}

// Write stores a tablet as a local write and returns its index once it is durable per the
// region's durability mode.
func (r *Region) Write(t *tsfile.Tablet) (uint64, error) {
	return r.write(t, r.opts.Origin, 0)
}

// WriteReplicated stores a tablet that another replica wrote, keeping its origin and index.
func (r *Region) WriteReplicated(origin uint32, originIndex uint64, t *tsfile.Tablet) (uint64, error) {
	return r.write(t, origin, originIndex)
}

var payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (r *Region) write(t *tsfile.Tablet, origin uint32, originIndex uint64) (uint64, error) {
	idx, commit, err := r.appendTablet(t, origin, originIndex)
	if err != nil {
		return 0, err
	}
	if err := commit.Wait(); err != nil {
		r.fail(err)
		return 0, fmt.Errorf("write: %w", err)
	}
	return idx, nil
}

// appendTablet takes a tablet into the WAL's queue and the live memtable and returns its
// index and the WAL commit to wait on for durability.
func (r *Region) appendTablet(t *tsfile.Tablet, origin uint32, originIndex uint64) (uint64, wal.Commit, error) {
	if t == nil {
		return 0, nil, fmt.Errorf("write: %w", tsfile.ErrEmptyTablet)
	}
	if err := t.Validate(); err != nil {
		return 0, nil, fmt.Errorf("write: %w", err)
	}
	nt := t.Normalize(r.mem)
	defer nt.Release()
	bp := payloadPool.Get().(*[]byte)
	payload := append((*bp)[:0], make([]byte, 8)...)
	payload = tsfile.AppendTablet(payload, nt)
	defer func() { *bp = payload[:0]; payloadPool.Put(bp) }()

	r.mu.Lock()
	if err := r.admit(); err != nil {
		r.mu.Unlock()
		return 0, nil, err
	}
	if err := r.checkSchema(nt); err != nil {
		r.mu.Unlock()
		return 0, nil, err
	}
	idx := r.lastIndex + 1
	if origin == r.opts.Origin && originIndex == 0 {
		originIndex = idx
	}
	binary.LittleEndian.PutUint64(payload, r.live.version)
	commit, err := r.wal.Append(wal.Entry{Kind: KindTablet, Origin: origin, Index: idx, OriginIndex: originIndex, Payload: payload})
	if err != nil {
		r.failLocked(err)
		r.mu.Unlock()
		return 0, nil, fmt.Errorf("write: %w", err)
	}
	r.lastIndex = idx
	r.noteWriteLocked(origin, originIndex)
	r.live.insert(nt, idx, origin, originIndex)
	nt.Retain()
	r.addRecent(Entry{Index: idx, Origin: origin, OriginIndex: originIndex, Epoch: r.live.version, Kind: KindTablet, Tablet: nt, size: int64(len(payload))})
	r.stats.Writes++
	r.stats.Points += int64(nt.Points())
	r.maybeSealLocked()
	r.mu.Unlock()
	return idx, commit, nil
}

// admit waits while too many memtables await flush; caller holds r.mu.
func (r *Region) admit() error {
	for {
		if r.closed {
			return ErrClosed
		}
		if r.failed != nil {
			return fmt.Errorf("region %s failed: %w", r.opts.Name, r.failed)
		}
		if len(r.immutables) < r.opts.MaxImmutable || r.live.bytes < r.opts.MemtableSize {
			return nil
		}
		r.cond.Wait()
	}
}

// Err returns why the region failed (a WAL write or sync, a flush), or nil. A failed region
// takes no more writes; it may count in its progress a write that never became durable, so
// that progress is not to be trusted until the region is reopened.
func (r *Region) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *Region) failLocked(err error) {
	if r.failed == nil {
		r.failed = err
		r.log.Error("region failed", "err", err)
	}
	r.cond.Broadcast()
}

func (r *Region) fail(err error) {
	r.mu.Lock()
	r.failLocked(err)
	r.mu.Unlock()
}

// maybeSealLocked seals the live memtable when it is over its size.
func (r *Region) maybeSealLocked() {
	if r.opts.MemtableSize > 0 && r.live.bytes >= r.opts.MemtableSize && len(r.immutables) < r.opts.MaxImmutable {
		r.sealLocked()
	}
}

// sealLocked turns the live memtable into an immutable one queued for flush, and rolls the
// WAL so that segments line up with epochs.
func (r *Region) sealLocked() *memtable {
	m := r.live
	if m.empty() {
		return nil
	}
	if err := r.wal.Roll(); err != nil {
		r.failLocked(err)
		return nil
	}
	r.immutables = append(r.immutables, m)
	r.live = r.newLive()
	r.kickFlush()
	return m
}

func (r *Region) kickFlush() {
	select {
	case r.flushCh <- struct{}{}:
	default:
	}
}

// Delete hides the points of series matching p in [minT, maxT]: at once in the live
// memtable, and by a tombstone for everything older.
func (r *Region) Delete(p tsfile.Pattern, minT, maxT int64) (uint64, error) {
	return r.deleteWith(p, minT, maxT, r.opts.Origin, 0)
}

// DeleteReplicated applies a deletion that another replica took, keeping its origin and index.
func (r *Region) DeleteReplicated(origin uint32, originIndex uint64, p tsfile.Pattern, minT, maxT int64) (uint64, error) {
	return r.deleteWith(p, minT, maxT, origin, originIndex)
}

func (r *Region) deleteWith(p tsfile.Pattern, minT, maxT int64, origin uint32, originIndex uint64) (uint64, error) {
	if p.IsZero() {
		return 0, errors.New("delete: empty pattern")
	}
	if minT > maxT {
		return 0, fmt.Errorf("delete: start time %d after end time %d", minT, maxT)
	}
	d := Deletion{Pattern: p, MinTime: minT, MaxTime: maxT}
	body, _ := json.Marshal(d)
	payload := append(make([]byte, 8, 8+len(body)), body...)
	r.mu.Lock()
	if err := r.admit(); err != nil {
		r.mu.Unlock()
		return 0, err
	}
	idx := r.lastIndex + 1
	if origin == r.opts.Origin && originIndex == 0 {
		originIndex = idx
	}
	binary.LittleEndian.PutUint64(payload, r.live.version)
	commit, err := r.wal.Append(wal.Entry{Kind: KindDelete, Origin: origin, Index: idx, OriginIndex: originIndex, Payload: payload})
	if err != nil {
		r.failLocked(err)
		r.mu.Unlock()
		return 0, fmt.Errorf("delete: %w", err)
	}
	r.lastIndex = idx
	r.noteWriteLocked(origin, originIndex)
	r.live.deleteInPlace(r.mem, p, minT, maxT)
	r.live.noteIndex(idx, origin, originIndex)
	r.man.Tombstones = append(r.man.Tombstones, tomb{Pattern: p, MinTime: minT, MaxTime: maxT, Version: r.live.version, Index: idx, Origin: origin, OriginIndex: originIndex})
	r.addRecent(Entry{Index: idx, Origin: origin, OriginIndex: originIndex, Epoch: r.live.version, Kind: KindDelete, Deletion: &d, size: int64(len(payload))})
	r.stats.Deletes++
	r.mu.Unlock()
	if err := commit.Wait(); err != nil {
		r.fail(err)
		return 0, fmt.Errorf("delete: %w", err)
	}
	return idx, nil
}

// Flush seals the live memtable and waits until every sealed memtable is in a TsFile.
func (r *Region) Flush() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.sealLocked()
	var wait []*memtable
	wait = append(wait, r.immutables...)
	r.mu.Unlock()
	for _, m := range wait {
		<-m.flushed
		if m.err != nil {
			return m.err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *Region) flushLoop() {
	defer r.wg.Done()
	age := r.opts.FlushAge
	tick := time.Second
	if age > 0 && age < 4*tick {
		tick = age / 4
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-ticker.C:
			r.mu.Lock()
			if age > 0 && !r.live.empty() && time.Since(r.live.created) >= age {
				r.sealLocked()
			}
			r.mu.Unlock()
		case <-r.flushCh:
		}
		for {
			r.mu.Lock()
			if len(r.immutables) == 0 || r.failed != nil {
				r.mu.Unlock()
				break
			}
			m := r.immutables[0]
			r.mu.Unlock()
			err := r.flushMemtable(m)
			m.err = err
			r.mu.Lock()
			if err != nil {
				r.failLocked(fmt.Errorf("flush epoch %d: %w", m.version, err))
				// wake every waiter
				for _, x := range r.immutables {
					if x.err == nil {
						x.err = err
					}
					closeOnce(x.flushed)
				}
				r.mu.Unlock()
				return
			}
			r.immutables = r.immutables[1:]
			r.cond.Broadcast()
			r.mu.Unlock()
			close(m.flushed)
			m.release()
		}
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// fileName names the TsFile of an epoch.
func fileName(version uint64) string { return fmt.Sprintf("%020d.tsfile", version) }

type crcWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	c.n += int64(n)
	return n, err
}

// flushMemtable writes m as a TsFile (temp name, fsync, rename), then records it in the
// manifest, notifies listeners and drops WAL segments nobody needs.
func (r *Region) flushMemtable(m *memtable) error {
	r.mu.Lock()
	schema := make(map[string]tsfile.DataType, len(r.man.Schema))
	for k, v := range r.man.Schema {
		schema[k] = v
	}
	r.mu.Unlock()
	data, err := m.deviceData(r.mem, schema)
	if err != nil {
		return err
	}
	defer func() {
		for _, d := range data {
			d.Rec.Release()
		}
	}()
	name := fileName(m.version)
	final := filepath.Join(r.opts.Dir, name)
	tmp := final + ".tmp"
	f, err := r.opts.FS.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	// WriteFile coalesces its small writes itself; large buffers go straight to the file
	cw := &crcWriter{w: f}
	meta := tsfile.FileMeta{Region: r.opts.Name, Version: m.version, Epoch: m.version, Progress: m.progress, MinIndex: m.minIndex, MaxIndex: m.maxIndex}
	meta, err = tsfile.WriteFile(cw, meta, data, tsfile.WriteOptions{Compression: r.opts.Compression, CompressConcurrency: 2})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = r.opts.FS.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := r.opts.FS.Rename(tmp, final); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := r.opts.FS.SyncDir(r.opts.Dir); err != nil {
		return fmt.Errorf("sync dir %s: %w", r.opts.Dir, err)
	}
	info := FileInfo{
		Name: name, Size: cw.n, CRC32C: cw.crc, Version: m.version, Epoch: m.version,
		MinIndex: m.minIndex, MaxIndex: m.maxIndex, MinTime: meta.MinTime, MaxTime: meta.MaxTime,
		Rows: meta.Rows, Points: meta.Points, Progress: copyProgress(m.progress),
	}
	rd, err := tsfile.OpenFile(final)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", final, err)
	}
	r.mu.Lock()
	prevFlushed := r.man.FlushedIndex
	r.man.Files = append(r.man.Files, info)
	if m.maxIndex > r.man.FlushedIndex {
		r.man.FlushedIndex = m.maxIndex
	}
	if r.nextVersion > r.man.NextVersion {
		r.man.NextVersion = r.nextVersion
	}
	if err := saveManifest(r.opts.FS, r.opts.Dir, r.man); err != nil {
		// the in-memory manifest goes back to what the disk holds (a later save, of a
		// received file, must not record this epoch as flushed without its file)
		r.man.dropFile(name)
		r.man.FlushedIndex = prevFlushed
		r.mu.Unlock()
		rd.Close()
		return err
	}
	r.files[name] = &fileHandle{info: info, rd: rd}
	r.stats.Flushes++
	listeners := make([]func(FileInfo), 0, len(r.listeners))
	for _, l := range r.listeners {
		listeners = append(listeners, l)
	}
	r.mu.Unlock()
	for _, l := range listeners {
		l(info)
	}
	return r.trimWAL()
}

func copyProgress(p map[uint32]uint64) map[uint32]uint64 {
	out := make(map[uint32]uint64, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

// trimWAL removes WAL segments that are flushed and not pinned.
func (r *Region) trimWAL() error {
	r.mu.Lock()
	upTo := r.man.FlushedIndex
	if time.Now().Before(r.retainUntil) {
		upTo = 0
	}
	for _, p := range r.walPins {
		if p.from > 0 && p.from-1 < upTo {
			upTo = p.from - 1
		}
	}
	r.mu.Unlock()
	if _, err := r.wal.RemoveSegments(upTo); err != nil {
		return fmt.Errorf("trim wal: %w", err)
	}
	return nil
}

// Close flushes nothing: it syncs the WAL, stops the flusher and closes files. Unflushed
// writes are replayed from the WAL on the next Open.
func (r *Region) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cond.Broadcast()
	close(r.closedCh)
	r.mu.Unlock()
	close(r.done)
	r.wg.Wait()
	err := r.wal.Close()
	r.mu.Lock()
	r.closeFiles()
	for _, e := range r.recent[r.recentHead:] {
		if e.Tablet != nil {
			e.Tablet.Release()
		}
	}
	r.recent = nil
	r.mu.Unlock()
	return err
}

// SyncWAL makes every write so far durable (an fdatasync of the WAL).
func (r *Region) SyncWAL() error { return r.wal.Sync() }

// WALSyncs returns how many fdatasyncs the WAL has done.
func (r *Region) WALSyncs() int64 { return r.wal.Syncs() }

// LastIndex returns the index of the last write.
func (r *Region) LastIndex() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastIndex
}

// Name returns the region's name.
func (r *Region) Name() string { return r.opts.Name }

// Dir returns the region's directory.
func (r *Region) Dir() string { return r.opts.Dir }

// FilePath returns the path of a sealed file of the region.
func (r *Region) FilePath(name string) string { return filepath.Join(r.opts.Dir, name) }

// Schema returns a copy of the measurement types.
func (r *Region) Schema() map[string]tsfile.DataType {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]tsfile.DataType, len(r.man.Schema))
	for k, v := range r.man.Schema {
		out[k] = v
	}
	return out
}

// Files lists the sealed files in version order.
func (r *Region) Files() []FileInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]FileInfo(nil), r.man.Files...)
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// AddSealListener calls fn (which must not block) after each file is sealed and recorded.
// It returns a function that removes the listener.
func (r *Region) AddSealListener(fn func(FileInfo)) (remove func()) {
	r.mu.Lock()
	id := r.nextID
	r.nextID++
	r.listeners[id] = fn
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.listeners, id)
		r.mu.Unlock()
	}
}

// Stats returns the region's counters.
func (r *Region) Stats() Stats {
	r.mu.Lock()
	s := r.stats
	s.Files = len(r.man.Files)
	for _, f := range r.man.Files {
		s.FileBytes += f.Size
	}
	s.MemtableBytes = r.live.bytes
	for _, m := range r.immutables {
		s.MemtableBytes += m.bytes
	}
	s.LastIndex = r.lastIndex
	s.FlushedIndex = r.man.FlushedIndex
	r.mu.Unlock()
	s.PinnedWAL, s.PinnedFiles = r.PinnedBytes()
	for _, seg := range r.wal.Segments() {
		s.WALBytes += seg.Size
	}
	return s
}

// Digest is a stable hash of all live points and their count.
type Digest struct {
	Hash   string `json:"digest"`
	Points int64  `json:"points"`
}

func (r *Region) addRecent(e Entry) {
	r.recent = append(r.recent, e)
	r.recentBytes += e.size
	for r.recentBytes > r.opts.RecentBytes && len(r.recent)-r.recentHead > 1 {
		old := &r.recent[r.recentHead]
		if old.Tablet != nil {
			old.Tablet.Release()
		}
		r.recentBytes -= old.size
		*old = Entry{}
		r.recentHead++
	}
	if r.recentHead > 1024 && r.recentHead > len(r.recent)/2 {
		n := copy(r.recent, r.recent[r.recentHead:])
		clear(r.recent[n:])
		r.recent = r.recent[:n]
		r.recentHead = 0
	}
}

var _ = os.ErrNotExist
var _ = math.MaxInt64
var _ context.Context
var _ arrow.Record
