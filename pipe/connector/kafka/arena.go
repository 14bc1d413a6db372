package kafka

import "github.com/twmb/franz-go/pkg/kgo"

// arena hands out records and value bytes from slabs that are reused once every record
// handed out is finished (its promise called): a send's records live until its flush,
// and the next send reuses their memory, so steady exporting allocates almost nothing.
type arena struct {
	recs    [][]kgo.Record
	ri, rj  int // next record: recs[ri][rj]
	chunks  [][]byte
	ci      int // chunk being filled: chunks[ci][len:]
	minSize int
}

const (
	recSlab   = 1024
	chunkSize = 1 << 20
)

// record returns a zeroed record.
func (a *arena) record() *kgo.Record {
	if a.ri == len(a.recs) {
		a.recs = append(a.recs, make([]kgo.Record, recSlab))
	}
	r := &a.recs[a.ri][a.rj]
	*r = kgo.Record{}
	if a.rj++; a.rj == recSlab {
		a.ri, a.rj = a.ri+1, 0
	}
	return r
}

// room returns a buffer of length 0 with at least n free bytes after its end, into which
// the caller appends one value and then calls take with the result.
func (a *arena) room(n int) []byte {
	for a.ci < len(a.chunks) {
		c := a.chunks[a.ci]
		if cap(c)-len(c) >= n {
			return c[len(c):len(c):cap(c)]
		}
		a.ci++
	}
	a.chunks = append(a.chunks, make([]byte, 0, max(chunkSize, n)))
	return a.chunks[a.ci][:0]
}

// take marks v (a buffer from room, appended to within its capacity) as used and returns
// it with its capacity cut to its length.
func (a *arena) take(v []byte) []byte {
	c := a.chunks[a.ci]
	a.chunks[a.ci] = c[:len(c)+len(v)]
	return v[:len(v):len(v)]
}

// copyOf returns a copy of b in the arena.
func (a *arena) copyOf(b []byte) []byte {
	return a.take(append(a.room(len(b)), b...))
}

// reset makes everything handed out reusable: call it only when no record is in flight.
func (a *arena) reset() {
	for i := 0; i < a.ri; i++ {
		clear(a.recs[i]) // drop references to keys, headers and values
	}
	if a.ri < len(a.recs) {
		clear(a.recs[a.ri][:a.rj])
	}
	a.ri, a.rj = 0, 0
	for i := range a.chunks {
		a.chunks[i] = a.chunks[i][:0]
	}
	a.ci = 0
}
