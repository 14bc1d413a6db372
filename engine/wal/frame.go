package wal

import (
	"encoding/binary"
	"hash/crc32"
)

const (
	headerSize  = 29 // len, crc, kind, origin, index, origin_index
	lenCRCSize  = 8  // len and crc: the bytes not counted by len
	metaSize    = headerSize - lenCRCSize
	offKind     = 8
	offOrigin   = 9
	offIndex    = 13
	offOrigIdx  = 21
	maxGapCheck = 1 << 32 // see doc.go: plausible index distance when hunting for a valid frame

	// MaxPayload is the largest payload Append accepts.
	MaxPayload = 256 << 20
	maxLen     = metaSize + MaxPayload
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putMeta writes the fixed fields kind..origin_index into b[0:metaSize].
func putMeta(b []byte, e *Entry) {
	b[0] = e.Kind
	binary.LittleEndian.PutUint32(b[1:], e.Origin)
	binary.LittleEndian.PutUint64(b[5:], e.Index)
	binary.LittleEndian.PutUint64(b[13:], e.OriginIndex)
}

// frameHeader computes the full header of e's frame.
func frameHeader(e *Entry) (h [headerSize]byte) {
	putMeta(h[lenCRCSize:], e)
	crc := crcSmall(h[lenCRCSize:])
	crc = crc32.Update(crc, castagnoli, e.Payload)
	binary.LittleEndian.PutUint32(h[0:], uint32(metaSize+len(e.Payload)))
	binary.LittleEndian.PutUint32(h[4:], crc)
	return h
}

// crcSmall is crc32.Checksum(b, castagnoli) for a few bytes, in plain Go so
// that b (a stack array in frameHeader) does not escape to the heap.
func crcSmall(b []byte) uint32 {
	crc := ^uint32(0)
	for _, v := range b {
		crc = castagnoli[byte(crc)^v] ^ (crc >> 8)
	}
	return ^crc
}

// appendFrame appends e's frame to dst.
func appendFrame(dst []byte, e *Entry) []byte {
	h := frameHeader(e)
	dst = append(dst, h[:]...)
	return append(dst, e.Payload...)
}

// frameLen returns the whole length of the frame starting at b (b holds at
// least its first 4 bytes).
func frameLen(b []byte) int { return lenCRCSize + int(binary.LittleEndian.Uint32(b)) }

func frameIndex(b []byte) uint64 { return binary.LittleEndian.Uint64(b[offIndex:]) }

// frameStatus classifies the bytes at the start of b.
type frameStatus int

const (
	frameOK      frameStatus = iota
	frameEOF                 // no bytes at all
	framePartial             // fewer bytes than the header or the length claims
	frameBadLen              // length out of range
	frameBadCRC
)

func (s frameStatus) check() string {
	switch s {
	case framePartial:
		return "truncated frame"
	case frameBadLen:
		return "length out of range"
	case frameBadCRC:
		return "crc mismatch"
	}
	return "ok"
}

// checkFrame validates the frame at the start of b; on frameOK it returns the
// frame's total length.
func checkFrame(b []byte) (int, frameStatus) {
	if len(b) == 0 {
		return 0, frameEOF
	}
	if len(b) < 4 {
		return 0, framePartial
	}
	l := binary.LittleEndian.Uint32(b)
	if l < metaSize || l > maxLen {
		return 0, frameBadLen
	}
	n := lenCRCSize + int(l)
	if len(b) < n {
		return 0, framePartial
	}
	if crc32.Checksum(b[lenCRCSize:n], castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, frameBadCRC
	}
	return n, frameOK
}

// decodeFrame decodes a frame already checked by checkFrame. The payload
// aliases b.
func decodeFrame(b []byte) Entry {
	n := frameLen(b)
	return Entry{
		Kind:        b[offKind],
		Origin:      binary.LittleEndian.Uint32(b[offOrigin:]),
		Index:       binary.LittleEndian.Uint64(b[offIndex:]),
		OriginIndex: binary.LittleEndian.Uint64(b[offOrigIdx:]),
		Payload:     b[headerSize:n:n],
	}
}

// findValidFrame reports the offset of the first position > 0 in b where a
// plausible valid frame starts: length in range and fitting in b, index in
// (prev, prev+2^32], CRC correct.
func findValidFrame(b []byte, prev uint64) (int, bool) {
	for i := 1; i+headerSize <= len(b); i++ {
		l := binary.LittleEndian.Uint32(b[i:])
		if l < metaSize || l > maxLen || i+lenCRCSize+int(l) > len(b) {
			continue
		}
		idx := binary.LittleEndian.Uint64(b[i+offIndex:])
		if idx <= prev || idx-prev > maxGapCheck {
			continue
		}
		if _, st := checkFrame(b[i:]); st == frameOK {
			return i, true
		}
	}
	return 0, false
}
