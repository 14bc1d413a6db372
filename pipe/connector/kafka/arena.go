package kafka

import "github.com/twmb/franz-go/pkg/kgo"

// arena hands out records and value bytes from slabs that are reused once every record
// handed out is finished (its promise called): a send's records live until its flush,
// and the next send reuses their memory, so steady exporting allocates almost nothing.
type arena struct {
	recs   [][]kgo.Record
	ri, rj int // next record: recs[ri][rj]
	chunks [][]byte
	list   []*kgo.Record // a send's records in order, kept for the next send (exactly-once)
	ci     int           // chunk being filled: chunks[ci][len:]
}

const (
	recSlab   = 1024
	chunkSize = 1 << 20
)

// Slabs grow from small (an arena may serve a send of one record) to recSlab records and
// chunkSize bytes.
const (
	firstRecSlab = 64
	firstChunk   = 16 << 10
)

// record returns a record, zeroed or as a previous send left it: the caller assigns it
// whole (the one write of its memory; reset does not zero the records handed out).
func (a *arena) record() *kgo.Record {
	if a.ri == len(a.recs) {
		n := firstRecSlab
		if a.ri > 0 {
			n = min(recSlab, 2*len(a.recs[a.ri-1]))
		}
		a.recs = append(a.recs, make([]kgo.Record, n))
	}
	slab := a.recs[a.ri]
	r := &slab[a.rj]
	if a.rj++; a.rj == len(slab) {
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
	size := firstChunk
	if k := len(a.chunks); k > 0 {
		size = min(chunkSize, 2*cap(a.chunks[k-1]))
	}
	a.chunks = append(a.chunks, make([]byte, 0, max(size, n)))
	a.ci = len(a.chunks) - 1
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
	// the records keep their references (to this arena's chunks, shared keys and headers)
	// until they are handed out again and overwritten
	a.ri, a.rj = 0, 0
	clear(a.list)
	a.list = a.list[:0]
	for i := range a.chunks {
		a.chunks[i] = a.chunks[i][:0]
	}
	a.ci = 0
}
