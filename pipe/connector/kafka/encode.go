package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// Header keys of every message.
const (
	HeaderDatabase = "weir.database"
	HeaderDevice   = "weir.device"
	HeaderRegion   = "weir.region"
	HeaderProgress = "weir.progress"
	HeaderKind     = "weir.kind" // "deletion" on deletion messages only
)

// setRecord makes r the record of a value, whatever it held before: field by field (a
// composite literal is built on the stack and copied, its 16-byte loads stalling on the
// 8-byte stores just made). See TestSetRecord.
func setRecord(r *kgo.Record, topic string, key, val []byte, hdr []kgo.RecordHeader, ts time.Time) {
	r.Key, r.Value, r.Headers, r.Timestamp, r.Topic = key, val, hdr, ts, topic
	r.Partition, r.Attrs, r.ProducerEpoch, r.ProducerID, r.LeaderEpoch, r.Offset = 0, kgo.RecordAttrs{}, 0, 0, 0, 0
	if r.Context != nil {
		r.Context = nil
	}
}

// stampRows is how many rows' records share a timestamp (the time they were encoded, read
// once for them: reading the clock per record costs as much as encoding one on some
// machines, and Kafka keeps milliseconds).
const stampRows = 1024

// recordOverhead bounds what a record adds to its value in a record batch (lengths,
// offsets, timestamps) and what the batch header takes, with room to spare.
const recordOverhead = 256

// Encoder turns pipe events into Kafka records: the topic from the template, the key,
// the headers and the value in the configured format. An Encoder is not safe for
// concurrent use.
type Encoder struct {
	cfg          *Config
	pipe, region string
	topics       map[[2]string]string // (database, device) → topic
	mem          memory.Allocator
	streams      map[uint64]*ipcStream // by schemaHash
	schemaHash   maphash.Hash          // zero value ready: seeded at first use
	arena        *arena                // where records and values are made (but for TsFiles)
	// drop, if set, holds hashes of rows not to send (they are in Kafka already)
	drop      rowHashes
	hasher    *rowHasher
	dropped   int64
	streaming bool // encoding a TsFile: records are not from the arena
	rows      rowEncoder
	strs      map[string][]byte // see bytes
}

// dropRows makes the rows whose hashes are in set be left out, until set is nil again.
func (en *Encoder) dropRows(set rowHashes) {
	en.drop = set
	if set != nil && en.hasher == nil {
		en.hasher = newRowHasher()
	}
}

// NewEncoder returns an encoder for the records of one task.
func NewEncoder(cfg *Config, pipeName, region string) *Encoder {
	return &Encoder{cfg: cfg, pipe: pipeName, region: region, topics: map[[2]string]string{}, mem: memory.DefaultAllocator, streams: map[uint64]*ipcStream{}, arena: &arena{}}
}

// Counts are what encoding an event produced.
type Counts struct {
	Records int64 // messages
	Bytes   int64 // key and value bytes
	Points  int64 // non-null measurement values
	Rows    int64
}

func (c *Counts) add(o Counts) {
	c.Records += o.Records
	c.Bytes += o.Bytes
	c.Points += o.Points
	c.Rows += o.Rows
}

// Reset lets the encoder reuse the memory of every record it returned so far. Call it only
// once none of them is in use any more (after a successful flush: every promise called).
func (en *Encoder) Reset() { en.arena.reset() }

// useArena makes the records from now on come from a (the connector gives each send one,
// freed when the send's records are all acknowledged).
func (en *Encoder) useArena(a *arena) { en.arena = a }

// record returns a record to be assigned whole (one from the arena holds what it held
// before). The encoder's records and values come from its arena, except while a TsFile is read:
// a file may be larger than memory, and its records must be freed as they are acknowledged
// (the client's buffer bounds them), not at the end of the send.
func (en *Encoder) record() *kgo.Record {
	if en.streaming {
		return &kgo.Record{}
	}
	return en.arena.record()
}

func (en *Encoder) room(n int) []byte {
	if en.streaming {
		return make([]byte, 0, n)
	}
	return en.arena.room(n)
}

func (en *Encoder) take(v []byte) []byte {
	if en.streaming {
		return v[:len(v):len(v)]
	}
	return en.arena.take(v)
}

// Topic returns the topic of a device's rows.
func (en *Encoder) Topic(database, device string) (string, error) {
	k := [2]string{database, device}
	if !en.cfg.Topic.Uses("device") {
		k[1] = ""
	}
	if t, ok := en.topics[k]; ok {
		return t, nil
	}
	t, err := en.cfg.Topic.Render(TemplateValues{Database: database, Device: device, Region: en.region, Pipe: en.pipe})
	if err != nil {
		return "", pipe.Permanent(fmt.Errorf("sink.topic: %w", err))
	}
	if len(en.topics) > 100_000 { // a bound for templates with {device} over very many devices
		clear(en.topics)
	}
	en.topics[k] = t
	return t, nil
}

// Event encodes e and calls emit with each record, in order. A TsFile's rows are read
// batch by batch, never whole. Heartbeats make no records, and deletions none unless the
// sink sends them.
func (en *Encoder) Event(e *pipe.Event, emit func(*kgo.Record) error) (Counts, error) {
	var n Counts
	switch e.Kind {
	case pipe.KindTablet:
		if e.Tablet == nil {
			return n, nil
		}
		return en.Rows(e.Tablet.Device, e.Tablet.Rec, e.Progress.String(), emit)
	case pipe.KindTsFile:
		return en.file(e, emit)
	case pipe.KindDeletion:
		if !en.cfg.SendDeletions || e.Deletion == nil {
			return n, nil
		}
		return en.deletion(e, emit)
	}
	return n, nil
}

func (en *Encoder) file(e *pipe.Event, emit func(*kgo.Record) error) (Counts, error) {
	var n Counts
	en.streaming = true
	defer func() { en.streaming = false }()
	f := e.File
	rd, err := f.Open()
	if err != nil {
		return n, fmt.Errorf("open %s: %w", f.Path, err)
	}
	defer rd.Close()
	progress := e.Progress.String()
	if en.cfg.SendDeletions {
		// deletions taken during the file's epoch hide older data: they go first
		for _, d := range f.Deletions {
			dd := d.Deletion
			c, err := en.deletion(&pipe.Event{Kind: pipe.KindDeletion, Deletion: &dd,
				Progress: pipe.ProgressIndex{d.Origin: d.OriginIndex}}, emit)
			n.add(c)
			if err != nil {
				return n, err
			}
		}
	}
	for _, di := range rd.Meta().Devices {
		want := f.Columns(di)
		if len(want) == 0 {
			continue
		}
		err := rd.ReadDevice(di.Device, want, f.MinTime, f.MaxTime, func(rec arrow.Record) error {
			c, err := en.Rows(di.Device, rec, progress, emit)
			n.add(c)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("read %s: %w", f.Path, err)
		}
	}
	return n, nil
}

// headers returns the headers of a device's messages (shared by them: read-only).
func (en *Encoder) headers(database, device, progress string) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderDatabase, Value: en.bytes(database)},
		{Key: HeaderDevice, Value: en.bytes(device)},
		{Key: HeaderRegion, Value: en.bytes(en.region)},
		{Key: HeaderProgress, Value: []byte(progress)},
	}
}

// bytes returns s as bytes shared by every record that needs them (read-only: keys and
// header values of databases, devices and the region).
func (en *Encoder) bytes(s string) []byte {
	if b, ok := en.strs[s]; ok {
		return b
	}
	if en.strs == nil || len(en.strs) > 100_000 { // a bound for very many devices
		en.strs = map[string][]byte{}
	}
	b := []byte(s)
	en.strs[s] = b
	return b
}

func (en *Encoder) key(database, device string) []byte {
	switch en.cfg.Key {
	case "database":
		return en.bytes(database)
	case "none":
		return nil
	}
	return en.bytes(device)
}

// Rows encodes a record of one device's rows ("time" first, then measurements): one JSON
// message per row, or Arrow IPC stream messages of as many rows as fit in max-message-bytes.
func (en *Encoder) Rows(device string, rec arrow.Record, progress string, emit func(*kgo.Record) error) (Counts, error) {
	var n Counts
	rows := int(rec.NumRows())
	if rows == 0 || rec.NumCols() < 1 {
		return n, nil
	}
	db := tsfile.Database(device)
	topic, err := en.Topic(db, device)
	if err != nil {
		return n, err
	}
	hdr := en.headers(db, device, progress)
	key := en.key(db, device)
	limit := en.cfg.MaxMessageBytes - recordOverhead - len(key) - len(device)*2 - len(db) - len(en.region) - len(progress) - 64
	for i := 1; i < int(rec.NumCols()); i++ {
		c := rec.Column(i)
		n.Points += int64(c.Len() - c.NullN())
	}
	n.Rows = int64(rows)
	if en.cfg.Format == FormatArrow {
		emitMsg := func(val []byte) error {
			n.Records++
			n.Bytes += int64(len(val) + len(key))
			r := en.record()
			*r = kgo.Record{Topic: topic, Key: key, Value: val, Headers: hdr, Timestamp: time.Now()}
			return emit(r)
		}
		var err error
		if en.drop == nil {
			err = en.arrowMessages(rec, limit, emitMsg)
		} else {
			err = en.keptRuns(device, rec, func(s arrow.Record) error { return en.arrowMessages(s, limit, emitMsg) })
		}
		if err != nil {
			return n, fmt.Errorf("device %s: %w", device, err)
		}
		return n, nil
	}
	enc := &en.rows
	if err := enc.reset(device, rec); err != nil {
		return n, err
	}
	defer enc.release()
	ts := time.Now()
	for r := 0; r < rows; r++ {
		if r&(stampRows-1) == stampRows-1 {
			ts = time.Now()
		}
		b := enc.appendRow(en.room(enc.size(r)), r)
		if en.drop != nil {
			if h, ok := en.hasher.jsonRow(b); ok {
				if _, dup := en.drop[h]; dup {
					en.dropped++
					continue // not taken: its bytes are reused
				}
			}
		}
		val := en.take(b)
		if len(val) > limit {
			return n, pipe.Permanent(fmt.Errorf("device %s time %d: a %d-byte row does not fit in max-message-bytes %d", device, enc.time[r], len(val), en.cfg.MaxMessageBytes))
		}
		rc := en.record()
		setRecord(rc, topic, key, val, hdr, ts)
		n.Records++
		n.Bytes += int64(len(val) + len(key))
		if err := emit(rc); err != nil {
			return n, err
		}
	}
	return n, nil
}

// keptRuns calls fn with the runs of rec's rows that are not to be dropped.
func (en *Encoder) keptRuns(device string, rec arrow.Record, fn func(arrow.Record) error) error {
	rows := int(rec.NumRows())
	drop := make([]bool, rows)
	for r := range drop {
		if _, dup := en.drop[en.hasher.arrowRow(device, rec, r)]; dup {
			drop[r] = true
			en.dropped++
		}
	}
	for lo := 0; lo < rows; {
		for lo < rows && drop[lo] {
			lo++
		}
		hi := lo
		for hi < rows && !drop[hi] {
			hi++
		}
		if hi > lo {
			s := rec.NewSlice(int64(lo), int64(hi))
			err := fn(s)
			s.Release()
			if err != nil {
				return err
			}
		}
		lo = hi
	}
	return nil
}

// ipcStream is a cached Arrow IPC stream writer for one schema: its schema message is
// encoded once, and each message is that, one record batch and the end-of-stream marker.
type ipcStream struct {
	sch    *arrow.Schema
	w      *ipc.Writer
	buf    bytes.Buffer
	schema []byte
}

var ipcEOS = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// schemaHash hashes most of what makes two schemas Equal (metadata, field names, type ids
// and nullability) without allocating: a stream is looked up by it, then checked with Equal.
func schemaHash(h *maphash.Hash, s *arrow.Schema) uint64 {
	h.Reset()
	md := s.Metadata()
	for i, k := range md.Keys() {
		h.WriteString(k)
		h.WriteByte(0)
		h.WriteString(md.Values()[i])
		h.WriteByte(0)
	}
	for _, f := range s.Fields() {
		h.WriteString(f.Name)
		h.WriteByte(0)
		h.WriteByte(byte(f.Type.ID())) // parameters left to Equal: Weir's types have none
		if f.Nullable {
			h.WriteByte(1)
		}
		h.WriteByte(0)
	}
	return h.Sum64()
}

func (en *Encoder) ipcStream(rec arrow.Record) (*ipcStream, error) {
	key := schemaHash(&en.schemaHash, rec.Schema())
	if st, ok := en.streams[key]; ok && st.sch.Equal(rec.Schema()) {
		return st, nil
	}
	st := &ipcStream{sch: rec.Schema()}
	st.w = ipc.NewWriter(&st.buf, ipc.WithSchema(rec.Schema()), ipc.WithAllocator(en.mem))
	empty := rec.NewSlice(0, 0) // its write puts the schema message first
	err := st.w.Write(empty)
	empty.Release()
	if err != nil {
		return nil, fmt.Errorf("arrow encode: %w", err)
	}
	b := st.buf.Bytes()
	if len(b) < 8 || binary.LittleEndian.Uint32(b) != 0xffffffff {
		return nil, errors.New("arrow encode: unexpected stream framing")
	}
	n := 8 + int(binary.LittleEndian.Uint32(b[4:]))
	if n > len(b) {
		return nil, errors.New("arrow encode: unexpected schema message length")
	}
	st.schema = bytes.Clone(b[:n])
	if len(en.streams) >= 4096 { // a bound for very many devices
		clear(en.streams)
	}
	en.streams[key] = st
	return st, nil
}

// arrowMessages emits rec as Arrow IPC streams (schema, one record batch, end) of at most
// limit bytes each, halving the rows until each fits.
func (en *Encoder) arrowMessages(rec arrow.Record, limit int, emit func([]byte) error) error {
	st, err := en.ipcStream(rec)
	if err != nil {
		return err
	}
	st.buf.Reset()
	if err := st.w.Write(rec); err != nil {
		return fmt.Errorf("arrow encode: %w", err)
	}
	size := len(st.schema) + st.buf.Len() + len(ipcEOS)
	if size <= limit {
		b := en.room(size)
		b = append(append(append(b, st.schema...), st.buf.Bytes()...), ipcEOS...)
		return emit(en.take(b))
	}
	rows := rec.NumRows()
	if rows <= 1 {
		return pipe.Permanent(fmt.Errorf("one row takes %d bytes in Arrow IPC, more than max-message-bytes allows (%d)", size, limit))
	}
	for _, half := range [][2]int64{{0, rows / 2}, {rows / 2, rows}} {
		s := rec.NewSlice(half[0], half[1])
		err := en.arrowMessages(s, limit, emit)
		s.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func (en *Encoder) deletion(e *pipe.Event, emit func(*kgo.Record) error) (Counts, error) {
	var n Counts
	d := e.Deletion
	pat := d.Pattern.String()
	db := tsfile.Database(pat)
	topic, err := en.Topic(db, "")
	if err != nil {
		return n, fmt.Errorf("deletion of %s: %w", pat, err)
	}
	progress := e.Progress.String()
	b := []byte(`{"kind":"deletion","database":`)
	b = appendJSONString(b, db)
	b = append(b, `,"pattern":`...)
	b = appendJSONString(b, pat)
	b = append(b, `,"min_time":`...)
	b = strconv.AppendInt(b, d.MinTime, 10)
	b = append(b, `,"max_time":`...)
	b = strconv.AppendInt(b, d.MaxTime, 10)
	b = append(b, `,"progress":`...)
	b = appendJSONString(b, progress)
	b = append(b, '}')
	hdr := append(en.headers(db, pat, progress), kgo.RecordHeader{Key: HeaderKind, Value: []byte("deletion")})
	key := en.key(db, pat)
	n.Records, n.Bytes = 1, int64(len(b)+len(key))
	return n, emit(&kgo.Record{Topic: topic, Key: key, Value: b, Headers: hdr})
}

// rowEncoder writes one record's rows as JSON objects. It is reused from record to
// record (reset), keeping its buffers and the JSON text of the column names it saw.
type rowEncoder struct {
	prefix []byte   // {"device":"...","time":
	short  [64]byte // prefix, when it fits: copied whole
	time   []int64
	cols   []colEncoder
	est    int
	text   bool              // a text column: size depends on the row
	names  map[string][]byte // column name → ,"name":
	times  intDigits
}

// Column kinds of a rowEncoder.
const (
	colFloat64 = iota
	colInt64
	colInt32
	colFloat32
	colBool
	colString
)

type colEncoder struct {
	name  []byte   // ,"name":
	short [16]byte // name, when it fits: copied whole
	kind  int
	nulls bool
	scale int       // floats: decimals of the previous value, or noScale
	ints  intDigits // int64s: the previous value's digits
	arr   arrow.Array
	bits  []byte // bools: the values' bitmap, from bit boff
	boff  int
	i32   []int32
	i64   []int64
	f32   []float32
	f64   []float64
	s     *array.String
}

func newRowEncoder(device string, rec arrow.Record) (*rowEncoder, error) {
	en := &rowEncoder{}
	return en, en.reset(device, rec)
}

// reset makes en encode rec's rows.
func (en *rowEncoder) reset(device string, rec arrow.Record) error {
	sc := rec.Schema()
	tc, ok := rec.Column(0).(*array.Int64)
	if !ok || sc.Field(0).Name != tsfile.TimeColumn {
		return fmt.Errorf("device %s: the first column is not an int64 %q column", device, tsfile.TimeColumn)
	}
	en.time = tc.Int64Values()
	en.prefix = append(en.prefix[:0], `{"device":`...)
	en.prefix = appendJSONString(en.prefix, device)
	en.prefix = append(en.prefix, `,"time":`...)
	copy(en.short[:], en.prefix)
	en.est = len(en.prefix) + 24 // the time and the closing brace
	en.est = max(en.est, 64)     // room for the prefix's block copy
	en.times.reset()
	en.text = false
	if en.names == nil || len(en.names) > 4096 {
		en.names = map[string][]byte{}
	}
	clear(en.cols)
	en.cols = en.cols[:0]
	for i := 1; i < int(rec.NumCols()); i++ {
		f := sc.Field(i)
		col := rec.Column(i)
		c := colEncoder{arr: col, nulls: col.NullN() > 0, scale: noScale}
		if c.name = en.names[f.Name]; c.name == nil {
			c.name = append(c.name, ',')
			c.name = appendJSONString(c.name, f.Name)
			c.name = append(c.name, ':')
			en.names[f.Name] = c.name
		}
		switch a := col.(type) {
		case *array.Boolean:
			c.kind, c.boff = colBool, a.Data().Offset()
			if buf := a.Data().Buffers()[1]; buf != nil {
				c.bits = buf.Bytes()
			}
		case *array.Int32:
			c.kind, c.i32 = colInt32, a.Int32Values()
		case *array.Int64:
			c.kind, c.i64 = colInt64, a.Int64Values()
		case *array.Float32:
			c.kind, c.f32 = colFloat32, a.Float32Values()
		case *array.Float64:
			c.kind, c.f64 = colFloat64, a.Float64Values()
		case *array.String:
			c.kind, c.s = colString, a
			en.text = true
		default:
			clear(en.cols)
			en.cols = en.cols[:0]
			return fmt.Errorf("device %s: column %s has type %s, not a Weir measurement type", device, f.Name, f.Type)
		}
		copy(c.short[:], c.name)
		en.est += len(c.name) + 32 // the longest number, bool or null; a text's quotes
		en.cols = append(en.cols, c)
	}
	return nil
}

// release drops the references to the record's arrays.
func (en *rowEncoder) release() {
	en.time = nil
	clear(en.cols)
	en.cols = en.cols[:0]
}

// size bounds the bytes of row r's JSON: the fixed part's estimate and, for text values,
// six bytes a byte (the longest escape).
func (en *rowEncoder) size(r int) int {
	n := en.est
	if !en.text {
		return n
	}
	for i := range en.cols {
		if s := en.cols[i].s; s != nil {
			n += 6 * s.ValueLen(r)
		}
	}
	return n
}

// appendRow appends row r's JSON; b must have room for size(r) more bytes.
func (en *rowEncoder) appendRow(b []byte, r int) []byte {
	if l, p := len(b), len(en.prefix); p <= 64 && cap(b)-l >= 64 {
		d, p64 := b[l:l+64], &en.short // within the room of the row, in 16-byte moves
		*(*[16]byte)(d[0:16]) = *(*[16]byte)(p64[0:16])
		*(*[16]byte)(d[16:32]) = *(*[16]byte)(p64[16:32])
		*(*[16]byte)(d[32:48]) = *(*[16]byte)(p64[32:48])
		*(*[16]byte)(d[48:64]) = *(*[16]byte)(p64[48:64])
		b = b[:l+p]
	} else {
		b = append(b, en.prefix...)
	}
	b = en.times.appendInt(b, en.time[r])
	for i := range en.cols {
		c := &en.cols[i]
		if c.nulls && c.arr.IsNull(r) {
			continue
		}
		if l := len(b); len(c.name) <= len(c.short) && cap(b)-l >= len(c.short) {
			*(*[16]byte)(b[l : l+16]) = c.short // within the room of this column's value
			b = b[:l+len(c.name)]
		} else {
			b = append(b, c.name...)
		}
		switch c.kind {
		case colFloat64:
			b = c.appendF64(b, c.f64[r])
		case colInt64:
			b = c.ints.appendInt(b, c.i64[r])
		case colInt32:
			b = appendInt(b, int64(c.i32[r]))
		case colFloat32:
			b = c.appendF32(b, c.f32[r])
		case colBool:
			i := c.boff + r
			v := c.bits[i>>3] >> (i & 7) & 1
			if l := len(b); cap(b)-l >= 8 { // "true" or "false" in one 8-byte store
				*(*[8]byte)(b[l : l+8]) = boolWords[v]
				b = b[:l+5-int(v)]
			} else {
				b = append(b, boolWords[v][:5-v]...)
			}
		case colString:
			b = appendJSONString(b, c.s.Value(r))
		}
	}
	return append(b, '}')
}

// boolWords[v] is the JSON text of bit v, padded to a word (a store of 8 bytes).
var boolWords = [2][8]byte{{'f', 'a', 'l', 's', 'e'}, {'t', 'r', 'u', 'e'}}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

var pow10u = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
	1e15, 1e16, 1e17, 1e18, 1e19}

// decimalLen returns the number of decimal digits of u.
func decimalLen(u uint64) int {
	n := (bits.Len64(u) * 1233) >> 12 // ≈ log10, low by at most one
	if n < len(pow10u) && u >= pow10u[n] {
		n++
	}
	return max(n, 1)
}

// appendInt is strconv.AppendInt(b, v, 10), writing the digits in place.
func appendInt(b []byte, v int64) []byte {
	if uint64(v) < 10 {
		return append(b, byte('0'+v))
	}
	u := uint64(v)
	if v < 0 {
		b = append(b, '-')
		u = -u
	}
	return appendUint(b, u)
}

// appendUint is strconv.AppendUint(b, u, 10), writing the digits in place.
func appendUint(b []byte, u uint64) []byte {
	n := decimalLen(u)
	l := len(b)
	if u < 1e8 && cap(b)-l >= 8 {
		binary.LittleEndian.PutUint64(b[l:l+8], digitWord(uint32(u))>>(8*(8-n)))
		return b[:l+n]
	}
	b = slices.Grow(b, n)[:l+n]
	putDigits(b[l:], u)
	return b
}

// putDigits writes u's decimal digits right-aligned in d, which has room for exactly them.
func putDigits(d []byte, u uint64) {
	i := len(d)
	if u >= 1e8 && i >= 8 { // the low 8 digits in 32-bit steps, independent of the rest
		lo := uint32(u % 1e8)
		u /= 1e8
		for range 4 {
			q := lo / 100
			j := (lo - q*100) * 2
			i -= 2
			d[i], d[i+1] = digitPairs[j], digitPairs[j+1]
			lo = q
		}
	}
	for u >= 100 {
		q := u / 100
		j := (u - q*100) * 2
		i -= 2
		d[i], d[i+1] = digitPairs[j], digitPairs[j+1]
		u = q
	}
	if u >= 10 {
		d[i-2], d[i-1] = digitPairs[2*u], digitPairs[2*u+1]
	} else {
		d[i-1] = byte('0' + u)
	}
}

// appendFloat writes a JSON number (NaN and infinities, which JSON lacks, as null): the
// text of strconv.AppendFloat(b, f, 'g', -1, bits), the shortest that reads back as f.
func appendFloat(b []byte, f float64, bits int) []byte {
	if bits == 32 {
		if d, ok := shortDecimal32(float32(f)); ok {
			return appendScaled(b, f < 0, d)
		}
	} else if d, ok := shortDecimal64(f); ok {
		return appendScaled(b, f < 0, d)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// decimal is m·10⁻ᵏ, m of n digits.
type decimal struct {
	m    uint64
	k, n int
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// decades[i] is 10^(i-4): exp10 of a in [1e-4, 1e6) is the e with 10^e ≤ a < 10^(e+1)
// (off by one at worst where a decade's bound is not exact in binary, which the callers
// detect: their digit counts are checked).
var decades = [...]float64{1e-4, 1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4, 1e5}

func exp10(a float64) int {
	i := 9
	for i > 0 && a < decades[i] {
		i--
	}
	return i - 4
}

// shortDecimal64 finds the shortest decimal that reads back as |f|, for the values that
// 'g' writes without an exponent (1e-4 ≤ |f| < 1e6) and whose shortest form has at most 15
// digits (measurements mostly do); ok is false for the others, left to strconv.
//
// m is |f| rounded to 15 digits, computed within 0.12 (|f|·10ᵏ < 1e15); the decimals that
// read back as f span less than 0.25 at this scale, so a shorter one, padded to 15 digits,
// can only be m. m·10⁻ᵏ reads back as f exactly when m/10ᵏ (a correctly rounded division of
// exact values) is f; then m without its trailing zeros is strconv's shortest.
func shortDecimal64(f float64) (d decimal, ok bool) {
	a := math.Abs(f)
	if !(a >= 1e-4 && a < 1e6) { // also NaN
		return d, false
	}
	k := 14 - exp10(a)
	x := float64(int64(a*pow10[k] + 0.5)) // rounded: positive, below 2⁶³
	if x < 1e14 || x >= 1e15 || x/pow10[k] != a {
		return d, false
	}
	return stripZeros(decimal{uint64(x), k, 15}), true
}

// shortDecimal32 is shortDecimal64 for a float32, read back as a float32. For p digits, the
// decimals of p digits that read back as f are the integers in (lo, hi), the bounds of f's
// rounding interval times 10ᵏ, exact in a float64. The smallest p that has one gives the
// shortest, and of several the one nearest f (strconv's choice), |f|·10ᵏ rounded. Most
// float32s need 7 digits: that is tried first, with a look for a shorter one (a multiple of
// 10 in the interval). Ties and bounds that are integers are left to strconv.
func shortDecimal32(f float32) (d decimal, ok bool) {
	fb := math.Float32bits(f) &^ (1 << 31)
	a := math.Float32frombits(fb)
	if !(a >= 1e-4 && a < 1e6) { // normal, so an ulp is 2^(exponent-150)
		return d, false
	}
	af := float64(a)
	hiHalf := math.Float64frombits(uint64(int(fb>>23)-151+1023) << 52) // half the gap to the next float32
	loHalf := hiHalf                                                   // and to the previous one
	if fb&(1<<23-1) == 0 {
		loHalf /= 2 // a power of two: the previous float32 is closer
	}
	k0 := -1 - exp10(af) // k = p + k0 for p digits
	// 7 digits, unless the interval holds a multiple of 10 there: then 6 digits or fewer
	if k := 7 + k0; k >= 0 && k <= 11 {
		s := pow10[k]
		lo, hi := (af-loHalf)*s, (af+hiHalf)*s
		ilo, ihi := int64(lo), int64(hi) // floors: positive
		if ihi/10 == ilo/10 {
			if ilo < ihi {
				return nearest(af*s, lo, hi, k, 7)
			}
			for p := 8; p <= 9; p++ {
				if d, found, ok := digits32(af, loHalf, hiHalf, p+k0, p); found || !ok {
					return d, found
				}
			}
			return d, false
		}
	}
	for p := 6; p <= 9; p++ {
		if d, found, ok := digits32(af, loHalf, hiHalf, p+k0, p); found || !ok {
			return d, found
		}
	}
	return d, false
}

// digits32 looks for the decimals of p digits (k after the point) that read back as the
// float32 af, whose rounding interval is (af-loHalf, af+hiHalf): found is whether there is
// one (d, the nearest), ok false when strconv must decide.
func digits32(af, loHalf, hiHalf float64, k, p int) (d decimal, found, ok bool) {
	if k > 11 || k < 0 { // past 11, the bounds are not exact in a float64
		return d, false, false
	}
	s := pow10[k]
	lo, hi := (af-loHalf)*s, (af+hiHalf)*s
	if int64(lo) == int64(hi) && float64(int64(lo)) != lo {
		return d, false, true // no integer in (lo, hi)
	}
	d, found = nearest(af*s, lo, hi, k, p)
	return d, found, found
}

// nearest returns x rounded, of p digits, if it is in (lo, hi) (exact bounds, x the exact
// value scaled by 10ᵏ): strconv's choice when the interval holds integers.
func nearest(x, lo, hi float64, k, p int) (d decimal, ok bool) {
	ilo, ihi := int64(lo), int64(hi)
	r := int64(x + 0.5)
	if float64(ilo) == lo || float64(ihi) == hi || float64(r)-x == 0.5 || float64(r) <= lo || float64(r) >= hi ||
		uint64(r) < pow10u[p-1] || uint64(r) >= pow10u[p] {
		return d, false
	}
	return stripZeros(decimal{uint64(r), k, p}), true
}

// stripZeros removes the trailing zeros of d's fraction.
func stripZeros(d decimal) decimal {
	if d.k >= 8 && d.m%1e8 == 0 {
		d.m, d.k, d.n = d.m/1e8, d.k-8, d.n-8
	}
	if d.k >= 4 && d.m%1e4 == 0 {
		d.m, d.k, d.n = d.m/1e4, d.k-4, d.n-4
	}
	if d.k >= 2 && d.m%100 == 0 {
		d.m, d.k, d.n = d.m/100, d.k-2, d.n-2
	}
	if d.k >= 1 && d.m%10 == 0 {
		d.m, d.k, d.n = d.m/10, d.k-1, d.n-1
	}
	return d
}

// appendScaled writes d (negative if neg) in plain decimal notation.
func appendScaled(b []byte, neg bool, d decimal) []byte {
	if neg {
		b = append(b, '-')
	}
	m, k, n := d.m, d.k, d.n
	if k == 0 {
		l := len(b)
		b = slices.Grow(b, n)[:l+n]
		putDigits(b[l:], m)
		return b
	}
	if n > k { // ddd.ddd
		l := len(b)
		b = slices.Grow(b, n+1)[:l+n+1]
		d := b[l:]
		i := len(d)
		for range k {
			q := m / 10
			i--
			d[i] = byte('0' + m - q*10)
			m = q
		}
		i--
		d[i] = '.'
		putDigits(d[:i], m)
		return b
	}
	b = append(b, '0', '.')
	for i := n; i < k; i++ {
		b = append(b, '0')
	}
	l := len(b)
	b = slices.Grow(b, n)[:l+n]
	putDigits(b[l:], m)
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
