package tsfile

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// FormatVersion is the TsFile format version this package writes and reads.
const FormatVersion = 1

// DeviceColumn is the name of a TsFile's first column (dictionary-encoded device path).
const DeviceColumn = "device"

// DefaultMaxBatchRows is the default largest number of rows in one record batch.
const DefaultMaxBatchRows = 65536

// Schema metadata keys of a TsFile (see the package documentation for their encoding).
const (
	MetaFormatVersion = "weir.format.version"
	MetaRegion        = "weir.region"
	MetaVersion       = "weir.version"
	MetaEpoch         = "weir.epoch"
	MetaMinTime       = "weir.min_time"
	MetaMaxTime       = "weir.max_time"
	MetaRows          = "weir.rows"
	MetaPoints        = "weir.points"
	MetaCompression   = "weir.compression"
	MetaProgress      = "weir.progress"
	MetaIndexMin      = "weir.index.min"
	MetaIndexMax      = "weir.index.max"
	MetaDevices       = "weir.devices"
	MetaMaxBuffer     = "weir.max_buffer"
)

// Compression names the codec of a TsFile's buffers.
type Compression string

// The codecs a TsFile may use.
const (
	CompressionZstd Compression = "zstd"
	CompressionLZ4  Compression = "lz4"
	CompressionNone Compression = "none"
)

// ParseCompression parses a codec name: zstd, lz4 or none (case-insensitive).
func ParseCompression(s string) (Compression, error) {
	switch Compression(strings.ToLower(strings.TrimSpace(s))) {
	case CompressionZstd:
		return CompressionZstd, nil
	case CompressionLZ4:
		return CompressionLZ4, nil
	case CompressionNone:
		return CompressionNone, nil
	}
	return "", fmt.Errorf("unknown compression %q (want zstd, lz4 or none)", s)
}

// ColumnStats summarises one measurement column of one device: the number of non-null values
// and their smallest and largest value. Min and Max are nil when Count is 0; otherwise they are a
// bool (BOOLEAN, false < true), an int64 (INT32, INT64), a float64 (FLOAT, DOUBLE) or a string
// (TEXT, compared bytewise).
type ColumnStats struct {
	Name  string   `json:"name"`
	Type  DataType `json:"type"`
	Count int64    `json:"count"`
	Min   any      `json:"min"`
	Max   any      `json:"max"`
}

// BatchRange describes one record batch of a device: its rows and time range.
type BatchRange struct {
	Rows    int64 `json:"rows"`
	MinTime int64 `json:"min_time"`
	MaxTime int64 `json:"max_time"`
}

// DeviceIndex is the index entry of one device: the record batches that hold its rows (in time
// order; BatchRanges is parallel to Batches), its time range, rows and per-column statistics
// (the columns its data had, sorted by name).
type DeviceIndex struct {
	Device      string        `json:"device"`
	Batches     []int         `json:"batches"`
	BatchRanges []BatchRange  `json:"batch_ranges"`
	MinTime     int64         `json:"min_time"`
	MaxTime     int64         `json:"max_time"`
	Rows        int64         `json:"rows"`
	Columns     []ColumnStats `json:"columns"`
}

// Column returns the stats of measurement name, or false when the device has no such column.
func (d *DeviceIndex) Column(name string) (ColumnStats, bool) {
	i := sort.Search(len(d.Columns), func(i int) bool { return d.Columns[i].Name >= name })
	if i < len(d.Columns) && d.Columns[i].Name == name {
		return d.Columns[i], true
	}
	return ColumnStats{}, false
}

// FileMeta is what a TsFile's schema metadata says about it.
type FileMeta struct {
	FormatVersion int               `json:"format_version"`
	Region        string            `json:"region"`
	Version       uint64            `json:"version"`
	Epoch         uint64            `json:"epoch"`
	MinTime       int64             `json:"min_time"`
	MaxTime       int64             `json:"max_time"`
	Rows          int64             `json:"rows"`
	Points        int64             `json:"points"`
	Compression   Compression       `json:"compression"`
	Progress      map[uint32]uint64 `json:"progress"`
	MinIndex      uint64            `json:"min_index"`
	MaxIndex      uint64            `json:"max_index"`
	Columns       []Column          `json:"columns"` // measurement columns of the file schema, sorted by name
	Devices       []DeviceIndex     `json:"devices"` // sorted by device
}

// Device returns the index entry of device, or nil.
func (m *FileMeta) Device(device string) *DeviceIndex {
	i := sort.Search(len(m.Devices), func(i int) bool { return m.Devices[i].Device >= device })
	if i < len(m.Devices) && m.Devices[i].Device == device {
		return &m.Devices[i]
	}
	return nil
}

// DeviceData is the rows of one device to write: Rec has an int64 "time" column first, without
// nulls and strictly increasing, then measurement columns of the six types in any order.
type DeviceData struct {
	Device string
	Rec    arrow.Record
}

// WriteOptions tune WriteFile.
type WriteOptions struct {
	Compression         Compression // "" means zstd
	MaxBatchRows        int         // <= 0 means DefaultMaxBatchRows
	CompressConcurrency int         // goroutines compressing the buffers of one batch; <= 1 means one
}

// devInput is one validated input device.
type devInput struct {
	name    string
	rec     arrow.Record
	rows    int
	colIdx  map[string]int // measurement → column of rec
	stats   []ColumnStats  // sorted by name
	minTime int64
	maxTime int64
}

// WriteFile writes data as a TsFile to w and returns the completed metadata: Region, Version,
// Epoch, Progress, MinIndex and MaxIndex are taken from meta; everything else is computed from
// data. Devices may come in any order (each at most once); a device with no rows is left out.
// The whole file is described by its schema, which is written first, so data is held in memory.
// WriteFile does not take over the records of data.
func WriteFile(w io.Writer, meta FileMeta, data []DeviceData, opts WriteOptions) (out FileMeta, err error) {
	comp := opts.Compression
	if comp == "" {
		comp = CompressionZstd
	}
	if comp, err = ParseCompression(string(comp)); err != nil {
		return FileMeta{}, err
	}
	maxRows := opts.MaxBatchRows
	if maxRows <= 0 {
		maxRows = DefaultMaxBatchRows
	}
	if meta.MinIndex > meta.MaxIndex {
		return FileMeta{}, fmt.Errorf("tsfile: index range [%d, %d] is inverted", meta.MinIndex, meta.MaxIndex)
	}

	devs, cols, err := prepareDevices(data)
	if err != nil {
		return FileMeta{}, err
	}

	out = FileMeta{
		FormatVersion: FormatVersion,
		Region:        meta.Region,
		Version:       meta.Version,
		Epoch:         meta.Epoch,
		Compression:   comp,
		Progress:      copyProgress(meta.Progress),
		MinIndex:      meta.MinIndex,
		MaxIndex:      meta.MaxIndex,
		Columns:       cols,
		Devices:       make([]DeviceIndex, len(devs)),
	}
	// Batches, time ranges and the largest buffer any batch or the dictionary holds.
	var maxBuf int64
	dictBytes := int64(0)
	batch := 0
	largest := 0
	for i, d := range devs {
		dictBytes += int64(len(d.name))
		di := &out.Devices[i]
		di.Device, di.MinTime, di.MaxTime, di.Rows, di.Columns = d.name, d.minTime, d.maxTime, int64(d.rows), d.stats
		times := d.rec.Column(0).(*array.Int64).Int64Values()
		for lo := 0; lo < d.rows; lo += maxRows {
			hi := min(lo+maxRows, d.rows)
			di.Batches = append(di.Batches, batch)
			di.BatchRanges = append(di.BatchRanges, BatchRange{Rows: int64(hi - lo), MinTime: times[lo], MaxTime: times[hi-1]})
			batch++
			largest = max(largest, hi-lo)
			for _, k := range d.colIdx {
				if s, ok := d.rec.Column(k).(*array.String); ok {
					maxBuf = max(maxBuf, int64(s.ValueOffset(hi)-s.ValueOffset(lo)))
				}
			}
		}
		out.Rows += int64(d.rows)
		for _, c := range d.stats {
			out.Points += c.Count
		}
		if i == 0 || d.minTime < out.MinTime {
			out.MinTime = d.minTime
		}
		if i == 0 || d.maxTime > out.MaxTime {
			out.MaxTime = d.maxTime
		}
	}
	maxBuf = max(maxBuf, 8*int64(largest), 4*int64(len(devs)+1), dictBytes)

	md, err := encodeMeta(&out, maxBuf)
	if err != nil {
		return FileMeta{}, err
	}
	schema := fileSchema(cols, md)

	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tsfile: write: %v", p)
		}
	}()
	if err := writeBatches(w, schema, devs, cols, maxRows, largest, comp, opts.CompressConcurrency); err != nil {
		return FileMeta{}, err
	}
	return out, nil
}

func copyProgress(p map[uint32]uint64) map[uint32]uint64 {
	out := make(map[uint32]uint64, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

// prepareDevices validates data, computes per-device stats and returns the devices sorted by
// name and the union of their columns sorted by name. The checks of the schemas come first,
// in input order; then the row checks and stats, one goroutine per core for large inputs.
func prepareDevices(data []DeviceData) ([]devInput, []Column, error) {
	devs := make([]devInput, 0, len(data))
	types := make(map[string]DataType)
	rows := 0
	for _, dd := range data {
		d, err := prepareSchema(dd, types)
		if err != nil {
			return nil, nil, fmt.Errorf("tsfile: device %s: %w", dd.Device, err)
		}
		if d.rows > 0 {
			devs = append(devs, d)
			rows += d.rows
		}
	}
	errs := make([]error, len(devs))
	workers := min(runtime.GOMAXPROCS(0), len(devs), 4, rows/(64<<10)+1)
	if workers <= 1 {
		for i := range devs {
			errs[i] = devs[i].prepareRows()
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < len(devs); i = int(next.Add(1) - 1) {
					errs[i] = devs[i].prepareRows()
				}
			}()
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			return nil, nil, fmt.Errorf("tsfile: device %s: %w", devs[i].name, err)
		}
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].name < devs[j].name })
	for i := 1; i < len(devs); i++ {
		if devs[i].name == devs[i-1].name {
			return nil, nil, fmt.Errorf("tsfile: device %s appears twice", devs[i].name)
		}
	}
	cols := make([]Column, 0, len(types))
	for n, t := range types {
		cols = append(cols, Column{Name: n, Type: t})
	}
	sort.Slice(cols, func(i, j int) bool { return cols[i].Name < cols[j].Name })
	return devs, cols, nil
}

// prepareSchema checks the device path and the record's schema; types collects the
// measurement types of all devices and catches conflicts.
func prepareSchema(dd DeviceData, types map[string]DataType) (devInput, error) {
	if err := ValidateDevice(dd.Device); err != nil {
		return devInput{}, err
	}
	rec := dd.Rec
	if rec == nil {
		return devInput{}, errors.New("nil record")
	}
	fs := rec.Schema().Fields()
	if len(fs) == 0 || fs[0].Name != TimeColumn || fs[0].Type.ID() != arrow.INT64 {
		return devInput{}, fmt.Errorf("first column must be int64 %q", TimeColumn)
	}
	d := devInput{name: dd.Device, rec: rec, rows: int(rec.NumRows()), colIdx: make(map[string]int, len(fs)-1)}
	if d.rows == 0 {
		return d, nil // left out of the file
	}
	d.stats = make([]ColumnStats, 0, len(fs)-1)
	for k, f := range fs[1:] {
		if err := ValidateMeasurement(f.Name); err != nil {
			return devInput{}, err
		}
		if _, dup := d.colIdx[f.Name]; dup {
			return devInput{}, fmt.Errorf("measurement %q appears twice", f.Name)
		}
		t, err := FromArrow(f.Type)
		if err != nil {
			return devInput{}, fmt.Errorf("measurement %q: %w", f.Name, err)
		}
		if old, ok := types[f.Name]; ok && old != t {
			return devInput{}, fmt.Errorf("measurement %q: type conflict: %s here, %s in another device", f.Name, t, old)
		}
		types[f.Name] = t
		d.colIdx[f.Name] = k + 1
		d.stats = append(d.stats, ColumnStats{Name: f.Name, Type: t})
	}
	sort.Slice(d.stats, func(i, j int) bool { return d.stats[i].Name < d.stats[j].Name })
	return d, nil
}

// prepareRows checks the times (no nulls, strictly increasing) and computes the time range
// and the stats of every column.
func (d *devInput) prepareRows() error {
	tcol := d.rec.Column(0).(*array.Int64)
	if tcol.NullN() != 0 {
		return errors.New("time column has nulls")
	}
	times := tcol.Int64Values()
	if i := firstUnsorted(times); i > 0 {
		return fmt.Errorf("times not strictly increasing at row %d (%d after %d)", i, times[i], times[i-1])
	}
	d.minTime, d.maxTime = times[0], times[len(times)-1]
	for k := range d.stats {
		acc := statAcc{typ: d.stats[k].Type}
		if err := acc.add(d.rec.Column(d.colIdx[d.stats[k].Name])); err != nil {
			return fmt.Errorf("measurement %q: %w", d.stats[k].Name, err)
		}
		d.stats[k] = acc.result(d.stats[k].Name)
	}
	return nil
}

// firstUnsorted returns the first i > 0 with ts[i] <= ts[i-1], or 0.
func firstUnsorted(ts []int64) int {
	bad := 0 // branch-free count of violations
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			bad++
		}
	}
	if bad == 0 {
		return 0
	}
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return i
		}
	}
	return 0
}

// fileSchema is the Arrow schema of a TsFile with the given measurement columns.
func fileSchema(cols []Column, md arrow.Metadata) *arrow.Schema {
	fields := make([]arrow.Field, 0, len(cols)+2)
	fields = append(fields,
		arrow.Field{Name: DeviceColumn, Type: deviceType},
		arrow.Field{Name: TimeColumn, Type: arrow.PrimitiveTypes.Int64})
	for _, c := range cols {
		fields = append(fields, arrow.Field{Name: c.Name, Type: c.Type.ArrowType(), Nullable: true})
	}
	return arrow.NewSchema(fields, &md)
}

var deviceType = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

// posWriter gives an io.Writer the one Seek the Arrow file writer uses (asking the position)
// and coalesces its small writes (message prefixes, metadata, padding); large buffers go
// straight through, uncopied.
type posWriter struct {
	w     io.Writer
	pos   int64
	small []byte // pending small writes; nil: no coalescing
}

const smallWrite = 4 << 10

func (p *posWriter) Write(b []byte) (int, error) {
	if p.small == nil {
		n, err := p.w.Write(b)
		p.pos += int64(n)
		return n, err
	}
	if len(b) < smallWrite {
		if len(p.small)+len(b) > cap(p.small) {
			if err := p.flush(); err != nil {
				return 0, err
			}
		}
		p.small = append(p.small, b...)
		p.pos += int64(len(b))
		return len(b), nil
	}
	if err := p.flush(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.pos += int64(n)
	return n, err
}

// flush writes the pending small writes.
func (p *posWriter) flush() error {
	if len(p.small) == 0 {
		return nil
	}
	n, err := p.w.Write(p.small)
	if err == nil && n < len(p.small) {
		err = io.ErrShortWrite
	}
	p.small = p.small[:0]
	return err
}

func (p *posWriter) Seek(offset int64, whence int) (int64, error) {
	if offset == 0 && whence == io.SeekCurrent {
		return p.pos, nil
	}
	return p.pos, errors.New("tsfile: writer does not seek")
}

// idxPool recycles the dictionary index buffers of WriteFile.
var idxPool sync.Pool

func writeBatches(w io.Writer, schema *arrow.Schema, devs []devInput, cols []Column, maxRows, largest int, comp Compression, conc int) error {
	mem := memory.DefaultAllocator
	pw := &posWriter{w: w, small: make([]byte, 0, 64<<10)}
	opts := []ipc.Option{ipc.WithSchema(schema), ipc.WithAllocator(mem)}
	switch comp {
	case CompressionZstd:
		opts = append(opts, ipc.WithZstd())
	case CompressionLZ4:
		opts = append(opts, ipc.WithLZ4())
	}
	if conc > 1 && comp != CompressionNone {
		opts = append(opts, ipc.WithCompressConcurrency(conc))
	}
	fw, err := ipc.NewFileWriter(pw, opts...)
	if err != nil {
		return fmt.Errorf("tsfile: write: %w", err)
	}

	// The one dictionary: every device, sorted.
	sb := array.NewStringBuilder(mem)
	for _, d := range devs {
		sb.Append(d.name)
	}
	dict := sb.NewArray()
	sb.Release()
	defer dict.Release()

	// Dictionary indices: one allocation; device i owns a run of min(rows, maxRows) copies of i.
	total := 0
	for _, d := range devs {
		total += min(d.rows, maxRows)
	}
	var idx []int32
	if p, ok := idxPool.Get().(*[]int32); ok && cap(*p) >= total {
		idx = (*p)[:total]
	} else {
		idx = make([]int32, total)
	}
	defer idxPool.Put(&idx)
	idxBuf := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(idx))
	defer idxBuf.Release()

	// All-null columns, one per type, sliced for devices lacking a column.
	nulls := make(map[DataType]arrow.Array)
	defer func() {
		for _, a := range nulls {
			a.Release()
		}
	}()
	nullCol := func(t DataType, n int) arrow.Array {
		a, ok := nulls[t]
		if !ok {
			a = array.MakeArrayOfNull(mem, t.ArrowType(), largest)
			nulls[t] = a
		}
		return array.NewSlice(a, 0, int64(n))
	}

	arrs := make([]arrow.Array, len(cols)+2)
	base := 0
	for di, d := range devs {
		run := min(d.rows, maxRows)
		fill := idx[base : base+run]
		for i := range fill {
			fill[i] = int32(di)
		}
		for lo := 0; lo < d.rows; lo += maxRows {
			hi := min(lo+maxRows, d.rows)
			n := hi - lo
			idata := array.NewData(deviceType, n, []*memory.Buffer{nil, idxBuf}, nil, 0, base)
			idata.SetDictionary(dict.Data())
			arrs[0] = array.MakeFromData(idata)
			idata.Release()
			arrs[1] = array.NewSlice(d.rec.Column(0), int64(lo), int64(hi))
			for j, c := range cols {
				if k, ok := d.colIdx[c.Name]; ok {
					arrs[j+2] = array.NewSlice(d.rec.Column(k), int64(lo), int64(hi))
				} else {
					arrs[j+2] = nullCol(c.Type, n)
				}
			}
			rec := array.NewRecord(schema, arrs, int64(n))
			for _, a := range arrs {
				a.Release()
			}
			err := fw.Write(rec)
			rec.Release()
			if err != nil {
				return fmt.Errorf("tsfile: write: device %s: %w", d.name, err)
			}
		}
		base += run
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("tsfile: write: %w", err)
	}
	if err := pw.flush(); err != nil {
		return fmt.Errorf("tsfile: write: %w", err)
	}
	return nil
}
