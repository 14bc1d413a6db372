package tsfile

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// This file pre-checks the footer of an Arrow IPC file before arrow-go decodes it. arrow-go trusts
// the footer: it sizes slices and buffers from lengths read from the file, so a flipped byte
// can make it allocate terabytes (a fatal, unrecoverable out-of-memory) rather than fail. The
// walk below reads the footer flatbuffer with bounds checks everywhere, checks that every
// vector arrow-go will allocate for fits in the footer, that the schema has only the flat types
// a TsFile uses, and that every block lies inside the file; it also returns the schema's custom
// metadata, so that the reader can bound its allocations before arrow-go reads anything else.

var (
	arrowMagic = []byte("ARROW1")
	errFB      = errors.New("malformed flatbuffer")
)

// fileBlock is one entry of the footer's dictionaries or recordBatches vector.
type fileBlock struct {
	Offset int64
	Meta   int32
	Body   int64
}

type footerInfo struct {
	dicts, recs []fileBlock
	meta        map[string]string // schema custom metadata
	nfields     int
}

type fbuf []byte

func (b fbuf) u32(p int) (uint32, error) {
	if p < 0 || p > len(b)-4 {
		return 0, errFB
	}
	return binary.LittleEndian.Uint32(b[p:]), nil
}

func (b fbuf) u16(p int) (uint16, error) {
	if p < 0 || p > len(b)-2 {
		return 0, errFB
	}
	return binary.LittleEndian.Uint16(b[p:]), nil
}

type fbTable struct {
	b   fbuf
	pos int
	vt  int
	vtn int // vtable length in bytes
	tn  int // table length in bytes
}

// table returns the table at pos.
func (b fbuf) table(pos int) (fbTable, error) {
	so, err := b.u32(pos)
	if err != nil {
		return fbTable{}, err
	}
	vt := pos - int(int32(so))
	vtn, err := b.u16(vt)
	if err != nil {
		return fbTable{}, err
	}
	tn, err := b.u16(vt + 2)
	if err != nil {
		return fbTable{}, err
	}
	if vtn < 4 || vtn%2 != 0 || vt+int(vtn) > len(b) || tn < 4 || pos+int(tn) > len(b) {
		return fbTable{}, errFB
	}
	return fbTable{b: b, pos: pos, vt: vt, vtn: int(vtn), tn: int(tn)}, nil
}

// field returns the position of slot's field, or 0 when absent.
func (t fbTable) field(slot int) (int, error) {
	o := 4 + 2*slot
	if o+2 > t.vtn {
		return 0, nil
	}
	fo, err := t.b.u16(t.vt + o)
	if err != nil || fo == 0 {
		return 0, err
	}
	if int(fo) >= t.tn {
		return 0, errFB
	}
	return t.pos + int(fo), nil
}

// ref follows slot's offset field; 0 when absent.
func (t fbTable) ref(slot int) (int, error) {
	p, err := t.field(slot)
	if err != nil || p == 0 {
		return 0, err
	}
	o, err := t.b.u32(p)
	if err != nil {
		return 0, err
	}
	target := int64(p) + int64(o)
	if target > int64(len(t.b))-4 {
		return 0, errFB
	}
	return int(target), nil
}

// vector returns the start and length of slot's vector with elements of size elem.
func (t fbTable) vector(slot, elem int) (start, n int, err error) {
	p, err := t.ref(slot)
	if err != nil || p == 0 {
		return 0, 0, err
	}
	l, err := t.b.u32(p)
	if err != nil {
		return 0, 0, err
	}
	start = p + 4
	if int64(l)*int64(elem) > int64(len(t.b)-start) {
		return 0, 0, errFB
	}
	return start, int(l), nil
}

// sub returns slot's table; ok is false when absent.
func (t fbTable) sub(slot int) (fbTable, bool, error) {
	p, err := t.ref(slot)
	if err != nil || p == 0 {
		return fbTable{}, false, err
	}
	st, err := t.b.table(p)
	return st, err == nil, err
}

// vecTable returns the k-th table of a vector of tables starting at start.
func (b fbuf) vecTable(start, k int) (fbTable, error) {
	p := start + 4*k
	o, err := b.u32(p)
	if err != nil {
		return fbTable{}, err
	}
	target := int64(p) + int64(o)
	if target > int64(len(b)) {
		return fbTable{}, errFB
	}
	return b.table(int(target))
}

// str returns slot's string.
func (t fbTable) str(slot int) (string, error) {
	start, n, err := t.vector(slot, 1)
	if err != nil {
		return "", err
	}
	return string(t.b[start : start+n]), nil
}

func (t fbTable) u8(slot int) (uint8, error) {
	p, err := t.field(slot)
	if err != nil || p == 0 {
		return 0, err
	}
	if p >= len(t.b) {
		return 0, errFB
	}
	return t.b[p], nil
}

// keyValues checks slot's [KeyValue] vector and returns it as a map.
func (t fbTable) keyValues(slot int) (map[string]string, error) {
	start, n, err := t.vector(slot, 4)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, min(n, 64))
	for k := 0; k < n; k++ {
		kv, err := t.b.vecTable(start, k)
		if err != nil {
			return nil, err
		}
		key, err := kv.str(0)
		if err != nil {
			return nil, err
		}
		val, err := kv.str(1)
		if err != nil {
			return nil, err
		}
		m[key] = val
	}
	return m, nil
}

// Flatbuffer slots (Arrow File.fbs and Schema.fbs).
const (
	footerSchema  = 1
	footerDicts   = 2
	footerRecords = 3

	schemaFields   = 1
	schemaMetadata = 2

	fieldName       = 0
	fieldTypeType   = 2
	fieldChildren   = 5
	fieldCustomMeta = 6

	// Type union tags a TsFile may use.
	fbTypeInt   = 2
	fbTypeFloat = 3
	fbTypeUtf8  = 5
	fbTypeBool  = 6

	blockSize = 24 // struct Block { offset: long; metaDataLength: int; (pad); bodyLength: long }
)

// parseFooter checks the footer flatbuffer b of a file whose messages end at dataEnd.
func parseFooter(b fbuf, dataEnd int64) (*footerInfo, error) {
	root, err := b.u32(0)
	if err != nil {
		return nil, err
	}
	ft, err := b.table(int(root))
	if err != nil {
		return nil, fmt.Errorf("footer table: %w", err)
	}
	st, ok, err := ft.sub(footerSchema)
	if err != nil || !ok {
		return nil, fmt.Errorf("schema table: %w", orFB(err))
	}
	fi := &footerInfo{}
	if fi.nfields, fi.meta, err = checkSchemaFB(st); err != nil {
		return nil, err
	}
	if fi.dicts, err = blocks(ft, footerDicts, dataEnd); err != nil {
		return nil, fmt.Errorf("dictionary blocks: %w", err)
	}
	if fi.recs, err = blocks(ft, footerRecords, dataEnd); err != nil {
		return nil, fmt.Errorf("record batch blocks: %w", err)
	}
	return fi, nil
}

// checkSchemaFB checks a Schema table: its fields vector fits, every field has a TsFile type,
// no children, and well-formed custom metadata. It returns the number of fields and the
// schema's custom metadata.
func checkSchemaFB(st fbTable) (int, map[string]string, error) {
	b := st.b
	start, n, err := st.vector(schemaFields, 4)
	if err != nil {
		return 0, nil, fmt.Errorf("schema fields: %w", err)
	}
	for k := 0; k < n; k++ {
		f, err := b.vecTable(start, k)
		if err != nil {
			return 0, nil, fmt.Errorf("field %d: %w", k, err)
		}
		if _, err := f.str(fieldName); err != nil {
			return 0, nil, fmt.Errorf("field %d: name: %w", k, err)
		}
		tt, err := f.u8(fieldTypeType)
		if err != nil {
			return 0, nil, fmt.Errorf("field %d: type: %w", k, err)
		}
		switch tt {
		case fbTypeInt, fbTypeFloat, fbTypeUtf8, fbTypeBool:
		default:
			return 0, nil, fmt.Errorf("field %d: type tag %d is not a TsFile type", k, tt)
		}
		if _, cn, err := f.vector(fieldChildren, 4); err != nil || cn != 0 {
			return 0, nil, fmt.Errorf("field %d: has children (%d) or bad children vector: %v", k, cn, err)
		}
		if _, err := f.keyValues(fieldCustomMeta); err != nil {
			return 0, nil, fmt.Errorf("field %d: custom metadata: %w", k, err)
		}
	}
	meta, err := st.keyValues(schemaMetadata)
	if err != nil {
		return 0, nil, fmt.Errorf("schema metadata: %w", err)
	}
	return n, meta, nil
}

// Message table slots (Arrow Message.fbs).
const (
	messageHeaderType = 1
	messageHeader     = 2
	messageBodyLength = 3
	headerSchema      = 1 // MessageHeader union tag of a Schema
)

// checkSchemaMessage checks the flatbuffer of the message at the start of the file: a Schema
// message without body whose schema passes checkSchemaFB.
func checkSchemaMessage(b fbuf) error {
	root, err := b.u32(0)
	if err != nil {
		return err
	}
	mt, err := b.table(int(root))
	if err != nil {
		return err
	}
	ht, err := mt.u8(messageHeaderType)
	if err != nil {
		return err
	}
	if ht != headerSchema {
		return fmt.Errorf("message type %d is not a schema", ht)
	}
	if p, err := mt.field(messageBodyLength); err != nil || p != 0 && (p > len(b)-8 || binary.LittleEndian.Uint64(b[p:]) != 0) {
		return fmt.Errorf("schema message has a body or a bad body length (%v)", err)
	}
	st, ok, err := mt.sub(messageHeader)
	if err != nil || !ok {
		return fmt.Errorf("schema table: %w", orFB(err))
	}
	_, _, err = checkSchemaFB(st)
	return err
}

func orFB(err error) error {
	if err == nil {
		return errFB
	}
	return err
}

func blocks(ft fbTable, slot int, dataEnd int64) ([]fileBlock, error) {
	start, n, err := ft.vector(slot, blockSize)
	if err != nil {
		return nil, err
	}
	out := make([]fileBlock, n)
	for k := range out {
		p := ft.b[start+k*blockSize:]
		blk := fileBlock{
			Offset: int64(binary.LittleEndian.Uint64(p[0:])),
			Meta:   int32(binary.LittleEndian.Uint32(p[8:])),
			Body:   int64(binary.LittleEndian.Uint64(p[16:])),
		}
		if blk.Offset < 8 || blk.Meta <= 0 || blk.Body < 0 || blk.Offset%8 != 0 || blk.Meta%8 != 0 || blk.Body%8 != 0 ||
			blk.Offset > dataEnd || int64(blk.Meta) > dataEnd-blk.Offset || blk.Body > dataEnd-blk.Offset-int64(blk.Meta) {
			return nil, fmt.Errorf("block %d (offset %d, metadata %d, body %d) does not fit the file", k, blk.Offset, blk.Meta, blk.Body)
		}
		out[k] = blk
	}
	return out, nil
}
