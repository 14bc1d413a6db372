package wal

import (
	"fmt"
	"io"

	"github.com/weir-dev/weir/engine/vfs"
)

// Reader reads entries from the segment files in index order. It never
// returns an entry above DurableIndex, so in Sync mode it only sees what is
// fdatasynced. It is not safe for concurrent use by several goroutines.
type Reader struct {
	w      *WAL
	from   uint64
	last   uint64 // highest index returned, or from-1
	opened bool
	seg    segment
	sr     segReader
	err    error // sticky (anything but io.EOF)
}

// NewReader returns a reader of the entries with Index >= from.
func (w *WAL) NewReader(from uint64) *Reader {
	from = max(from, 1)
	return &Reader{w: w, from: from, last: from - 1}
}

// Next returns the next entry. It returns io.EOF when it has caught up with
// DurableIndex (call it again after Notify fires), ErrClosed once the WAL is
// closed and everything durable was read, an error wrapping
// ErrSegmentRemoved when the entries it needs were removed, and a
// *CorruptError for invalid data. The payload is a fresh slice owned by the
// caller.
func (r *Reader) Next() (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	for {
		limit := r.w.durable.Load()
		if r.last >= limit {
			if r.w.closed.Load() {
				if r.last >= r.w.durable.Load() {
					return Entry{}, ErrClosed
				}
				continue
			}
			return Entry{}, io.EOF
		}
		if !r.opened {
			if err := r.open(); err != nil {
				r.err = err
				return Entry{}, err
			}
		}
		off := r.sr.offset()
		fr, st, err := r.sr.peekFrame()
		if err != nil {
			r.err = fmt.Errorf("wal: read %s: %w", r.seg.path, err)
			return Entry{}, r.err
		}
		switch st {
		case frameEOF, framePartial:
			// The end of what this segment holds (a partial frame can only
			// be a write in progress above DurableIndex): go to the next one.
			ok, err := r.advance()
			if err != nil {
				r.err = err
				return Entry{}, err
			}
			if !ok {
				return Entry{}, io.EOF
			}
			continue
		case frameBadLen, frameBadCRC:
			r.err = &CorruptError{Path: r.seg.path, Offset: off, Check: st.check()}
			return Entry{}, r.err
		}
		idx := frameIndex(fr)
		if idx > limit {
			return Entry{}, io.EOF
		}
		if idx <= r.last && idx >= r.from {
			r.err = &CorruptError{Path: r.seg.path, Offset: off, Check: fmt.Sprintf("index order (index %d after %d)", idx, r.last)}
			return Entry{}, r.err
		}
		r.sr.skip(len(fr))
		if idx < r.from {
			continue
		}
		e := decodeFrame(fr)
		e.Payload = append([]byte(nil), e.Payload...)
		r.last = idx
		return e, nil
	}
}

// open opens the segment holding r.last+1.
func (r *Reader) open() error {
	segs := r.w.segmentsSnapshot()
	target := r.last + 1
	if len(segs) == 0 || (target < segs[0].first && segs[0].first > 1) {
		first := uint64(0)
		if len(segs) > 0 {
			first = segs[0].first
		}
		return fmt.Errorf("%w: want index %d, oldest segment starts at %d", ErrSegmentRemoved, target, first)
	}
	i := 0
	for j, s := range segs {
		if s.first <= target {
			i = j
		}
	}
	return r.openSeg(segs[i])
}

func (r *Reader) openSeg(s segment) error {
	f, err := r.w.fs.Open(s.path)
	if err != nil {
		if vfs.IsNotExist(err) {
			return fmt.Errorf("%w: %s", ErrSegmentRemoved, s.path)
		}
		return fmt.Errorf("wal: open %s: %w", s.path, err)
	}
	if r.sr.f != nil {
		_ = r.sr.f.Close()
	}
	r.seg = s
	r.sr.reset(f, 0)
	r.opened = true
	return nil
}

// advance moves to the segment after the current one; false if there is
// none yet.
func (r *Reader) advance() (bool, error) {
	segs := r.w.segmentsSnapshot()
	for _, s := range segs {
		if s.seq == r.seg.seq+1 {
			return true, r.openSeg(s)
		}
		if s.seq > r.seg.seq+1 {
			return false, fmt.Errorf("%w: segment after %s", ErrSegmentRemoved, r.seg.path)
		}
	}
	return false, nil
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	r.err = ErrClosed
	if r.sr.f != nil {
		err := r.sr.f.Close()
		r.sr.f = nil
		return err
	}
	return nil
}
