package engine

import (
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/tsfile"
)

// source is one sorted run of a device's rows with its resolution version: a memtable tablet
// or a TsFile's rows. Sources are given in ascending priority; a later source wins ties.
type source struct {
	ver  uint64
	rec  arrow.Record // "time" first, times strictly increasing
	minT int64
	maxT int64
}

func newSource(ver uint64, rec arrow.Record) source {
	ts := rec.Column(0).(*array.Int64).Int64Values()
	s := source{ver: ver, rec: rec}
	if len(ts) > 0 {
		s.minT, s.maxT = ts[0], ts[len(ts)-1]
	}
	return s
}

// tomb is a deletion: it hides points of matching series in [minT, maxT] whose version is lower.
type tomb struct {
	Pattern tsfile.Pattern `json:"pattern"`
	MinTime int64          `json:"min_time"`
	MaxTime int64          `json:"max_time"`
	Version uint64         `json:"version"`
	Index   uint64         `json:"index"`
	// Origin and OriginIndex identify the deletion at the replica that first took it.
	Origin      uint32 `json:"origin,omitempty"`
	OriginIndex uint64 `json:"origin_index,omitempty"`
	// File names the received file the deletion came with (Index 0: it has no WAL entry;
	// Version is the file's).
	File string `json:"file,omitempty"`
}

const maxOutRows = 65536

// mergeDevice merges srcs into records of columns cols restricted to [minT, maxT]: for a
// (time, column), the value of the highest-priority source holding a non-null value that no
// tombstone of a higher version hides. Rows with no value in any output column are dropped.
func mergeDevice(mem memory.Allocator, device string, srcs []source, tombs []tomb, cols []tsfile.Column, minT, maxT int64, emit func(arrow.Record) error) error {
	if len(srcs) == 0 || len(cols) == 0 {
		return nil
	}
	schema := tsfile.TabletSchema(device, cols)
	// per source, per output column: the array (nil when absent) and hiding time ranges
	colArr := make([][]arrow.Array, len(srcs))
	hidden := make([][][][2]int64, len(srcs))
	anyTomb := false
	for i, s := range srcs {
		colArr[i] = make([]arrow.Array, len(cols))
		hidden[i] = make([][][2]int64, len(cols))
		for c, col := range cols {
			if idx := s.rec.Schema().FieldIndices(col.Name); len(idx) > 0 {
				colArr[i][c] = s.rec.Column(idx[0])
			}
			for _, t := range tombs {
				if t.Version > s.ver && t.MinTime <= s.maxT && t.MaxTime >= s.minT && t.Pattern.Match(device, col.Name) {
					hidden[i][c] = append(hidden[i][c], [2]int64{t.MinTime, t.MaxTime})
					anyTomb = true
				}
			}
		}
	}
	if !anyTomb {
		order := make([]int, len(srcs))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return srcs[order[a]].minT < srcs[order[b]].minT })
		disjoint := true
		for k := 1; k < len(order); k++ {
			if srcs[order[k]].minT <= srcs[order[k-1]].maxT {
				disjoint = false
				break
			}
		}
		if disjoint {
			for _, i := range order {
				if err := emitProjected(mem, schema, srcs[i], colArr[i], minT, maxT, emit); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return mergeRows(mem, schema, srcs, colArr, hidden, minT, maxT, emit)
}

// emitProjected emits the rows of s in [minT, maxT] with the output columns, dropping rows
// with no value.
func emitProjected(mem memory.Allocator, schema *arrow.Schema, s source, cols []arrow.Array, minT, maxT int64, emit func(arrow.Record) error) error {
	ts := s.rec.Column(0).(*array.Int64).Int64Values()
	lo := sort.Search(len(ts), func(i int) bool { return ts[i] >= minT })
	hi := sort.Search(len(ts), func(i int) bool { return ts[i] > maxT })
	if lo >= hi {
		return nil
	}
	nulls := false
	for _, a := range cols {
		if a == nil || a.NullN() > 0 {
			nulls = true
		}
	}
	if nulls {
		// keep only rows with some value; fall back to the row builder
		return mergeRows(mem, schema, []source{s}, [][]arrow.Array{cols}, [][][][2]int64{make([][][2]int64, len(cols))}, minT, maxT, emit)
	}
	for start := lo; start < hi; start += maxOutRows {
		end := min(start+maxOutRows, hi)
		arrs := make([]arrow.Array, 0, len(cols)+1)
		arrs = append(arrs, array.NewSlice(s.rec.Column(0), int64(start), int64(end)))
		for _, a := range cols {
			arrs = append(arrs, array.NewSlice(a, int64(start), int64(end)))
		}
		rec := array.NewRecord(schema, arrs, int64(end-start))
		for _, a := range arrs {
			a.Release()
		}
		err := emit(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

type rowRef struct {
	t   int64
	src int32
	row int32
}

func isHidden(rs [][2]int64, t int64) bool {
	for _, r := range rs {
		if t >= r[0] && t <= r[1] {
			return true
		}
	}
	return false
}

// mergeRows is the general merge: row by row, resolving each (time, column) separately.
func mergeRows(mem memory.Allocator, schema *arrow.Schema, srcs []source, colArr [][]arrow.Array, hidden [][][][2]int64, minT, maxT int64, emit func(arrow.Record) error) error {
	var refs []rowRef
	for i, s := range srcs {
		ts := s.rec.Column(0).(*array.Int64).Int64Values()
		lo := sort.Search(len(ts), func(k int) bool { return ts[k] >= minT })
		for k := lo; k < len(ts) && ts[k] <= maxT; k++ {
			refs = append(refs, rowRef{t: ts[k], src: int32(i), row: int32(k)})
		}
	}
	sort.Slice(refs, func(a, b int) bool {
		if refs[a].t != refs[b].t {
			return refs[a].t < refs[b].t
		}
		return refs[a].src < refs[b].src
	})
	ncol := len(schema.Fields()) - 1
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	picks := make([]int, ncol)
	pickSrc := make([]int32, ncol)
	flush := func() error {
		if b.Field(0).Len() == 0 {
			return nil
		}
		rec := b.NewRecord()
		defer rec.Release()
		return emit(rec)
	}
	for g := 0; g < len(refs); {
		e := g
		for e < len(refs) && refs[e].t == refs[g].t {
			e++
		}
		any := false
		for c := 0; c < ncol; c++ {
			picks[c] = -1
			for k := e - 1; k >= g; k-- {
				r := refs[k]
				a := colArr[r.src][c]
				if a == nil || a.IsNull(int(r.row)) || isHidden(hidden[r.src][c], r.t) {
					continue
				}
				picks[c], pickSrc[c] = int(r.row), r.src
				any = true
				break
			}
		}
		if any {
			b.Field(0).(*array.Int64Builder).Append(refs[g].t)
			for c := 0; c < ncol; c++ {
				if picks[c] < 0 {
					b.Field(c + 1).AppendNull()
				} else {
					tsfile.AppendValue(b.Field(c+1), colArr[pickSrc[c]][c], picks[c])
				}
			}
			if b.Field(0).Len() >= maxOutRows {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		g = e
	}
	return flush()
}

// nullOut returns rec with the cells of columns matching p (for device) in [minT, maxT] set
// to null, and whether anything changed.
func nullOut(mem memory.Allocator, device string, rec arrow.Record, p tsfile.Pattern, minT, maxT int64) (arrow.Record, bool) {
	ts := rec.Column(0).(*array.Int64).Int64Values()
	lo := sort.Search(len(ts), func(i int) bool { return ts[i] >= minT })
	hi := sort.Search(len(ts), func(i int) bool { return ts[i] > maxT })
	if lo >= hi {
		return rec, false
	}
	fs := rec.Schema().Fields()
	changed := false
	arrs := make([]arrow.Array, len(fs))
	arrs[0] = rec.Column(0)
	arrs[0].Retain()
	for c := 1; c < len(fs); c++ {
		col := rec.Column(c)
		if !p.Match(device, fs[c].Name) {
			col.Retain()
			arrs[c] = col
			continue
		}
		changed = true
		bld := array.NewBuilder(mem, fs[c].Type)
		for i := 0; i < col.Len(); i++ {
			if i >= lo && i < hi {
				bld.AppendNull()
			} else {
				tsfile.AppendValue(bld, col, i)
			}
		}
		arrs[c] = bld.NewArray()
		bld.Release()
	}
	out := array.NewRecord(rec.Schema(), arrs, rec.NumRows())
	for _, a := range arrs {
		a.Release()
	}
	if !changed {
		out.Release()
		return rec, false
	}
	return out, true
}
