package engine

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weir-dev/weir/tsfile"
)

type indexTime struct {
	idx uint64
	ms  int64
}

const maxIndexTimes = 4096

func mergeProgress(dst, src map[uint32]uint64) {
	for o, v := range src {
		if v > dst[o] {
			dst[o] = v
		}
	}
}

// noteWriteLocked records a write's origin progress and samples the wall-clock time of
// indexes (for lag in seconds). Caller holds r.mu.
func (r *Region) noteWriteLocked(origin uint32, originIndex uint64) {
	if originIndex > r.progress[origin] {
		r.progress[origin] = originIndex
	}
	now := time.Now().UnixMilli()
	if n := len(r.times); n == 0 || now-r.times[n-1].ms >= 20 {
		if n >= maxIndexTimes {
			r.times = append(r.times[:0], r.times[n/2:]...)
		}
		r.times = append(r.times, indexTime{idx: r.lastIndex, ms: now})
	}
}

// IndexTime returns (approximately, to 20 ms) the wall-clock time in unix ms at which the
// write with index idx was taken, or 0 when unknown (before this process opened the region).
func (r *Region) IndexTime(idx uint64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := sort.Search(len(r.times), func(i int) bool { return r.times[i].idx >= idx })
	if i == len(r.times) {
		// after the last sample: a sample is taken at any write 20 ms after the previous
		// one, so the write is within 20 ms after the last sample
		if idx <= r.lastIndex && len(r.times) > 0 {
			return r.times[len(r.times)-1].ms
		}
		return 0
	}
	if i == 0 && idx < r.times[0].idx {
		return 0
	}
	return r.times[i].ms
}

// Progress returns, per origin, the highest index of that origin's writes the region holds
// (in files, memtables or the WAL). A receiver skips what this covers.
func (r *Region) Progress() map[uint32]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[uint32]uint64, len(r.progress))
	mergeProgress(out, r.progress)
	return out
}

// ProgressOf returns Progress()[origin] without copying the map.
func (r *Region) ProgressOf(origin uint32) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.progress[origin]
}

// Origin returns the origin id of the region's local writes.
func (r *Region) Origin() uint32 { return r.opts.Origin }

// LoadFile adds a TsFile received from another replica: the file is checked, copied into
// the region (CRC32C computed on the way), the live memtable is sealed, and the file gets a
// version above everything the region holds, so it is the final state of its epoch; writes
// after it win over it. progress is what the file covers, per origin.
//
// The file takes its place among the region's writes at once, under the region's lock: its
// version is reserved, the file renamed into place and listed in the manifest in one step,
// so every local write before it (index up to FileInfo.After) has a lower epoch and every
// one after it a higher one. Its FileInfo records that place (After) and the region's count
// of files received (Seq), for sources that ship received files (see ReceivedFiles).
func (r *Region) LoadFile(src string, progress map[uint32]uint64) (FileInfo, error) {
	return r.loadFile(src, progress, false, 0, nil)
}

// LoadFileWith is LoadFile for a file that came with deletions taken during its epoch at
// the replica that wrote it (Origin and OriginIndex as taken there; Index is ignored). They
// are recorded as tombstones of the file, in the same manifest update that lists it, so a
// crash leaves both or neither: they hide what the region held before the file (a lower
// version), not the file's rows, and advance the region's progress as the file does. They
// take no WAL index: Deletions does not list them; FileDeletions lists them with the file,
// for a source that ships it on.
func (r *Region) LoadFileWith(src string, progress map[uint32]uint64, dels []IndexedDeletion) (FileInfo, error) {
	return r.loadFile(src, progress, false, 0, dels)
}

// AdoptFile is LoadFile for a file staged inside the region's directory (so on its
// filesystem) whose bytes' CRC32C the caller computed as it wrote them and checked against
// the sender's: instead of copying the file, the region takes it over. It checks that the
// file is a TsFile, fsyncs it, renames it into place, fsyncs the directory, and only then
// records it in the manifest. A crash at any point leaves either the staged file or a file
// that no manifest names (overwritten by a later flush of that version).
//
// On success src no longer exists. On failure src is left as it was (a file that is not a
// TsFile, a *tsfile.FormatError, too: for the caller to drop), except when saving the
// manifest failed: the file then stays in place under its new name (the manifest on disk
// may name it), and the caller has to receive it again.
func (r *Region) AdoptFile(src string, crc uint32, progress map[uint32]uint64) (FileInfo, error) {
	rel, err := filepath.Rel(r.opts.Dir, src)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return FileInfo{}, fmt.Errorf("adopt %s: not inside the region's directory %s", src, r.opts.Dir)
	}
	return r.loadFile(src, progress, true, crc, nil)
}

// AdoptFileWith is AdoptFile for a file that came with deletions (see LoadFileWith).
func (r *Region) AdoptFileWith(src string, crc uint32, progress map[uint32]uint64, dels []IndexedDeletion) (FileInfo, error) {
	rel, err := filepath.Rel(r.opts.Dir, src)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return FileInfo{}, fmt.Errorf("adopt %s: not inside the region's directory %s", src, r.opts.Dir)
	}
	return r.loadFile(src, progress, true, crc, dels)
}

// ReceivedSeq returns how many files the region has received from other replicas and
// listed with their place (FileInfo.Seq of the last one; 0 when none). It takes no lock: a
// source compares it, before passing each WAL entry, with the last value it saw. A file
// listed before a write has its Seq counted before that write is readable.
func (r *Region) ReceivedSeq() uint64 { return r.recvSeq.Load() }

// ReceivedFiles returns, in version order, the files the region received from other
// replicas (FileInfo.MaxIndex 0) with a Seq above afterSeq (with afterSeq 0, also those
// listed by a version that recorded no place: Seq 0), and ReceivedSeq at that moment.
func (r *Region) ReceivedFiles(afterSeq uint64) ([]FileInfo, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []FileInfo
	for _, f := range r.man.Files {
		if f.MaxIndex == 0 && (f.Seq > afterSeq || afterSeq == 0) {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, r.man.ReceivedSeq
}

// stageSeq names the copies of received files being loaded: process-wide, so that a load
// still copying into a region closed meanwhile never shares a name with one into the
// region opened again on the same directory.
var stageSeq atomic.Uint64

func (r *Region) loadFile(src string, progress map[uint32]uint64, adopt bool, crc uint32, dels []IndexedDeletion) (FileInfo, error) {
	what := "load"
	if adopt {
		what = "adopt"
	}
	for _, d := range dels {
		if d.Pattern.IsZero() {
			return FileInfo{}, fmt.Errorf("%s %s: deletion: empty pattern", what, src)
		}
		if d.MinTime > d.MaxTime {
			return FileInfo{}, fmt.Errorf("%s %s: deletion: start time %d after end time %d", what, src, d.MinTime, d.MaxTime)
		}
	}
	rd, err := tsfile.OpenFile(src)
	if err != nil {
		return FileInfo{}, fmt.Errorf("%s %s: %w", what, src, err)
	}
	meta := rd.Meta()
	rd.Close()
	var size int64
	staged := src
	if adopt {
		// the staged bytes reach the disk before the file gets its name in the region
		f, err := r.opts.FS.OpenFile(src, os.O_RDWR, 0)
		if err == nil {
			var st os.FileInfo
			if st, err = f.Stat(); err == nil {
				size = st.Size()
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return FileInfo{}, fmt.Errorf("%s %s: %w", what, src, err)
		}
	} else {
		// copied into the region's directory under a temporary name (removed at the next
		// open if the process dies), renamed into place once it has its version
		staged = filepath.Join(r.opts.Dir, fmt.Sprintf("receive-%d.tsfile.tmp", stageSeq.Add(1)))
		in, err := os.Open(src)
		if err != nil {
			return FileInfo{}, fmt.Errorf("%s %s: %w", what, src, err)
		}
		f, err := r.opts.FS.Create(staged)
		if err != nil {
			in.Close()
			return FileInfo{}, fmt.Errorf("%s %s: %w", what, src, err)
		}
		h := crc32.New(castagnoli)
		size, err = io.Copy(f, io.TeeReader(in, h))
		in.Close()
		crc = h.Sum32()
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = r.opts.FS.Remove(staged)
			return FileInfo{}, fmt.Errorf("%s %s: %w", what, src, err)
		}
	}
	// drop takes a copy back out of the region's directory after a failure (an adopted
	// file stays where the caller staged it)
	drop := func() {
		if !adopt {
			_ = r.opts.FS.Remove(staged)
		}
	}
	// the reader's handle follows the file's rename
	nrd, err := tsfile.OpenFile(staged)
	if err != nil {
		drop()
		return FileInfo{}, fmt.Errorf("%s %s: reopen: %w", what, src, err)
	}
	fail := func(err error) (FileInfo, error) {
		nrd.Close()
		drop()
		return FileInfo{}, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fail(ErrClosed)
	}
	for _, c := range meta.Columns {
		if have, ok := r.man.Schema[c.Name]; ok && have != c.Type {
			r.mu.Unlock()
			return fail(fmt.Errorf("%s %s: %w", what, src, &TypeConflictError{Device: "(file)", Measurement: c.Name, Have: have, Got: c.Type}))
		}
	}
	// Reserve a version: seal what the live memtable holds, then give the (empty) live
	// memtable's version to the file and the live memtable a newer one. The region's lock
	// is held from here until the file is listed, so that no write comes between: the
	// writes up to r.lastIndex have lower epochs, the next ones higher (a source ships the
	// file between them, on every replay; see FileInfo.After).
	r.sealLocked()
	if r.failed != nil || !r.live.empty() {
		// the live memtable could not be sealed: its version is its writes' epoch, which
		// the WAL replays into a file of that name at the next open
		err := r.failed
		r.mu.Unlock()
		return fail(fmt.Errorf("%s %s: region %s failed: %w", what, src, r.opts.Name, err))
	}
	version := r.live.version
	r.live.version = r.nextVersion
	r.nextVersion++
	name := fileName(version)
	final := filepath.Join(r.opts.Dir, name)
	// undo takes the file back out of the region's directory after a failure
	undo := func() {
		if adopt {
			r.unadopt(final, src)
		} else {
			_ = r.opts.FS.Remove(final)
		}
	}
	if err := r.opts.FS.Rename(staged, final); err != nil {
		r.mu.Unlock()
		return fail(fmt.Errorf("%s %s: %w", what, src, err))
	}
	if err := r.opts.FS.SyncDir(r.opts.Dir); err != nil {
		r.mu.Unlock()
		nrd.Close()
		undo()
		return FileInfo{}, fmt.Errorf("%s %s: %w", what, src, err)
	}
	info := FileInfo{
		Name: name, Size: size, CRC32C: crc, Version: version, Epoch: version,
		MinTime: meta.MinTime, MaxTime: meta.MaxTime, Rows: meta.Rows, Points: meta.Points,
		Progress: copyProgress(progress),
		After:    r.lastIndex, Seq: r.man.ReceivedSeq + 1,
	}
	for _, c := range meta.Columns {
		r.man.Schema[c.Name] = c.Type
	}
	r.man.Files = append(r.man.Files, info)
	r.man.ReceivedSeq = info.Seq
	if r.nextVersion > r.man.NextVersion {
		r.man.NextVersion = r.nextVersion
	}
	// the file's deletions, listed in the same update: of the file's version, they hide
	// what the region held before it (lower versions) and not the file's rows
	ntomb := len(r.man.Tombstones)
	for _, d := range dels {
		r.man.Tombstones = append(r.man.Tombstones, tomb{Pattern: d.Pattern, MinTime: d.MinTime, MaxTime: d.MaxTime,
			Version: version, Origin: d.Origin, OriginIndex: d.OriginIndex, File: name})
	}
	if err := saveManifest(r.opts.FS, r.opts.Dir, r.man); err != nil {
		// left in place: the manifest on disk may name it (its rename may have happened)
		r.man.dropFile(name)
		r.man.Tombstones = r.man.Tombstones[:ntomb]
		r.man.ReceivedSeq = info.Seq - 1
		r.mu.Unlock()
		nrd.Close()
		return FileInfo{}, err
	}
	r.recvSeq.Store(info.Seq)
	r.files[name] = &fileHandle{info: info, rd: nrd}
	mergeProgress(r.progress, progress)
	for _, d := range dels {
		if d.OriginIndex > r.progress[d.Origin] {
			r.progress[d.Origin] = d.OriginIndex
		}
	}
	r.stats.Deletes += int64(len(dels))
	listeners := make([]func(FileInfo), 0, len(r.listeners))
	for _, l := range r.listeners {
		listeners = append(listeners, l)
	}
	r.mu.Unlock()
	for _, l := range listeners {
		l(info)
	}
	return info, nil
}

// unadopt moves an adopted file that did not make it into the manifest back to where it
// was staged, or removes it when it cannot.
func (r *Region) unadopt(final, src string) {
	if err := r.opts.FS.Rename(final, src); err != nil {
		_ = r.opts.FS.Remove(final)
	}
}

// IndexedDeletion is a deletion with the WAL index and origin it was taken at.
type IndexedDeletion struct {
	Deletion
	Index       uint64
	Origin      uint32
	OriginIndex uint64
}

// Deletions lists the region's deletions with local index in (after, upTo], in index order.
// The deletions that came with a received file have no local index: FileDeletions lists them.
func (r *Region) Deletions(after, upTo uint64) []IndexedDeletion {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []IndexedDeletion
	for _, t := range r.man.Tombstones {
		if t.File == "" && t.Index > after && t.Index <= upTo {
			o, oi := t.Origin, t.OriginIndex
			if o == 0 {
				o, oi = r.opts.Origin, t.Index
			}
			out = append(out, IndexedDeletion{Deletion: Deletion{Pattern: t.Pattern, MinTime: t.MinTime, MaxTime: t.MaxTime}, Index: t.Index, Origin: o, OriginIndex: oi})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// FileDeletions lists the deletions that came with the received file of that name
// (LoadFileWith, AdoptFileWith), in the order they were given (Index 0).
func (r *Region) FileDeletions(name string) []IndexedDeletion {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []IndexedDeletion
	for _, t := range r.man.Tombstones {
		if t.File == name && name != "" {
			out = append(out, IndexedDeletion{Deletion: Deletion{Pattern: t.Pattern, MinTime: t.MinTime, MaxTime: t.MaxTime}, Origin: t.Origin, OriginIndex: t.OriginIndex})
		}
	}
	return out
}

// WALBytesAfter returns the bytes of WAL segments holding entries after index idx: what a
// consumer at idx still has to read from the WAL.
func (r *Region) WALBytesAfter(idx uint64) int64 {
	var n int64
	for _, s := range r.wal.Segments() {
		if s.LastIndex > idx {
			n += s.Size
		}
	}
	return n
}

// WALFirstIndex returns the first index still held in the WAL (LastIndex+1 when none is).
func (r *Region) WALFirstIndex() uint64 {
	if segs := r.wal.Segments(); len(segs) > 0 {
		return segs[0].FirstIndex
	}
	return r.LastIndex() + 1
}
