package parquet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/tsfile"
)

// chunkRows is how many rows are converted to parquet values at a time.
const chunkRows = 2048

// Codec returns the parquet-go codec of a compression name (zstd, snappy, none).
func Codec(name string) (compress.Codec, error) {
	switch name {
	case "zstd":
		return &zstd.Codec{Level: zstd.DefaultLevel}, nil
	case "snappy":
		return &snappy.Codec{}, nil
	case "none":
		return &pq.Uncompressed, nil
	}
	return nil, fmt.Errorf("unknown compression %q (want zstd, snappy or none)", name)
}

// fileWriter writes one file under its temporary name.
type fileWriter struct {
	fs        vfs.FS
	tmp       string
	f         vfs.File
	w         *pq.GenericWriter[any]
	cw        []*pq.ColumnWriter
	cols      []tsfile.Column
	index     map[string]int // measurement → position in cols
	rows      int64
	groupRows int64
	groupSize int64
	vals      []pq.Value
	src       []int // per column of cols: the column of the record being written, or -1
}

// createFile creates tmp (truncating a stale one) and starts a parquet file in it.
func createFile(fs vfs.FS, tmp string, schema *pq.Schema, cols []tsfile.Column, groupSize int64, opts []pq.WriterOption) (*fileWriter, error) {
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("parquet: create %s: %w", tmp, err)
	}
	w := &fileWriter{fs: fs, tmp: tmp, f: f, cols: cols, groupSize: groupSize,
		index: make(map[string]int, len(cols)), vals: make([]pq.Value, chunkRows), src: make([]int, len(cols))}
	for i, c := range cols {
		w.index[c.Name] = i
	}
	w.w = pq.NewGenericWriter[any](f, append([]pq.WriterOption{schema}, opts...)...)
	w.cw = w.w.ColumnWriters()
	if len(w.cw) != len(cols)+2 {
		w.abort()
		return nil, fmt.Errorf("parquet: schema has %d columns, want %d", len(w.cw), len(cols)+2)
	}
	return w, nil
}

// size estimates the file's size so far (the open row group uncompressed).
func (w *fileWriter) size() int64 { return w.w.Size() }

// write appends rows [lo, hi) of rec (a tablet record: time first, then measurements that
// must be among the file's columns with the same types) as rows of device.
func (w *fileWriter) write(device string, rec arrow.Record, lo, hi int) error {
	for i := range w.src {
		w.src[i] = -1
	}
	fields := rec.Schema().Fields()
	for k := 1; k < len(fields); k++ {
		i, ok := w.index[fields[k].Name]
		if !ok {
			return fmt.Errorf("parquet: column %q is not in the file's schema", fields[k].Name)
		}
		if dt, err := tsfile.FromArrow(fields[k].Type); err != nil || dt != w.cols[i].Type {
			return fmt.Errorf("parquet: column %q is %s, the file's is %s", fields[k].Name, fields[k].Type, w.cols[i].Type)
		}
		w.src[i] = k
	}
	tc, ok := rec.Column(0).(*array.Int64)
	if !ok {
		return fmt.Errorf("parquet: time column is %s, not int64", rec.Column(0).DataType())
	}
	times := tc.Int64Values()
	dev := pq.ByteArrayValue(unsafe.Slice(unsafe.StringData(device), len(device))).Level(0, 0, 0)
	for lo < hi {
		n := min(hi-lo, chunkRows, int(w.groupSize-w.groupRows))
		vals := w.vals[:n]
		for i := range vals {
			vals[i] = dev
		}
		if _, err := w.cw[0].WriteRowValues(vals); err != nil {
			return fmt.Errorf("parquet: write %s: %w", w.tmp, err)
		}
		for i, t := range times[lo : lo+n] {
			vals[i] = pq.Int64Value(t)
			vals[i].SetColumnIndex(1)
		}
		if _, err := w.cw[1].WriteRowValues(vals); err != nil {
			return fmt.Errorf("parquet: write %s: %w", w.tmp, err)
		}
		for i, k := range w.src {
			ci := i + 2
			if k < 0 {
				null := pq.Value{}.Level(0, 0, ci)
				for r := range vals {
					vals[r] = null
				}
			} else {
				fillValues(vals, rec.Column(k), lo, ci)
			}
			if _, err := w.cw[ci].WriteRowValues(vals); err != nil {
				return fmt.Errorf("parquet: write %s: %w", w.tmp, err)
			}
		}
		lo += n
		w.rows += int64(n)
		w.groupRows += int64(n)
		if w.groupRows >= w.groupSize {
			if err := w.w.Flush(); err != nil {
				return fmt.Errorf("parquet: write %s: %w", w.tmp, err)
			}
			w.groupRows = 0
		}
	}
	return nil
}

// fillValues sets vals to the values of a at rows lo.. as column ci (null where a is).
// Levels are set in place (Value.Level does not inline).
func fillValues(vals []pq.Value, a arrow.Array, lo, ci int) {
	nulls := a.NullN() > 0
	null := pq.Value{}.Level(0, 0, ci)
	set := func(v *pq.Value) {
		v.SetDefinitionLevel(1)
		v.SetColumnIndex(ci)
	}
	switch a := a.(type) {
	case *array.Boolean:
		for i := range vals {
			if nulls && a.IsNull(lo+i) {
				vals[i] = null
				continue
			}
			vals[i] = pq.BooleanValue(a.Value(lo + i))
			set(&vals[i])
		}
	case *array.Int32:
		vs := a.Int32Values()[lo:]
		for i := range vals {
			if nulls && a.IsNull(lo+i) {
				vals[i] = null
				continue
			}
			vals[i] = pq.Int32Value(vs[i])
			set(&vals[i])
		}
	case *array.Int64:
		vs := a.Int64Values()[lo:]
		for i := range vals {
			if nulls && a.IsNull(lo+i) {
				vals[i] = null
				continue
			}
			vals[i] = pq.Int64Value(vs[i])
			set(&vals[i])
		}
	case *array.Float32:
		vs := a.Float32Values()[lo:]
		for i := range vals {
			if nulls && a.IsNull(lo+i) {
				vals[i] = null
				continue
			}
			vals[i] = pq.FloatValue(vs[i])
			set(&vals[i])
		}
	case *array.Float64:
		vs := a.Float64Values()[lo:]
		for i := range vals {
			if nulls && a.IsNull(lo+i) {
				vals[i] = null
				continue
			}
			vals[i] = pq.DoubleValue(vs[i])
			set(&vals[i])
		}
	case *array.String:
		for i := range vals {
			if nulls && a.IsNull(lo+i) {
				vals[i] = null
				continue
			}
			s := a.Value(lo + i)
			vals[i] = pq.ByteArrayValue(unsafe.Slice(unsafe.StringData(s), len(s)))
			set(&vals[i])
		}
	}
}

// finish completes the file: footer with meta, fsync, close. The file stays under its
// temporary name; on error it is removed.
func (w *fileWriter) finish(meta [][2]string) error {
	for _, kv := range meta {
		w.w.SetKeyValueMetadata(kv[0], kv[1])
	}
	err := w.w.Close()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		_ = w.fs.Remove(w.tmp)
		return fmt.Errorf("parquet: finish %s: %w", w.tmp, err)
	}
	return nil
}

// abort drops the file: closes and removes it.
func (w *fileWriter) abort() error {
	var errs []error
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			errs = append(errs, err)
		}
		w.f = nil
	}
	if err := w.fs.Remove(w.tmp); err != nil && !vfs.IsNotExist(err) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("parquet: drop %s: %w", filepath.Base(w.tmp), errors.Join(errs...))
	}
	return nil
}
