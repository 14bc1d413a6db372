package tsfile

import (
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// ConcatRecords joins records of one schema into one (a new reference; one record is
// returned retained, not copied).
func ConcatRecords(mem memory.Allocator, recs []arrow.Record) (arrow.Record, error) {
	if len(recs) == 0 {
		return nil, fmt.Errorf("concatenate: no records")
	}
	if len(recs) == 1 {
		recs[0].Retain()
		return recs[0], nil
	}
	n := int(recs[0].NumCols())
	cols := make([]arrow.Array, n)
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	for i := 0; i < n; i++ {
		parts := make([]arrow.Array, len(recs))
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		a, err := array.Concatenate(parts, mem)
		if err != nil {
			for _, c := range cols[:i] {
				c.Release()
			}
			return nil, fmt.Errorf("concatenate: %w", err)
		}
		cols[i] = a
	}
	out := array.NewRecord(recs[0].Schema(), cols, rows)
	for _, a := range cols {
		a.Release()
	}
	return out, nil
}
