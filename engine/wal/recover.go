package wal

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/weir-dev/weir/engine/vfs"
)

// listSegments returns the segment files in dir, in index order.
func listSegments(fs vfs.FS, dir string) ([]segment, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range ents {
		first, ok := parseSegmentName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		segs = append(segs, segment{first: first, path: dir + string(os.PathSeparator) + e.Name()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

func parseSegmentName(name string) (uint64, bool) {
	if len(name) != len("wal-")+20+len(".log") || !strings.HasPrefix(name, "wal-") || !strings.HasSuffix(name, ".log") {
		return 0, false
	}
	digits := name[4:24]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil && n > 0 // index 0 never exists
}

// scanResult is what scanning one segment found.
type scanResult struct {
	valid   int64  // bytes of valid frames from the start
	last    uint64 // index of the last valid frame; 0 if none
	size    int64  // file size
	damage  *CorruptError
	torn    bool // damage is a torn tail (only in the last segment)
	zeroes  bool // the dropped tail is all zero bytes
	dropped int64
}

// scanSegment validates every frame of s. prev is the last valid index
// before s; next is the first index of the following segment (0 if s is the
// last one).
func (w *WAL) scanSegment(s segment, prev, next uint64, isLast bool) (res scanResult, err error) {
	f, err := w.fs.Open(s.path)
	if err != nil {
		return res, fmt.Errorf("wal: open %s: %w", s.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("wal: stat %s: %w", s.path, err)
	}
	res.size = fi.Size()
	var sr segReader
	sr.reset(f, 0)
	check := ""
	for {
		fr, st, err := sr.peekFrame()
		if err != nil {
			return res, fmt.Errorf("wal: read %s: %w", s.path, err)
		}
		if st == frameEOF {
			return res, nil
		}
		if st == frameOK {
			idx := frameIndex(fr)
			if idx > prev && idx >= s.first && (next == 0 || idx < next) {
				prev = idx
				res.last = idx
				res.valid += int64(len(fr))
				sr.skip(len(fr))
				continue
			}
			check = fmt.Sprintf("index order (index %d after %d, segment range [%d, %d))", idx, prev, s.first, next)
		} else {
			check = st.check()
		}
		break
	}
	res.damage = &CorruptError{Path: s.path, Offset: res.valid, Check: check}
	res.dropped = res.size - res.valid
	if !isLast {
		return res, nil
	}
	tail := make([]byte, res.dropped)
	if _, err := f.ReadAt(tail, res.valid); err != nil && err != io.EOF {
		return res, fmt.Errorf("wal: read %s: %w", s.path, err)
	}
	if off, found := findValidFrame(tail, prev); found {
		res.damage.Check += fmt.Sprintf("; a valid frame follows at offset %d", res.valid+int64(off))
		return res, nil
	}
	res.torn = true
	res.zeroes = len(bytes.Trim(tail, "\x00")) == 0
	return res, nil
}

// recover scans the directory, truncates a torn tail, repairs if allowed,
// and opens the active segment.
func (w *WAL) recover(repair bool) error {
	if err := w.fs.MkdirAll(w.dir, 0o755); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	segs, err := listSegments(w.fs, w.dir)
	if err != nil {
		return fmt.Errorf("wal: list %s: %w", w.dir, err)
	}
	var prev uint64
	var removeLater []segment
	truncate := int64(-1) // new size of the last kept segment, if it must shrink
	for i := range segs {
		s := &segs[i]
		isLast := i == len(segs)-1
		var next uint64
		if !isLast {
			next = segs[i+1].first
		}
		res, err := w.scanSegment(*s, prev, next, isLast)
		if err != nil {
			return err
		}
		s.size = res.valid
		s.last = s.first - 1
		if res.last != 0 {
			s.last, prev = res.last, res.last
		}
		if res.damage == nil {
			continue
		}
		if res.torn {
			w.log.Warn("wal: truncating torn tail", "file", s.path, "offset", res.valid,
				"dropped_bytes", res.dropped, "check", res.damage.Check, "zeroes", res.zeroes)
			truncate = res.valid
			break
		}
		if !repair {
			return res.damage
		}
		removeLater = segs[i+1:]
		segs = segs[:i+1]
		var names []string
		for _, r := range removeLater {
			names = append(names, r.path)
		}
		w.log.Warn("wal: repair: dropping corrupt data", "file", s.path, "offset", res.valid,
			"dropped_bytes", res.dropped, "check", res.damage.Check, "removed_segments", names)
		truncate = res.valid
		break
	}
	for _, r := range removeLater {
		if err := w.fs.Remove(r.path); err != nil && !vfs.IsNotExist(err) {
			return fmt.Errorf("wal: repair: %w", err)
		}
	}

	var last uint64
	if len(segs) == 0 {
		path := w.segPath(1)
		f, err := w.fs.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("wal: create segment: %w", err)
		}
		w.active, w.activePath = f, path
		segs = append(segs, segment{first: 1, last: 0, path: path})
	} else {
		s := segs[len(segs)-1]
		last = max(prev, s.first-1)
		f, err := w.fs.OpenFile(s.path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("wal: open %s: %w", s.path, err)
		}
		w.active, w.activePath, w.activeSize = f, s.path, s.size
		if truncate >= 0 {
			if err := f.Truncate(truncate); err != nil {
				return fmt.Errorf("wal: truncate %s: %w", s.path, err)
			}
		}
		if _, err := f.Seek(s.size, io.SeekStart); err != nil {
			return fmt.Errorf("wal: seek %s: %w", s.path, err)
		}
		// Whatever survived is made durable before anyone reads it.
		if err := vfs.SyncData(f); err != nil {
			return fmt.Errorf("wal: sync %s: %w", s.path, err)
		}
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", w.dir, err)
	}
	for i := range segs {
		segs[i].seq = uint64(i)
	}
	w.nextSeq = uint64(len(segs))
	w.segs = segs
	w.lastIndex.Store(last)
	w.written.Store(last)
	w.synced.Store(last)
	w.durable.Store(last)
	return nil
}
