// Package peerwire is the wire protocol between the peer sink (package
// pipe/connector/peer) and the receiver (package pipe/receiver): one Arrow Flight
// DoExchange stream per (pipe, sender region), carrying FlightData messages whose
// app_metadata is a Msg encoded by this package.
//
// # The exchange
//
// The sender opens a DoExchange stream and sends, in this order:
//
//	Hello                       who is sending: pipe, region, database, origin
//	                            ← Welcome: the target region's progress and the partial
//	                              files the receiver holds for this (pipe, sender)
//	events, in commit order:
//	  Schema  the columns (name, type) of the tablets that follow with its id, before the first
//	  Tablet  (data_header + data_body: an Arrow IPC RecordBatch message of that schema)
//	  Deletion
//	  FileBegin, FileChunk × n (data_body: the bytes at Offset), FileEnd
//	                            ← Ack{Through: seq} whenever events are applied
//
// Every event carries a sequence number (Seq, from 1 per stream) and the pipe's commit id;
// the receiver applies events in stream order and acknowledges the highest applied Seq.
// It skips an event that its region's progress already covers, so redelivery after a
// reconnect is harmless. A file is sent as chunks, each with its own CRC32C; the receiver
// appends a chunk only once its CRC matched, and loads the file only once the whole file's
// size and CRC32C match FileBegin. After a reconnect the Welcome lists how many bytes of
// each partial file the receiver holds, and the sender resumes at that offset.
//
// # Encoding
//
// A Msg is 'W', a version byte (1), a type byte, then the type's fields in a fixed order:
// unsigned integers as uvarints, signed ones as zig-zag varints, strings as a uvarint
// length and bytes, progress as a uvarint count of (origin, index) pairs.
package peerwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/weir-dev/weir/tsfile"
)

// WindowSize is the HTTP/2 stream flow-control window both ends use (the connection's is
// twice this): large enough to keep a file transfer streaming over a fast link.
const WindowSize = 8 << 20

// DatabaseOf returns the database of a region name written "database/partition" (as the
// node names regions: root.demo/0 → root.demo), or the name itself when it is a database
// (root.demo); otherwise "".
func DatabaseOf(region string) string {
	db := region
	if i := strings.LastIndexByte(region, '/'); i >= 0 {
		db = region[:i]
	}
	if tsfile.ValidateDevice(db) != nil || tsfile.Database(db) != db {
		return ""
	}
	return db
}

// Version is the protocol version carried by every message.
const Version = 1

// Type says what a message is.
type Type uint8

// Message types: sender → receiver first, then receiver → sender.
const (
	TypeHello     Type = 1
	TypeSchema    Type = 2
	TypeTablet    Type = 3
	TypeDeletion  Type = 4
	TypeFileBegin Type = 5
	TypeFileChunk Type = 6
	TypeFileEnd   Type = 7

	TypeWelcome Type = 16
	TypeAck     Type = 17
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeSchema:
		return "schema"
	case TypeTablet:
		return "tablet"
	case TypeDeletion:
		return "deletion"
	case TypeFileBegin:
		return "file-begin"
	case TypeFileChunk:
		return "file-chunk"
	case TypeFileEnd:
		return "file-end"
	case TypeWelcome:
		return "welcome"
	case TypeAck:
		return "ack"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Limits of a decoded message, so that garbage cannot make the receiver allocate much.
const (
	MaxString    = 64 << 10
	MaxProgress  = 1 << 16
	MaxDeletions = 1 << 16
	MaxPartials  = 1 << 10
	MaxColumns   = 1 << 14
)

// Deletion is a deletion that travels with a file (applied before it, unless covered).
type Deletion struct {
	Origin           uint32
	OriginIndex      uint64
	Pattern          string
	MinTime, MaxTime int64
}

// Column is a tablet column after time: its name and its tsfile.DataType.
type Column struct {
	Name string
	Type tsfile.DataType
}

// Partial is a file the receiver holds in part: its id and how many bytes it has.
type Partial struct {
	FileID string
	Have   int64
}

// Msg is one message's app_metadata. Which fields a type uses:
//
//	Hello:     Pipe, Region, Database, Origin (the sender region's origin), Sender
//	Schema:    SchemaID, Reset (forget every schema before this one), Columns (after time)
//	Tablet:    Seq, Commit, Origin, OriginIndex, Progress, Device, SchemaID
//	Deletion:  Seq, Commit, Origin, OriginIndex, Progress, Pattern, MinTime, MaxTime
//	FileBegin: Seq, Commit, Progress, FileID, Name, Size, CRC (whole file), Offset, Deletions
//	FileChunk: Seq, Offset, CRC (of the chunk)
//	FileEnd:   Seq
//	Welcome:   Progress (the target region's), Partials
//	Ack:       Through (highest Seq applied)
type Msg struct {
	Type Type

	Pipe, Region, Database, Sender string

	Seq, Commit uint64
	Origin      uint32
	OriginIndex uint64
	Progress    map[uint32]uint64

	Device   string
	SchemaID uint32
	Reset    bool
	Columns  []Column

	Pattern          string
	MinTime, MaxTime int64

	FileID, Name string
	Size, Offset int64
	CRC          uint32
	Deletions    []Deletion

	Partials []Partial
	Through  uint64
}

type enc []byte

func (e enc) u(v uint64) enc { return binary.AppendUvarint(e, v) }
func (e enc) i(v int64) enc  { return binary.AppendVarint(e, v) }
func (e enc) s(v string) enc { return append(e.u(uint64(len(v))), v...) }
func (e enc) b(v bool) enc {
	if v {
		return e.u(1)
	}
	return e.u(0)
}
func (e enc) p(m map[uint32]uint64) enc {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	e = e.u(uint64(len(keys)))
	for _, k := range keys {
		e = e.u(uint64(k)).u(m[k])
	}
	return e
}

// Append appends m's encoding to dst.
func (m *Msg) Append(dst []byte) []byte {
	e := enc(append(dst, 'W', Version, byte(m.Type)))
	switch m.Type {
	case TypeHello:
		e = e.s(m.Pipe).s(m.Region).s(m.Database).u(uint64(m.Origin)).s(m.Sender)
	case TypeSchema:
		e = e.u(uint64(m.SchemaID)).b(m.Reset).u(uint64(len(m.Columns)))
		for _, c := range m.Columns {
			e = e.s(c.Name).u(uint64(uint8(c.Type)))
		}
	case TypeTablet:
		e = e.u(m.Seq).u(m.Commit).u(uint64(m.Origin)).u(m.OriginIndex).p(m.Progress).s(m.Device).u(uint64(m.SchemaID))
	case TypeDeletion:
		e = e.u(m.Seq).u(m.Commit).u(uint64(m.Origin)).u(m.OriginIndex).p(m.Progress).s(m.Pattern).i(m.MinTime).i(m.MaxTime)
	case TypeFileBegin:
		e = e.u(m.Seq).u(m.Commit).p(m.Progress).s(m.FileID).s(m.Name).i(m.Size).u(uint64(m.CRC)).i(m.Offset)
		e = e.u(uint64(len(m.Deletions)))
		for _, d := range m.Deletions {
			e = e.u(uint64(d.Origin)).u(d.OriginIndex).s(d.Pattern).i(d.MinTime).i(d.MaxTime)
		}
	case TypeFileChunk:
		e = e.u(m.Seq).i(m.Offset).u(uint64(m.CRC))
	case TypeFileEnd:
		e = e.u(m.Seq)
	case TypeWelcome:
		e = e.p(m.Progress).u(uint64(len(m.Partials)))
		for _, p := range m.Partials {
			e = e.s(p.FileID).i(p.Have)
		}
	case TypeAck:
		e = e.u(m.Through)
	}
	return e
}

// Encode returns m's encoding.
func (m *Msg) Encode() []byte { return m.Append(nil) }

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed peer message")

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrMalformed, what)
	}
}

func (d *dec) u(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u32(what string) uint32 {
	v := d.u(what)
	if v > 1<<32-1 {
		d.fail(what)
		return 0
	}
	return uint32(v)
}

func (d *dec) i(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) count(what string, limit int) int {
	n := d.u(what)
	if n > uint64(limit) || n > uint64(len(d.b)) { // every element takes at least a byte
		d.fail(what)
		return 0
	}
	return int(n)
}

func (d *dec) s(what string) string {
	n := d.count(what, MaxString)
	if d.err != nil {
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) b1(what string) bool {
	switch d.u(what) {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(what)
	return false
}

func (d *dec) p(what string) map[uint32]uint64 {
	n := d.count(what, MaxProgress)
	if d.err != nil {
		return nil
	}
	m := make(map[uint32]uint64, n)
	for k := 0; k < n; k++ {
		o := d.u32(what)
		v := d.u(what)
		if _, dup := m[o]; dup {
			d.fail(what)
		}
		m[o] = v
	}
	return m
}

// Decode parses an encoded message; every error wraps ErrMalformed.
func Decode(b []byte) (*Msg, error) {
	if len(b) < 3 || b[0] != 'W' {
		return nil, fmt.Errorf("%w: not a peer message", ErrMalformed)
	}
	if b[1] != Version {
		return nil, fmt.Errorf("%w: protocol version %d, want %d", ErrMalformed, b[1], Version)
	}
	m := &Msg{Type: Type(b[2])}
	d := &dec{b: b[3:]}
	switch m.Type {
	case TypeHello:
		m.Pipe, m.Region, m.Database = d.s("pipe"), d.s("region"), d.s("database")
		m.Origin, m.Sender = d.u32("origin"), d.s("sender")
	case TypeSchema:
		m.SchemaID, m.Reset = d.u32("schema id"), d.b1("reset")
		n := d.count("columns", MaxColumns)
		for k := 0; k < n && d.err == nil; k++ {
			name, t := d.s("column name"), d.u("column type")
			m.Columns = append(m.Columns, Column{Name: name, Type: tsfile.DataType(int8(t))})
			if t > 127 || !tsfile.DataType(int8(t)).Valid() {
				d.fail("column type")
			}
		}
	case TypeTablet:
		m.Seq, m.Commit, m.Origin, m.OriginIndex = d.u("seq"), d.u("commit"), d.u32("origin"), d.u("origin index")
		m.Progress, m.Device, m.SchemaID = d.p("progress"), d.s("device"), d.u32("schema id")
	case TypeDeletion:
		m.Seq, m.Commit, m.Origin, m.OriginIndex = d.u("seq"), d.u("commit"), d.u32("origin"), d.u("origin index")
		m.Progress, m.Pattern, m.MinTime, m.MaxTime = d.p("progress"), d.s("pattern"), d.i("min time"), d.i("max time")
	case TypeFileBegin:
		m.Seq, m.Commit, m.Progress = d.u("seq"), d.u("commit"), d.p("progress")
		m.FileID, m.Name, m.Size, m.CRC, m.Offset = d.s("file id"), d.s("name"), d.i("size"), d.u32("crc"), d.i("offset")
		n := d.count("deletions", MaxDeletions)
		for k := 0; k < n && d.err == nil; k++ {
			m.Deletions = append(m.Deletions, Deletion{Origin: d.u32("deletion origin"), OriginIndex: d.u("deletion origin index"),
				Pattern: d.s("deletion pattern"), MinTime: d.i("deletion min time"), MaxTime: d.i("deletion max time")})
		}
	case TypeFileChunk:
		m.Seq, m.Offset, m.CRC = d.u("seq"), d.i("offset"), d.u32("crc")
	case TypeFileEnd:
		m.Seq = d.u("seq")
	case TypeWelcome:
		m.Progress = d.p("progress")
		n := d.count("partials", MaxPartials)
		for k := 0; k < n && d.err == nil; k++ {
			m.Partials = append(m.Partials, Partial{FileID: d.s("file id"), Have: d.i("have")})
		}
	case TypeAck:
		m.Through = d.u("through")
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, b[2])
	}
	if d.err != nil {
		return nil, fmt.Errorf("%s: %w", m.Type, d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%s: %w: %d trailing bytes", m.Type, ErrMalformed, len(d.b))
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", m.Type, ErrMalformed, err)
	}
	return m, nil
}

// check validates field values beyond their encoding.
func (m *Msg) check() error {
	switch m.Type {
	case TypeFileBegin:
		if m.Size < 0 || m.Offset < 0 || m.Offset > m.Size {
			return fmt.Errorf("offset %d and size %d", m.Offset, m.Size)
		}
		if m.FileID == "" {
			return errors.New("empty file id")
		}
	case TypeFileChunk:
		if m.Offset < 0 {
			return fmt.Errorf("offset %d", m.Offset)
		}
	case TypeWelcome:
		for _, p := range m.Partials {
			if p.Have < 0 {
				return fmt.Errorf("partial %s has %d bytes", p.FileID, p.Have)
			}
		}
	}
	if m.Type != TypeHello && m.Type != TypeSchema && m.Type != TypeWelcome && m.Type != TypeAck && m.Seq == 0 {
		return errors.New("seq 0")
	}
	return nil
}
