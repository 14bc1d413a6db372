package tsfile

// Tablet codec: the compact binary form of a Tablet used as a WAL payload.
//
// Format, version 1 (all integers little-endian; "uvarint" is encoding/binary's unsigned varint):
//
//	tablet   = magic device rows ncols column* time measure*
//	magic    = 0xB1                            (one byte: format version 1)
//	device   = uvarint(len) bytes              (UTF-8; may be empty)
//	rows     = uvarint                         (number of rows, at most 2^31-1)
//	ncols    = uvarint                         (measurement columns, the time column excluded)
//	column   = uvarint(len) bytes type         (name, UTF-8; type = DataType byte, 1..6)
//	time     = rows × int64                    (the time column; it has no nulls)
//	measure  = flag [validity] values          (one per column, in column order)
//	flag     = 0x00                            (no nulls: no validity bitmap follows)
//	         | 0x01                            (a validity bitmap follows)
//	validity = ceil(rows/8) bytes              (bit i, LSB first, set when row i is not null)
//	values   = BOOLEAN: ceil(rows/8) bytes     (bitmap, LSB first)
//	         | INT32:   rows × int32
//	         | INT64:   rows × int64
//	         | FLOAT:   rows × float32         (IEEE 754 bits)
//	         | DOUBLE:  rows × float64         (IEEE 754 bits)
//	         | TEXT:    (rows+1) × int32 offsets, then offsets[rows] bytes of string data;
//	                    offsets[0] = 0 and offsets are non-decreasing
//
// Bits of a bitmap past row rows-1 are written as zero and ignored on decoding. Values under null
// slots are carried as they are (they are unspecified, as in Arrow). The time column and the
// fixed-width columns are copied from the Arrow buffers as they are on little-endian hosts.
//
// The layout is that of the Arrow buffers themselves, so encoding is a few memory copies per
// column, and decoding a few copies plus validation. DecodeTablet checks every length, count and
// offset against the input and returns an error, never panics, on malformed input.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// codecV1 is the first byte of a version-1 encoded tablet.
const codecV1 = 0xB1

// ErrBadTablet is wrapped by every DecodeTablet error about malformed input.
var ErrBadTablet = errors.New("malformed encoded tablet")

// hostLittleEndian selects the copy fast path; a variable so that tests can force the portable path.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// AppendTablet appends the binary encoding of t to dst and returns the extended slice.
//
// t should have passed Validate: its first column must be int64 (its nulls, which Validate
// refuses, are not encoded) and the others must be of the six measurement types; AppendTablet
// panics on any other column type. Sliced arrays (non-zero offsets) are handled.
func AppendTablet(dst []byte, t *Tablet) []byte {
	rec := t.Rec
	rows := int(rec.NumRows())
	ncols := int(rec.NumCols()) - 1
	if ncols < 0 {
		panic("tsfile: AppendTablet: record has no time column")
	}
	schema := rec.Schema()
	if dt := schema.Field(0).Type; dt.ID() != arrow.INT64 {
		panic(fmt.Sprintf("tsfile: AppendTablet: time column has type %s, want int64", dt))
	}
	var typesBuf [16]DataType
	types := typesBuf[:0]
	nb := bitmapLen(rows)

	// Size the output exactly, so that the appends below never reallocate.
	size := 1 + uvarintLen(uint64(len(t.Device))) + len(t.Device) + uvarintLen(uint64(rows)) +
		uvarintLen(uint64(ncols)) + 8*rows
	for i := range ncols {
		f := schema.Field(i + 1)
		dt, err := FromArrow(f.Type)
		if err != nil {
			panic(fmt.Sprintf("tsfile: AppendTablet: column %q: %v", f.Name, err))
		}
		types = append(types, dt)
		size += uvarintLen(uint64(len(f.Name))) + len(f.Name) + 1 + 1
		col := rec.Column(i + 1)
		if col.NullN() > 0 {
			size += nb
		}
		switch dt {
		case Boolean:
			size += nb
		case Int32, Float:
			size += 4 * rows
		case Int64, Double:
			size += 8 * rows
		case Text:
			size += 4 * (rows + 1)
			if rows > 0 {
				o := textOffsets(col)
				size += int(o[rows] - o[0])
			}
		}
	}
	dst = slices.Grow(dst, size)

	dst = append(dst, codecV1)
	dst = binary.AppendUvarint(dst, uint64(len(t.Device)))
	dst = append(dst, t.Device...)
	dst = binary.AppendUvarint(dst, uint64(rows))
	dst = binary.AppendUvarint(dst, uint64(ncols))
	for i, dt := range types {
		name := schema.Field(i + 1).Name
		dst = binary.AppendUvarint(dst, uint64(len(name)))
		dst = append(dst, name...)
		dst = append(dst, byte(dt))
	}

	dst = appendFixed(dst, rec.Column(0), 8)
	for i, dt := range types {
		col := rec.Column(i + 1)
		if col.NullN() == 0 {
			dst = append(dst, 0)
		} else {
			dst = append(dst, 1)
			dst = appendBitmap(dst, col.Data().Buffers()[0], col.Data().Offset(), rows)
		}
		switch dt {
		case Boolean:
			dst = appendBitmap(dst, col.Data().Buffers()[1], col.Data().Offset(), rows)
		case Int32, Float:
			dst = appendFixed(dst, col, 4)
		case Int64, Double:
			dst = appendFixed(dst, col, 8)
		case Text:
			dst = appendText(dst, col)
		}
	}
	return dst
}

func bitmapLen(rows int) int { return (rows + 7) / 8 }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// bufBytes returns the bytes of buffer i of col's data, or nil.
func bufBytes(col arrow.Array, i int) []byte {
	bufs := col.Data().Buffers()
	if i >= len(bufs) || bufs[i] == nil {
		return nil
	}
	return bufs[i].Bytes()
}

// appendFixed appends the values of a fixed-width column of width w bytes, little-endian.
func appendFixed(dst []byte, col arrow.Array, w int) []byte {
	n := col.Len()
	if n == 0 {
		return dst
	}
	off := col.Data().Offset()
	raw := bufBytes(col, 1)[off*w : (off+n)*w]
	if hostLittleEndian {
		return append(dst, raw...)
	}
	switch w {
	case 4:
		for i := 0; i < len(raw); i += 4 {
			dst = binary.LittleEndian.AppendUint32(dst, binary.NativeEndian.Uint32(raw[i:]))
		}
	case 8:
		for i := 0; i < len(raw); i += 8 {
			dst = binary.LittleEndian.AppendUint64(dst, binary.NativeEndian.Uint64(raw[i:]))
		}
	}
	return dst
}

// appendBitmap appends rows bits of buf starting at bit off, realigned to bit 0, with zero padding.
func appendBitmap(dst []byte, buf *memory.Buffer, off, rows int) []byte {
	nb := bitmapLen(rows)
	if nb == 0 {
		return dst
	}
	start := len(dst)
	if off%8 == 0 {
		dst = append(dst, buf.Bytes()[off/8:off/8+nb]...)
	} else {
		dst = append(dst, make([]byte, nb)...)
		bitutil.CopyBitmap(buf.Bytes(), off, rows, dst[start:], 0)
	}
	if r := rows % 8; r != 0 {
		dst[len(dst)-1] &= byte(1)<<r - 1
	}
	return dst
}

// textOffsets returns the rows+1 offsets of a string column (col.Len() > 0).
func textOffsets(col arrow.Array) []int32 {
	return col.(*array.String).ValueOffsets()
}

// appendText appends the offsets (rebased to start at 0) and the data of a string column.
func appendText(dst []byte, col arrow.Array) []byte {
	n := col.Len()
	if n == 0 {
		return binary.LittleEndian.AppendUint32(dst, 0)
	}
	off := col.Data().Offset()
	o := textOffsets(col)
	base := o[0]
	if base == 0 && hostLittleEndian {
		dst = append(dst, bufBytes(col, 1)[off*4:(off+n+1)*4]...)
	} else {
		for _, v := range o {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(v-base))
		}
	}
	return append(dst, bufBytes(col, 2)[base:o[n]]...)
}

// decCol is a measurement column parsed, but not yet copied, out of an encoded tablet.
type decCol struct {
	col   Column
	valid []byte // nil when the column has no nulls
	nulls int
	vals  []byte // fixed-width values, boolean bitmap, or text offsets
	data  []byte // text data
}

type decoder struct {
	b   []byte
	pos int
	col int     // 1-based number of the column being read, for errors; 0 for none
	cc  *Column // the column being read, once its name is known
}

func (d *decoder) errf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	switch {
	case d.cc != nil:
		msg = fmt.Sprintf("column %q: %s", d.cc.Name, msg)
	case d.col > 0:
		msg = fmt.Sprintf("column %d: %s", d.col, msg)
	}
	return fmt.Errorf("%w: byte %d: %s", ErrBadTablet, d.pos, msg)
}

func (d *decoder) remaining() int { return len(d.b) - d.pos }

func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		if n == 0 {
			return 0, d.errf("truncated reading %s", what)
		}
		return 0, d.errf("%s: varint overflows 64 bits", what)
	}
	d.pos += n
	return v, nil
}

// bytes returns the next n bytes (n >= 0 already checked by the callers' bounds).
func (d *decoder) bytes(n uint64, what string) ([]byte, error) {
	if n > uint64(d.remaining()) {
		return nil, d.errf("truncated reading %s: need %d bytes, have %d", what, n, d.remaining())
	}
	b := d.b[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

func (d *decoder) byte(what string) (byte, error) {
	if d.pos >= len(d.b) {
		return 0, d.errf("truncated reading %s", what)
	}
	c := d.b[d.pos]
	d.pos++
	return c, nil
}

func (d *decoder) str(what string) (string, error) {
	n, err := d.uvarint(what + " length")
	if err != nil {
		return "", err
	}
	start := d.pos
	b, err := d.bytes(n, what)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		d.pos = start
		return "", d.errf("%s is not valid UTF-8", what)
	}
	return string(b), nil
}

// DecodeTablet decodes a tablet encoded by AppendTablet. The tablet's buffers are allocated from
// mem (nil means memory.DefaultAllocator) and do not refer to b. It validates the structure of b
// (lengths, counts, types, text offsets, UTF-8 names) and returns an error wrapping ErrBadTablet
// on malformed input; it does not call Tablet.Validate. The caller must Release the tablet.
func DecodeTablet(mem memory.Allocator, b []byte) (*Tablet, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	d := &decoder{b: b}
	magic, err := d.byte("magic")
	if err != nil {
		return nil, err
	}
	if magic != codecV1 {
		d.pos = 0
		return nil, d.errf("bad magic/version byte 0x%02x (want 0x%02x)", magic, codecV1)
	}
	device, err := d.str("device")
	if err != nil {
		return nil, err
	}
	rows64, err := d.uvarint("row count")
	if err != nil {
		return nil, err
	}
	// The time column alone needs 8 bytes a row.
	if rows64 > math.MaxInt32 || rows64 > uint64(d.remaining()/8) {
		return nil, d.errf("row count %d exceeds the input", rows64)
	}
	rows := int(rows64)
	nb := bitmapLen(rows)
	ncols64, err := d.uvarint("column count")
	if err != nil {
		return nil, err
	}
	// Each column needs at least a name length, a type byte and a flag byte.
	if ncols64 > uint64(d.remaining()/3) {
		return nil, d.errf("column count %d exceeds the input", ncols64)
	}
	var colsBuf [16]decCol
	cols := colsBuf[:0]
	if ncols64 > uint64(len(colsBuf)) {
		cols = make([]decCol, 0, int(ncols64))
	}
	for i := range int(ncols64) {
		d.col = i + 1
		var c decCol
		if c.col.Name, err = d.str("name"); err != nil {
			return nil, err
		}
		d.cc = &c.col
		tb, err := d.byte("type")
		if err != nil {
			return nil, err
		}
		c.col.Type = DataType(tb)
		if !c.col.Type.Valid() {
			d.pos--
			return nil, d.errf("unknown type byte %d", tb)
		}
		cols = append(cols, c)
		d.cc = nil
	}
	d.col = 0
	times, err := d.bytes(uint64(8*rows), "time column")
	if err != nil {
		return nil, err
	}
	for i := range cols {
		c := &cols[i]
		d.cc = &c.col
		flag, err := d.byte("null flag")
		if err != nil {
			return nil, err
		}
		switch flag {
		case 0:
		case 1:
			if c.valid, err = d.bytes(uint64(nb), "validity bitmap"); err != nil {
				return nil, err
			}
			c.nulls = rows - bitutil.CountSetBits(c.valid, 0, rows)
			if c.nulls == 0 {
				c.valid = nil
			}
		default:
			d.pos--
			return nil, d.errf("bad null flag %d", flag)
		}
		switch c.col.Type {
		case Boolean:
			c.vals, err = d.bytes(uint64(nb), "values")
		case Int32, Float:
			c.vals, err = d.bytes(uint64(4*rows), "values")
		case Int64, Double:
			c.vals, err = d.bytes(uint64(8*rows), "values")
		case Text:
			err = d.text(c, rows)
		}
		if err != nil {
			return nil, err
		}
	}
	d.cc = nil
	if d.remaining() != 0 {
		return nil, d.errf("%d trailing bytes", d.remaining())
	}

	// The input is valid: copy it into Arrow buffers.
	schema := TabletSchema(device, colsOf(cols))
	arrs := make([]arrow.Array, 0, len(cols)+1)
	defer func() {
		for _, a := range arrs {
			a.Release()
		}
	}()
	arrs = append(arrs, makeArray(arrow.PrimitiveTypes.Int64, rows, 0, nil, fixedBuf(mem, times, 8), nil))
	for _, c := range cols {
		var valid, vals, data *memory.Buffer
		if c.valid != nil {
			valid = bitmapBuf(mem, c.valid, rows)
		}
		switch c.col.Type {
		case Boolean:
			vals = bitmapBuf(mem, c.vals, rows)
		case Int32, Float:
			vals = fixedBuf(mem, c.vals, 4)
		case Int64, Double:
			vals = fixedBuf(mem, c.vals, 8)
		case Text:
			vals = fixedBuf(mem, c.vals, 4)
			data = copyBuf(mem, c.data)
		}
		arrs = append(arrs, makeArray(c.col.Type.ArrowType(), rows, c.nulls, valid, vals, data))
	}
	return &Tablet{Device: device, Rec: array.NewRecord(schema, arrs, int64(rows))}, nil
}

// text parses the offsets and data of a TEXT column.
func (d *decoder) text(c *decCol, rows int) error {
	start := d.pos
	offs, err := d.bytes(uint64(4*(rows+1)), "text offsets")
	if err != nil {
		return err
	}
	prev := uint32(0)
	for i := 0; i <= rows; i++ {
		v := binary.LittleEndian.Uint32(offs[4*i:])
		if v < prev || v > math.MaxInt32 || (i == 0 && v != 0) {
			d.pos = start + 4*i
			return d.errf("bad text offset %d at row %d (previous %d)", int32(v), i, prev)
		}
		prev = v
	}
	c.vals = offs
	c.data, err = d.bytes(uint64(prev), "text data")
	return err
}

func colsOf(cols []decCol) []Column {
	out := make([]Column, len(cols))
	for i, c := range cols {
		out[i] = c.col
	}
	return out
}

func makeArray(dt arrow.DataType, rows, nulls int, bufs ...*memory.Buffer) arrow.Array {
	data := array.NewData(dt, rows, bufs, nil, nulls, 0)
	for _, b := range bufs {
		if b != nil {
			b.Release() // data holds its own reference
		}
	}
	defer data.Release()
	return array.MakeFromData(data)
}

func copyBuf(mem memory.Allocator, src []byte) *memory.Buffer {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(len(src))
	copy(buf.Bytes(), src)
	return buf
}

// fixedBuf copies little-endian values of width w into a native-endian buffer.
func fixedBuf(mem memory.Allocator, src []byte, w int) *memory.Buffer {
	buf := copyBuf(mem, src)
	if hostLittleEndian {
		return buf
	}
	b := buf.Bytes()
	switch w {
	case 4:
		for i := 0; i < len(b); i += 4 {
			binary.NativeEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(b[i:]))
		}
	case 8:
		for i := 0; i < len(b); i += 8 {
			binary.NativeEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:]))
		}
	}
	return buf
}

// bitmapBuf copies a bitmap of rows bits, clearing the padding bits.
func bitmapBuf(mem memory.Allocator, src []byte, rows int) *memory.Buffer {
	buf := copyBuf(mem, src)
	if r := rows % 8; r != 0 {
		b := buf.Bytes()
		b[len(b)-1] &= byte(1)<<r - 1
	}
	return buf
}
