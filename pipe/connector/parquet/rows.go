package parquet

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	pq "github.com/parquet-go/parquet-go"
)

// liveRows marks the rows of a tablet record that hold at least one value (a row of nulls
// only is no point and is not exported); nil means all of them.
func liveRows(rec arrow.Record) []bool {
	for k := 1; k < int(rec.NumCols()); k++ {
		if rec.Column(k).NullN() == 0 {
			return nil
		}
	}
	n := int(rec.NumRows())
	live := make([]bool, n)
	for k := 1; k < int(rec.NumCols()); k++ {
		c := rec.Column(k)
		for i := range live {
			if !live[i] && c.IsValid(i) {
				live[i] = true
			}
		}
	}
	return live
}

// forRuns calls fn with the maximal runs [lo, hi) of rows i in [lo, hi) with keep(i).
func forRuns(lo, hi int, keep func(i int) bool, fn func(lo, hi int) error) error {
	for lo < hi {
		for lo < hi && !keep(lo) {
			lo++
		}
		end := lo
		for end < hi && keep(end) {
			end++
		}
		if end > lo {
			if err := fn(lo, end); err != nil {
				return err
			}
		}
		lo = end
	}
	return nil
}

// rowHasher hashes a row (device, time, the non-null values by measurement name and
// type) the same way from an Arrow tablet record and from a Parquet row of this sink.
type rowHasher struct {
	seed maphash.Seed
	buf  []byte
}

func newRowHasher() *rowHasher { return &rowHasher{seed: maphash.MakeSeed()} }

// Type tags of hashed values: Arrow and Parquet agree on them.
const (
	tagBool byte = iota + 1
	tagInt32
	tagInt64
	tagFloat
	tagDouble
	tagText
)

func (h *rowHasher) start(device string, t int64) {
	h.buf = append(h.buf[:0], device...)
	h.buf = append(h.buf, 0)
	h.buf = binary.LittleEndian.AppendUint64(h.buf, uint64(t))
}

func (h *rowHasher) value(name string, tag byte, bits uint64, text []byte) {
	h.buf = append(h.buf, name...)
	h.buf = append(h.buf, 0, tag)
	if tag == tagText {
		h.buf = binary.LittleEndian.AppendUint32(h.buf, uint32(len(text)))
		h.buf = append(h.buf, text...)
	} else {
		h.buf = binary.LittleEndian.AppendUint64(h.buf, bits)
	}
}

func (h *rowHasher) sum() uint64 { return maphash.Bytes(h.seed, h.buf) }

// recordOrder returns rec's measurement columns ordered by name.
func recordOrder(rec arrow.Record) []int {
	fields := rec.Schema().Fields()
	order := make([]int, 0, len(fields)-1)
	for k := 1; k < len(fields); k++ {
		order = append(order, k)
	}
	sort.Slice(order, func(i, j int) bool { return fields[order[i]].Name < fields[order[j]].Name })
	return order
}

// arrowRow hashes row i of a tablet record of device; order is recordOrder(rec).
func (h *rowHasher) arrowRow(device string, rec arrow.Record, order []int, i int) uint64 {
	h.start(device, rec.Column(0).(*array.Int64).Value(i))
	fields := rec.Schema().Fields()
	for _, k := range order {
		c := rec.Column(k)
		if c.IsNull(i) {
			continue
		}
		name := fields[k].Name
		switch c := c.(type) {
		case *array.Boolean:
			var b uint64
			if c.Value(i) {
				b = 1
			}
			h.value(name, tagBool, b, nil)
		case *array.Int32:
			h.value(name, tagInt32, uint64(int64(c.Value(i))), nil)
		case *array.Int64:
			h.value(name, tagInt64, uint64(c.Value(i)), nil)
		case *array.Float32:
			h.value(name, tagFloat, uint64(math.Float32bits(c.Value(i))), nil)
		case *array.Float64:
			h.value(name, tagDouble, math.Float64bits(c.Value(i)), nil)
		case *array.String:
			h.value(name, tagText, 0, []byte(c.Value(i)))
		}
	}
	return h.sum()
}

// parquetRow hashes a row read from a file of this sink (columns device, time, then the
// measurements sorted by name).
func (h *rowHasher) parquetRow(names []string, r pq.Row) uint64 {
	var device string
	var t int64
	for _, v := range r {
		switch v.Column() {
		case 0:
			device = string(v.ByteArray())
		case 1:
			t = v.Int64()
		}
	}
	h.start(device, t)
	for _, v := range r {
		ci := v.Column()
		if ci < 2 || v.IsNull() {
			continue
		}
		name := names[ci]
		switch v.Kind() {
		case pq.Boolean:
			var b uint64
			if v.Boolean() {
				b = 1
			}
			h.value(name, tagBool, b, nil)
		case pq.Int32:
			h.value(name, tagInt32, uint64(int64(v.Int32())), nil)
		case pq.Int64:
			h.value(name, tagInt64, uint64(v.Int64()), nil)
		case pq.Float:
			h.value(name, tagFloat, uint64(math.Float32bits(v.Float())), nil)
		case pq.Double:
			h.value(name, tagDouble, math.Float64bits(v.Double()), nil)
		case pq.ByteArray:
			h.value(name, tagText, 0, v.ByteArray())
		}
	}
	return h.sum()
}
