package wal

import (
	"encoding/binary"
	"io"

	"github.com/weir-dev/weir/engine/vfs"
)

const readBufSize = 256 << 10

// segReader reads a segment file sequentially through a buffer, with
// ReadAt, so that it can be re-polled at the end of a file that is still
// growing.
type segReader struct {
	f      vfs.File
	buf    []byte
	bufOff int64 // file offset of buf[0]
	pos    int   // next unread byte
	n      int   // valid bytes in buf
}

func (s *segReader) reset(f vfs.File, off int64) {
	s.f, s.bufOff, s.pos, s.n = f, off, 0, 0
}

// offset is the file offset of the next unread byte.
func (s *segReader) offset() int64 { return s.bufOff + int64(s.pos) }

func (s *segReader) avail() []byte { return s.buf[s.pos:s.n] }

// fill tries to make need bytes available; fewer are available at the end of
// the file.
func (s *segReader) fill(need int) error {
	if s.n-s.pos >= need {
		return nil
	}
	if s.pos > 0 {
		copy(s.buf, s.buf[s.pos:s.n])
		s.bufOff += int64(s.pos)
		s.n -= s.pos
		s.pos = 0
	}
	for s.n < need {
		if s.n == len(s.buf) {
			// Grow step by step, so that a corrupt length field costs no
			// more memory than the file really holds.
			nb := make([]byte, min(need, max(2*len(s.buf), readBufSize)))
			copy(nb, s.buf[:s.n])
			s.buf = nb
		}
		m, err := s.f.ReadAt(s.buf[s.n:], s.bufOff+int64(s.n))
		s.n += m
		if err == io.EOF || (err == nil && m == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// skip advances past n bytes, which may lie beyond the buffer.
func (s *segReader) skip(n int) {
	if n <= s.n-s.pos {
		s.pos += n
		return
	}
	s.bufOff += int64(s.pos + n)
	s.pos, s.n = 0, 0
}

// peekFrame makes the frame at the current offset available if the file
// holds it, and classifies it. For frameOK, fr is the whole frame (aliasing
// the buffer, valid until the next call).
func (s *segReader) peekFrame() (fr []byte, st frameStatus, err error) {
	if err := s.fill(headerSize); err != nil {
		return nil, 0, err
	}
	b := s.avail()
	if len(b) >= 4 {
		if l := binary.LittleEndian.Uint32(b); l >= metaSize && l <= maxLen {
			if err := s.fill(lenCRCSize + int(l)); err != nil {
				return nil, 0, err
			}
			b = s.avail()
		}
	}
	n, st := checkFrame(b)
	if st != frameOK {
		return nil, st, nil
	}
	return b[:n], frameOK, nil
}
