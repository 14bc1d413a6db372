package receiver

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/flight"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/weir-dev/weir/pipe/peerwire"
	"github.com/weir-dev/weir/tsfile"
)

// maxSchemas bounds the schemas one stream may declare before it resets them.
const maxSchemas = 1 << 14

// schemaSet holds a stream's schemas by id, each with an Arrow IPC reader that decodes the
// record batches of that schema one message at a time. Schemas arrive as column lists and
// are built here: no schema bytes from the wire reach Arrow's decoder, and record batches
// decode through an allocator with a budget, so garbage cannot make the node allocate more
// than that budget.
type schemaSet struct {
	m     map[uint32]*schemaReader
	alloc *budgetAlloc
}

type schemaReader struct {
	schema *arrow.Schema
	feed   *feed
	rd     *ipc.Reader // for compressed batches
}

// feed is an ipc.MessageReader that yields the one message put in it.
type feed struct{ msg *ipc.Message }

var errNoMessage = errors.New("no message")

func (f *feed) Message() (*ipc.Message, error) {
	m := f.msg
	f.msg = nil
	if m == nil {
		return nil, errNoMessage
	}
	return m, nil
}
func (f *feed) Retain()  {}
func (f *feed) Release() {}

// budgetAlloc refuses (by panicking, which the IPC reader recovers) allocations past what
// is left of its budget; the budget is reset before each record batch.
type budgetAlloc struct {
	left int
	mem  memory.Allocator
}

type budgetError struct{ size, left int }

func (e budgetError) Error() string {
	return fmt.Sprintf("record batch needs more than the %d bytes left of its budget (asked %d)", e.left, e.size)
}

func (a *budgetAlloc) Allocate(size int) []byte {
	if size < 0 || size > a.left {
		panic(budgetError{size, a.left})
	}
	a.left -= size
	return a.mem.Allocate(size)
}

func (a *budgetAlloc) Reallocate(size int, b []byte) []byte {
	if grow := size - len(b); size < 0 || grow > a.left {
		panic(budgetError{size, a.left})
	} else if grow > 0 {
		a.left -= grow
	}
	return a.mem.Reallocate(size, b)
}

func (a *budgetAlloc) Free(b []byte) { a.mem.Free(b) }

func newSchemaSet(budget int) *schemaSet {
	return &schemaSet{m: map[uint32]*schemaReader{}, alloc: &budgetAlloc{left: budget, mem: memory.DefaultAllocator}}
}

func (s *schemaSet) release() {
	for id, r := range s.m {
		r.rd.Release()
		delete(s.m, id)
	}
}

// message wraps IPC metadata and body, refusing what would make Arrow panic.
func message(header, body []byte) (msg *ipc.Message, err error) {
	if len(header) < 8 {
		return nil, fmt.Errorf("IPC message header of %d bytes", len(header))
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("IPC message header: %v", r)
		}
	}()
	msg = ipc.NewMessage(memory.NewBufferBytes(header), memory.NewBufferBytes(body))
	_ = msg.Type() // parses the flatbuffer root
	return msg, nil
}

// tabletSchema builds the Arrow schema of a tablet: time, then the columns.
func tabletSchema(cols []peerwire.Column) (*arrow.Schema, error) {
	if len(cols) == 0 {
		return nil, errors.New("no columns")
	}
	fields := make([]arrow.Field, 0, len(cols)+1)
	fields = append(fields, arrow.Field{Name: tsfile.TimeColumn, Type: arrow.PrimitiveTypes.Int64})
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if err := tsfile.ValidateMeasurement(c.Name); err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("column %q twice", c.Name)
		}
		seen[c.Name] = true
		if !c.Type.Valid() {
			return nil, fmt.Errorf("column %q: type %d", c.Name, c.Type)
		}
		fields = append(fields, arrow.Field{Name: c.Name, Type: c.Type.ArrowType(), Nullable: true})
	}
	return arrow.NewSchema(fields, nil), nil
}

func (s *schemaSet) add(m *peerwire.Msg) error {
	if m.Reset {
		s.release()
	}
	if _, dup := s.m[m.SchemaID]; dup {
		return badInput("schema %d declared twice", m.SchemaID)
	}
	if len(s.m) >= maxSchemas {
		return badInput("more than %d schemas without a reset", maxSchemas)
	}
	sc, err := tabletSchema(m.Columns)
	if err != nil {
		return badInput("schema %d: %w", m.SchemaID, err)
	}
	// the IPC reader starts from a schema message: ours, serialized here
	mr := ipc.NewMessageReader(bytes.NewReader(flight.SerializeSchema(sc, memory.DefaultAllocator)))
	defer mr.Release()
	msg, err := mr.Message()
	if err != nil {
		return fmt.Errorf("schema %d: %w", m.SchemaID, err)
	}
	f := &feed{msg: msg}
	rd, err := ipc.NewReaderFromMessageReader(f, ipc.WithAllocator(s.alloc))
	if err != nil {
		return fmt.Errorf("schema %d: %w", m.SchemaID, err)
	}
	s.m[m.SchemaID] = &schemaReader{schema: sc, feed: f, rd: rd}
	return nil
}

// decode reads one record batch of schema id; the caller owns the record. An uncompressed
// batch is used in place: its arrays point into body (which must not change afterwards);
// a compressed one is decompressed by Arrow's reader within budget bytes.
func (s *schemaSet) decode(id uint32, header, body []byte, budget int) (arrow.Record, error) {
	r := s.m[id]
	if r == nil {
		return nil, fmt.Errorf("schema %d was never declared", id)
	}
	rb, err := parseRecordBatch(header)
	if err != nil {
		return nil, err
	}
	if !rb.compressed {
		rec, err := inPlace(r.schema, rb, body)
		if err != nil {
			return nil, err
		}
		if err := checkRecord(rec); err != nil {
			rec.Release()
			return nil, err
		}
		return rec, nil
	}
	msg, err := message(header, body)
	if err != nil {
		return nil, err
	}
	defer msg.Release()
	r.feed.msg = msg
	s.alloc.left = budget
	if !r.rd.Next() {
		err := r.rd.Err()
		delete(s.m, id) // a failed reader stays failed
		r.rd.Release()
		if err == nil {
			err = errors.New("no record")
		}
		return nil, err
	}
	rec := r.rd.Record()
	if err := checkRecord(rec); err != nil {
		return nil, err
	}
	rec.Retain()
	return rec, nil
}

// recordBatch is what the receiver reads of an IPC RecordBatch message header.
type recordBatch struct {
	length     int64
	nodes      [][2]int64 // length, null count
	buffers    [][2]int64 // offset, length in the body
	compressed bool
}

// parseRecordBatch reads an IPC Message flatbuffer holding a RecordBatch. Flatbuffers are
// read without bounds checks, so a panic on garbage is recovered as an error.
func parseRecordBatch(header []byte) (rb recordBatch, err error) {
	if len(header) < 8 {
		return rb, fmt.Errorf("IPC message header of %d bytes", len(header))
	}
	defer func() {
		if r := recover(); r != nil {
			rb, err = recordBatch{}, fmt.Errorf("IPC message header: %v", r)
		}
	}()
	msg := flatbuffers.Table{Bytes: header, Pos: flatbuffers.GetUOffsetT(header)}
	o := flatbuffers.UOffsetT(msg.Offset(6))   // Message.header_type
	if o == 0 || msg.GetByte(msg.Pos+o) != 3 { // MessageHeader.RecordBatch
		return rb, errors.New("IPC message is not a record batch")
	}
	if o = flatbuffers.UOffsetT(msg.Offset(8)); o == 0 { // Message.header
		return rb, errors.New("IPC record batch message without its header")
	}
	var t flatbuffers.Table
	msg.Union(&t, o)
	if o = flatbuffers.UOffsetT(t.Offset(4)); o != 0 { // RecordBatch.length
		rb.length = t.GetInt64(t.Pos + o)
	}
	vec := func(slot flatbuffers.VOffsetT) [][2]int64 {
		o := flatbuffers.UOffsetT(t.Offset(slot))
		if o == 0 {
			return nil
		}
		start, n := t.Vector(o), t.VectorLen(o)
		if n < 0 || n > maxBuffers || int(start)+16*n > len(header) {
			panic(fmt.Sprintf("vector of %d structs", n))
		}
		out := make([][2]int64, n)
		for i := range out {
			p := start + flatbuffers.UOffsetT(16*i)
			out[i] = [2]int64{t.GetInt64(p), t.GetInt64(p + 8)}
		}
		return out
	}
	rb.nodes = vec(6)                 // RecordBatch.nodes: FieldNode{length, null_count}
	rb.buffers = vec(8)               // RecordBatch.buffers: Buffer{offset, length}
	rb.compressed = t.Offset(10) != 0 // RecordBatch.compression
	return rb, nil
}

// maxBuffers bounds the field nodes and buffers of a record batch (3 per column at most).
const maxBuffers = 3 * (1 << 14)

// inPlace builds the record of an uncompressed batch on body's bytes. Arrow checks some
// buffers as it wraps them (string offsets), panicking: that is recovered as an error.
func inPlace(sc *arrow.Schema, rb recordBatch, body []byte) (rec arrow.Record, err error) {
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, fmt.Errorf("record batch: %v", r)
		}
	}()
	fields := sc.Fields()
	if len(rb.nodes) != len(fields) {
		return nil, fmt.Errorf("record batch of %d columns for a schema of %d", len(rb.nodes), len(fields))
	}
	if rb.length <= 0 || rb.length > 1<<31 {
		return nil, fmt.Errorf("record batch of %d rows", rb.length)
	}
	if len(body) > 0 && uintptr(unsafe.Pointer(&body[0]))%8 != 0 {
		body = append(make([]byte, 0, len(body)), body...) // Arrow reads values in place: align them
	}
	cols := make([]arrow.Array, 0, len(fields))
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	next := 0
	buffer := func() (*memory.Buffer, error) {
		if next >= len(rb.buffers) {
			return nil, errors.New("record batch has too few buffers")
		}
		off, n := rb.buffers[next][0], rb.buffers[next][1]
		next++
		if off < 0 || n < 0 || off > int64(len(body)) || n > int64(len(body))-off {
			return nil, fmt.Errorf("buffer [%d, +%d) outside the %d-byte body", off, n, len(body))
		}
		if n == 0 {
			return nil, nil
		}
		b := body[off : off+n : off+n]
		if off%8 != 0 {
			b = append([]byte(nil), b...)
		}
		return memory.NewBufferBytes(b), nil
	}
	for i, f := range fields {
		node := rb.nodes[i]
		if node[0] != rb.length || node[1] < 0 || node[1] > node[0] {
			return nil, fmt.Errorf("column %s: %d rows, %d nulls in a batch of %d rows", f.Name, node[0], node[1], rb.length)
		}
		nbuf := 2
		if f.Type.ID() == arrow.STRING {
			nbuf = 3
		}
		bufs := make([]*memory.Buffer, nbuf)
		for k := range bufs {
			var err error
			if bufs[k], err = buffer(); err != nil {
				return nil, fmt.Errorf("column %s: %w", f.Name, err)
			}
		}
		if bufs[1] == nil {
			bufs[1] = memory.NewBufferBytes(nil)
		}
		data := array.NewData(f.Type, int(node[0]), bufs, nil, int(node[1]), 0)
		cols = append(cols, array.MakeFromData(data))
		data.Release()
	}
	if next != len(rb.buffers) {
		return nil, fmt.Errorf("record batch has %d buffers, its columns %d", len(rb.buffers), next)
	}
	return array.NewRecord(sc, cols, rb.length), nil
}

// checkRecord checks that a decoded record's buffers hold what its lengths claim, so that
// reading it cannot go out of bounds.
func checkRecord(rec arrow.Record) error {
	n := int(rec.NumRows())
	if n <= 0 {
		return errors.New("record has no rows")
	}
	for i, col := range rec.Columns() {
		d := col.Data()
		name := rec.ColumnName(i)
		if d.Len() != n || d.Offset() != 0 {
			return fmt.Errorf("column %s: length %d offset %d in a record of %d rows", name, d.Len(), d.Offset(), n)
		}
		bufs := d.Buffers()
		if len(bufs) < 2 {
			return fmt.Errorf("column %s: %d buffers", name, len(bufs))
		}
		bitmapLen := int(bitutil.BytesForBits(int64(n)))
		if v := bufs[0]; v != nil && v.Len() > 0 {
			if v.Len() < bitmapLen {
				return fmt.Errorf("column %s: validity bitmap of %d bytes for %d rows", name, v.Len(), n)
			}
			if nulls := n - bitutil.CountSetBits(v.Bytes(), 0, n); nulls != d.NullN() {
				return fmt.Errorf("column %s: null count %d, bitmap says %d", name, d.NullN(), nulls)
			}
		} else if d.NullN() != 0 {
			return fmt.Errorf("column %s: %d nulls without a validity bitmap", name, d.NullN())
		}
		if i == 0 && d.NullN() != 0 {
			return fmt.Errorf("column %s: %d nulls in the time column", name, d.NullN())
		}
		need := 0
		switch d.DataType().ID() {
		case arrow.BOOL:
			need = bitmapLen
		case arrow.INT32, arrow.FLOAT32:
			need = 4 * n
		case arrow.INT64, arrow.FLOAT64:
			need = 8 * n
		case arrow.STRING:
			need = 4 * (n + 1)
		default:
			return fmt.Errorf("column %s: type %s", name, d.DataType())
		}
		if bufs[1] == nil || bufs[1].Len() < need {
			return fmt.Errorf("column %s: values buffer shorter than %d bytes", name, need)
		}
		if d.DataType().ID() == arrow.STRING {
			if len(bufs) < 3 {
				return fmt.Errorf("column %s: no string data buffer", name)
			}
			offs := arrow.Int32Traits.CastFromBytes(bufs[1].Bytes())[:n+1]
			dataLen := 0
			if bufs[2] != nil {
				dataLen = bufs[2].Len()
			}
			if offs[0] < 0 {
				return fmt.Errorf("column %s: negative string offset", name)
			}
			for j := 1; j <= n; j++ {
				if offs[j] < offs[j-1] {
					return fmt.Errorf("column %s: string offsets decrease at row %d", name, j)
				}
			}
			if int(offs[n]) > dataLen {
				return fmt.Errorf("column %s: string offsets reach %d of %d data bytes", name, offs[n], dataLen)
			}
		}
	}
	return nil
}
