package tsfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// FormatError is a TsFile that failed a check: the file, the check (footer, schema, metadata,
// batch 3, size mismatch, checksum mismatch, ...) and why.
type FormatError struct {
	File  string
	Check string
	Err   error
}

func (e *FormatError) Error() string { return fmt.Sprintf("tsfile %s: %s: %v", e.File, e.Check, e.Err) }
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(file, check string, err error) error {
	return &FormatError{File: file, Check: check, Err: err}
}

// allocLimitError is the panic value of a refused allocation.
type allocLimitError struct{ size, limit int }

func (e allocLimitError) Error() string {
	return fmt.Sprintf("allocation of %d bytes exceeds the file's largest buffer (%d)", e.size, e.limit)
}

// limitAlloc refuses (by panicking, recovered by the reader) any allocation larger than limit:
// sizes read from a damaged file cannot make the process allocate more than the file can need.
type limitAlloc struct {
	limit int
	mem   memory.Allocator
}

func (a *limitAlloc) Allocate(size int) []byte {
	if size < 0 || size > a.limit {
		panic(allocLimitError{size, a.limit})
	}
	return a.mem.Allocate(size)
}

func (a *limitAlloc) Reallocate(size int, b []byte) []byte {
	if size < 0 || size > a.limit {
		panic(allocLimitError{size, a.limit})
	}
	return a.mem.Reallocate(size, b)
}

func (a *limitAlloc) Free(b []byte) { a.mem.Free(b) }

// Reader reads a TsFile. Its methods may be called concurrently.
type Reader struct {
	name      string
	closer    io.Closer
	ra        io.ReaderAt
	size      int64
	dataStart int64 // offset of the first dictionary or record batch (or of the footer)
	alloc     *limitAlloc
	fr        *ipc.FileReader // the reader opened first: schema and metadata
	frMu      sync.Mutex
	frFree    []*ipc.FileReader // idle decoders (an ipc.FileReader must not decode concurrently)
	meta      FileMeta
	schema    *arrow.Schema
	colIdx    map[string]int // measurement → column of the file schema
	devOf     []int32        // batch → device (index into meta.Devices)
	rangeOf   []BatchRange   // batch → rows and time range
	dictOK    atomic.Pointer[arrow.ArrayData]

	batchReads atomic.Int64 // batches decoded, for tests
}

// OpenFile opens the TsFile at path: it reads and checks the footer, the schema and the
// metadata (not the batches; see VerifyStructure).
func OpenFile(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, formatErr(path, "open", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, formatErr(path, "open", err)
	}
	r, err := OpenReaderAt(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// minFileSize is the smallest Arrow IPC file: magic, padding, footer length and trailing magic.
const minFileSize = 8 + 4 + 6

// OpenReaderAt opens the TsFile of size bytes read from ra; name names it in errors.
func OpenReaderAt(ra io.ReaderAt, size int64, name string) (r *Reader, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, formatErr(name, "footer", fmt.Errorf("undecodable: %v", p))
		}
	}()
	if size < minFileSize {
		return nil, formatErr(name, "footer", fmt.Errorf("file too small (%d bytes) to be an Arrow IPC file", size))
	}
	var head [8]byte
	if err := readFull(ra, head[:], 0); err != nil {
		return nil, formatErr(name, "header", err)
	}
	if !bytes.Equal(head[:6], arrowMagic) {
		return nil, formatErr(name, "header", errors.New("not an Arrow IPC file (bad leading magic)"))
	}
	var tail [10]byte
	if err := readFull(ra, tail[:], size-10); err != nil {
		return nil, formatErr(name, "footer", err)
	}
	if !bytes.Equal(tail[4:], arrowMagic) {
		return nil, formatErr(name, "footer", errors.New("bad trailing magic (truncated or not an Arrow IPC file)"))
	}
	flen := int64(int32(binary.LittleEndian.Uint32(tail[:4])))
	if flen <= 0 || flen > size-minFileSize {
		return nil, formatErr(name, "footer", fmt.Errorf("footer length %d does not fit a %d-byte file", flen, size))
	}
	fb := make([]byte, flen)
	if err := readFull(ra, fb, size-10-flen); err != nil {
		return nil, formatErr(name, "footer", err)
	}
	fi, err := parseFooter(fb, size-10-flen)
	if err != nil {
		return nil, formatErr(name, "footer", err)
	}
	mb, ok := fi.meta[MetaMaxBuffer]
	maxBuf, err := parseMaxBuffer(mb, ok)
	if err != nil {
		return nil, formatErr(name, "metadata", err)
	}
	if len(fi.dicts) > 1 {
		return nil, formatErr(name, "footer", fmt.Errorf("%d dictionary batches, want at most 1", len(fi.dicts)))
	}

	// Every allocation arrow-go makes while reading is a message read from the file (at most
	// size bytes) or an uncompressed buffer (at most maxBuf bytes, padded).
	alloc := &limitAlloc{limit: int(max(size, maxBuf)) + 256, mem: memory.DefaultAllocator}
	fr, err := openArrow(ra, size, alloc)
	if err != nil {
		return nil, formatErr(name, "footer and dictionary", err)
	}
	r = &Reader{name: name, ra: ra, size: size, dataStart: size - 10 - flen, alloc: alloc, fr: fr, schema: fr.Schema(),
		frFree: []*ipc.FileReader{fr}}
	for _, blk := range append(fi.dicts, fi.recs...) {
		r.dataStart = min(r.dataStart, blk.Offset)
	}
	if fr.NumRecords() != len(fi.recs) {
		return nil, formatErr(name, "footer", fmt.Errorf("arrow sees %d batches, footer has %d", fr.NumRecords(), len(fi.recs)))
	}
	if r.meta, err = decodeMeta(r.schema, fr.NumRecords()); err != nil {
		return nil, formatErr(name, "metadata", err)
	}
	if len(r.meta.Devices) > 0 && fr.NumDictionaries() != 1 {
		return nil, formatErr(name, "footer", fmt.Errorf("%d dictionary batches, want 1", fr.NumDictionaries()))
	}
	r.colIdx = make(map[string]int, len(r.meta.Columns))
	for i, c := range r.meta.Columns {
		r.colIdx[c.Name] = i + 2
	}
	r.devOf = make([]int32, 0, fr.NumRecords())
	r.rangeOf = make([]BatchRange, 0, fr.NumRecords())
	for i, d := range r.meta.Devices {
		for _, br := range d.BatchRanges {
			r.devOf = append(r.devOf, int32(i))
			r.rangeOf = append(r.rangeOf, br)
			if br.Rows > int64(maxBuf) {
				return nil, formatErr(name, "metadata", fmt.Errorf("%s: batch of %d rows larger than %s", d.Device, br.Rows, MetaMaxBuffer))
			}
		}
	}
	return r, nil
}

// readFull reads len(b) bytes at off (io.EOF after a complete read is no error).
func readFull(ra io.ReaderAt, b []byte, off int64) error {
	n, err := ra.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func openArrow(ra io.ReaderAt, size int64, alloc memory.Allocator) (*ipc.FileReader, error) {
	return ipc.NewFileReader(io.NewSectionReader(ra, 0, size), ipc.WithAllocator(alloc), ipc.WithFooterOffset(size))
}

// maxIdleDecoders bounds the idle Arrow readers a Reader keeps for concurrent reads.
const maxIdleDecoders = 4

// recordAt decodes batch i with an idle Arrow reader, opening another one when all are busy:
// arrow-go's FileReader.RecordAt is not safe for concurrent use (its dictionary mapper hashes
// with shared state).
func (r *Reader) recordAt(i int) (arrow.Record, error) {
	r.frMu.Lock()
	var fr *ipc.FileReader
	if n := len(r.frFree); n > 0 {
		fr, r.frFree = r.frFree[n-1], r.frFree[:n-1]
	}
	r.frMu.Unlock()
	if fr == nil {
		var err error
		if fr, err = openArrow(r.ra, r.size, r.alloc); err != nil {
			return nil, err
		}
	}
	defer func() {
		r.frMu.Lock()
		if len(r.frFree) < maxIdleDecoders {
			r.frFree = append(r.frFree, fr)
		} else if fr != r.fr {
			fr.Close()
		}
		r.frMu.Unlock()
	}()
	return fr.RecordAt(i)
}

// Name returns the name the reader was opened with.
func (r *Reader) Name() string { return r.name }

// Size returns the file size in bytes.
func (r *Reader) Size() int64 { return r.size }

// Meta returns the file's metadata. The caller must not modify it.
func (r *Reader) Meta() FileMeta { return r.meta }

// Schema returns the file's Arrow schema.
func (r *Reader) Schema() *arrow.Schema { return r.schema }

// NumBatches returns the number of record batches.
func (r *Reader) NumBatches() int { return len(r.devOf) }

// Close releases the reader and closes the file OpenFile opened.
func (r *Reader) Close() error {
	r.frMu.Lock()
	for _, fr := range r.frFree {
		if fr != r.fr {
			fr.Close()
		}
	}
	r.frFree = nil
	r.frMu.Unlock()
	r.fr.Close()
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// ReadBatch returns record batch i with all its columns (device, time, measurements), checked.
// The caller releases it.
func (r *Reader) ReadBatch(i int) (arrow.Record, error) {
	if i < 0 || i >= len(r.devOf) {
		return nil, fmt.Errorf("tsfile %s: batch %d out of range [0, %d)", r.name, i, len(r.devOf))
	}
	return r.readBatch(i)
}

// readBatch decodes batch i and checks it (see checkBatch); a panic of arrow-go on damaged
// input becomes an error.
func (r *Reader) readBatch(i int) (rec arrow.Record, err error) {
	r.batchReads.Add(1)
	defer func() {
		if p := recover(); p != nil {
			if rec != nil {
				rec.Release()
			}
			rec, err = nil, formatErr(r.name, fmt.Sprintf("batch %d", i), fmt.Errorf("undecodable: %v", p))
		}
	}()
	rec, err = r.recordAt(i)
	if err != nil {
		return nil, formatErr(r.name, fmt.Sprintf("batch %d", i), err)
	}
	if err := r.checkBatch(i, rec); err != nil {
		rec.Release()
		return nil, formatErr(r.name, fmt.Sprintf("batch %d", i), err)
	}
	return rec, nil
}

// checkBatch checks that batch i is safe to use and agrees with the index: every buffer is
// large enough for its array, null counts match the validity bitmaps, string offsets are
// ordered and inside their data, the device column holds only the batch's device and the
// dictionary is the device list, times are strictly increasing and span the batch's range,
// and columns the device does not have are null.
func (r *Reader) checkBatch(i int, rec arrow.Record) error {
	br := r.rangeOf[i]
	dev := &r.meta.Devices[r.devOf[i]]
	n := int(rec.NumRows())
	if int64(n) != br.Rows {
		return fmt.Errorf("%d rows, index says %d", n, br.Rows)
	}
	if int(rec.NumCols()) != len(r.meta.Columns)+2 {
		return fmt.Errorf("%d columns, schema has %d", rec.NumCols(), len(r.meta.Columns)+2)
	}
	dc, ok := rec.Column(0).(*array.Dictionary)
	if !ok {
		return errors.New("device column is not a dictionary")
	}
	ia, ok := dc.Indices().(*array.Int32)
	if !ok {
		return errors.New("device column indices are not int32")
	}
	if err := checkArray(ia, n); err != nil {
		return fmt.Errorf("device column: %w", err)
	}
	if ia.NullN() != 0 {
		return errors.New("device column has nulls")
	}
	want := r.devOf[i]
	if i := firstOther(ia.Int32Values(), want); i >= 0 {
		return fmt.Errorf("device column holds device #%d, index says #%d (%s)", ia.Value(i), want, dev.Device)
	}
	if err := r.checkDict(dc); err != nil {
		return err
	}
	tc, ok := rec.Column(1).(*array.Int64)
	if !ok {
		return errors.New("time column is not int64")
	}
	if err := checkArray(tc, n); err != nil {
		return fmt.Errorf("time column: %w", err)
	}
	if tc.NullN() != 0 {
		return errors.New("time column has nulls")
	}
	ts := tc.Int64Values()
	if k := firstUnsorted(ts); k > 0 {
		return fmt.Errorf("times not strictly increasing at row %d (%d after %d)", k, ts[k], ts[k-1])
	}
	if n > 0 && (ts[0] != br.MinTime || ts[n-1] != br.MaxTime) {
		return fmt.Errorf("times span [%d, %d], index says [%d, %d]", ts[0], ts[n-1], br.MinTime, br.MaxTime)
	}
	for k, c := range r.meta.Columns {
		a := rec.Column(k + 2)
		if err := checkArray(a, n); err != nil {
			return fmt.Errorf("column %s: %w", c.Name, err)
		}
		if _, has := dev.Column(c.Name); !has && a.NullN() != n {
			return fmt.Errorf("column %s: %d values, but device %s has no such column", c.Name, n-a.NullN(), dev.Device)
		}
	}
	return nil
}

// firstOther returns the index of the first value of vs other than want, or -1.
func firstOther(vs []int32, want int32) int {
	var acc int32 // branch-free: OR of the differences
	for _, v := range vs {
		acc |= v ^ want
	}
	if acc == 0 {
		return -1
	}
	for i, v := range vs {
		if v != want {
			return i
		}
	}
	return -1
}

// checkDict checks (once) that the dictionary of the device column is the device list.
func (r *Reader) checkDict(dc *array.Dictionary) error {
	dd := dc.Data().Dictionary()
	if p := r.dictOK.Load(); p != nil && *p == dd {
		return nil
	}
	dict, ok := dc.Dictionary().(*array.String)
	if !ok {
		return errors.New("dictionary is not utf8")
	}
	if err := checkArray(dict, dict.Len()); err != nil {
		return fmt.Errorf("dictionary: %w", err)
	}
	if dict.Len() != len(r.meta.Devices) || dict.NullN() != 0 {
		return fmt.Errorf("dictionary has %d entries (%d null), index has %d devices", dict.Len(), dict.NullN(), len(r.meta.Devices))
	}
	for k := range r.meta.Devices {
		if dict.Value(k) != r.meta.Devices[k].Device {
			return fmt.Errorf("dictionary entry %d is %q, index says %q", k, dict.Value(k), r.meta.Devices[k].Device)
		}
	}
	r.dictOK.Store(&dd)
	return nil
}

// checkArray checks that the buffers of a (a flat array of a TsFile type) hold n values.
func checkArray(a arrow.Array, n int) error {
	d := a.Data()
	if d.Len() != n {
		return fmt.Errorf("length %d, want %d", d.Len(), n)
	}
	off := d.Offset()
	if off < 0 {
		return fmt.Errorf("negative offset %d", off)
	}
	need := off + n
	bufs := d.Buffers()
	buf := func(k int) []byte {
		if k < len(bufs) && bufs[k] != nil {
			return bufs[k].Bytes()
		}
		return nil
	}
	nulls := d.NullN()
	if nulls < 0 || nulls > n {
		return fmt.Errorf("null count %d outside [0, %d]", nulls, n)
	}
	if bm := buf(0); bm != nil || nulls > 0 {
		if int64(len(bm)) < bitutil.BytesForBits(int64(need)) {
			return fmt.Errorf("validity bitmap of %d bytes for %d values", len(bm), n)
		}
		if set := bitutil.CountSetBits(bm, off, n); set != n-nulls {
			return fmt.Errorf("null count %d, validity bitmap says %d", nulls, n-set)
		}
	}
	if n == 0 {
		return nil
	}
	width := 0
	switch a.DataType().ID() {
	case arrow.BOOL:
		if int64(len(buf(1))) < bitutil.BytesForBits(int64(need)) {
			return fmt.Errorf("values bitmap of %d bytes for %d values", len(buf(1)), n)
		}
		return nil
	case arrow.INT32, arrow.FLOAT32:
		width = 4
	case arrow.INT64, arrow.FLOAT64:
		width = 8
	case arrow.STRING:
		ob := buf(1)
		if len(ob) < 4*(need+1) {
			return fmt.Errorf("offsets buffer of %d bytes for %d values", len(ob), n)
		}
		offs := arrow.Int32Traits.CastFromBytes(ob)[off : need+1]
		if offs[0] < 0 {
			return fmt.Errorf("negative string offset %d", offs[0])
		}
		for k := 1; k < len(offs); k++ {
			if offs[k] < offs[k-1] {
				return fmt.Errorf("string offsets decrease at value %d", k-1)
			}
		}
		if int(offs[len(offs)-1]) > len(buf(2)) {
			return fmt.Errorf("string offsets run past the %d-byte data buffer", len(buf(2)))
		}
		return nil
	default:
		return fmt.Errorf("unexpected type %s", a.DataType())
	}
	if len(buf(1)) < width*need {
		return fmt.Errorf("values buffer of %d bytes for %d values", len(buf(1)), n)
	}
	return nil
}

// checkLeadingSchema checks that the schema message at the start of the file (what reading
// the file as an Arrow stream sees) is the footer's schema, metadata included.
func (r *Reader) checkLeadingSchema() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("undecodable: %v", p)
		}
	}()
	n := r.dataStart - 8
	if n < 8 {
		return fmt.Errorf("no room for a schema message before offset %d", r.dataStart)
	}
	buf := make([]byte, n)
	if err := readFull(r.ra, buf, 8); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(buf) != 0xFFFFFFFF {
		return errors.New("no continuation marker")
	}
	l := int64(int32(binary.LittleEndian.Uint32(buf[4:])))
	if l <= 0 || l > n-8 {
		return fmt.Errorf("message length %d does not fit before offset %d", l, r.dataStart)
	}
	if err := checkSchemaMessage(buf[8 : 8+l]); err != nil {
		return err
	}
	sr, err := ipc.NewReader(bytes.NewReader(buf[:8+l]), ipc.WithAllocator(r.alloc))
	if err != nil {
		return err
	}
	defer sr.Release()
	s := sr.Schema()
	if !s.Equal(r.schema) || !slices.Equal(s.Metadata().Keys(), r.schema.Metadata().Keys()) ||
		!slices.Equal(s.Metadata().Values(), r.schema.Metadata().Values()) {
		return errors.New("differs from the footer's schema")
	}
	return nil
}

// ReadDevice calls fn with records of device's rows with minT <= time <= maxT, in time order:
// columns "time" then the requested measurements that the file holds for the device (in the
// order requested; nil means every column with values for the device), schema metadata
// weir.device = device. It decodes only the device's batches that overlap the time range. A
// record is valid only during fn unless retained. A device the file does not hold yields nothing.
func (r *Reader) ReadDevice(device string, measurements []string, minT, maxT int64, fn func(rec arrow.Record) error) error {
	dev := r.meta.Device(device)
	if dev == nil || minT > maxT || dev.MaxTime < minT || dev.MinTime > maxT {
		return nil
	}
	var cols []Column
	var idx []int
	add := func(c ColumnStats) {
		if c.Count > 0 {
			cols = append(cols, Column{Name: c.Name, Type: c.Type})
			idx = append(idx, r.colIdx[c.Name])
		}
	}
	if measurements == nil {
		for _, c := range dev.Columns {
			add(c)
		}
	} else {
		seen := make(map[string]bool, len(measurements))
		for _, m := range measurements {
			if c, ok := dev.Column(m); ok && !seen[m] {
				seen[m] = true
				add(c)
			}
		}
	}
	schema := TabletSchema(device, cols)
	arrs := make([]arrow.Array, len(cols)+1)
	for k, b := range dev.Batches {
		br := dev.BatchRanges[k]
		if br.MaxTime < minT || br.MinTime > maxT {
			continue
		}
		rec, err := r.readBatch(b)
		if err != nil {
			return err
		}
		ts := rec.Column(1).(*array.Int64).Int64Values()
		lo, hi := 0, len(ts)
		if br.MinTime < minT {
			lo = sort.Search(len(ts), func(i int) bool { return ts[i] >= minT })
		}
		if br.MaxTime > maxT {
			hi = sort.Search(len(ts), func(i int) bool { return ts[i] > maxT })
		}
		if lo >= hi {
			rec.Release()
			continue
		}
		whole := lo == 0 && hi == len(ts)
		for j := range arrs {
			c := 1
			if j > 0 {
				c = idx[j-1]
			}
			if whole {
				arrs[j] = rec.Column(c)
				arrs[j].Retain()
			} else {
				arrs[j] = array.NewSlice(rec.Column(c), int64(lo), int64(hi))
			}
		}
		out := array.NewRecord(schema, arrs, int64(hi-lo))
		for _, a := range arrs {
			a.Release()
		}
		rec.Release()
		err = fn(out)
		out.Release()
		if err != nil {
			return err
		}
	}
	return nil
}
