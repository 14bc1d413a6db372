package pipe

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ProgressIndex is a per-origin vector of the highest write index covered, as in
// IoTConsensus: origin (the replica that first took the write) → index at that origin.
// The zero value (nil) covers nothing.
type ProgressIndex map[uint32]uint64

// Order is how two progress indexes compare.
type Order int

// Orders of two progress indexes: a vector is only partially ordered.
const (
	Equal      Order = iota // same vector
	Before                  // every entry ≤, one <
	After                   // every entry ≥, one >
	Concurrent              // neither covers the other
)

func (o Order) String() string {
	return [...]string{"equal", "before", "after", "concurrent"}[o]
}

// Clone returns a copy.
func (p ProgressIndex) Clone() ProgressIndex {
	if p == nil {
		return nil
	}
	out := make(ProgressIndex, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

// Covers reports whether p has seen everything q has: p[o] ≥ q[o] for every origin of q.
func (p ProgressIndex) Covers(q ProgressIndex) bool {
	for o, v := range q {
		if v > 0 && p[o] < v {
			return false
		}
	}
	return true
}

// CoversIndex reports whether p covers index idx of origin.
func (p ProgressIndex) CoversIndex(origin uint32, idx uint64) bool { return p[origin] >= idx }

// Compare orders p against q.
func (p ProgressIndex) Compare(q ProgressIndex) Order {
	pc, qc := p.Covers(q), q.Covers(p)
	switch {
	case pc && qc:
		return Equal
	case pc:
		return After
	case qc:
		return Before
	}
	return Concurrent
}

// Merge returns the entry-wise maximum of p and q (a new map).
func (p ProgressIndex) Merge(q ProgressIndex) ProgressIndex {
	out := p.Clone()
	if out == nil {
		out = ProgressIndex{}
	}
	for o, v := range q {
		if v > out[o] {
			out[o] = v
		}
	}
	return out
}

// Advance raises origin's entry to idx in place (p must not be nil).
func (p ProgressIndex) Advance(origin uint32, idx uint64) {
	if idx > p[origin] {
		p[origin] = idx
	}
}

// String renders p as "origin:index,..." in origin order, e.g. "1:42,2:7".
func (p ProgressIndex) String() string {
	keys := make([]uint32, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", k, p[k])
	}
	return b.String()
}

// ParseProgress parses the String form.
func ParseProgress(s string) (ProgressIndex, error) {
	p := ProgressIndex{}
	if s == "" {
		return p, nil
	}
	for _, part := range strings.Split(s, ",") {
		o, i, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("progress %q: entry %q is not origin:index", s, part)
		}
		ov, err := strconv.ParseUint(o, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("progress %q: origin %q: %w", s, o, err)
		}
		iv, err := strconv.ParseUint(i, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("progress %q: index %q: %w", s, i, err)
		}
		if _, dup := p[uint32(ov)]; dup {
			return nil, fmt.Errorf("progress %q: origin %d twice", s, ov)
		}
		p[uint32(ov)] = iv
	}
	return p, nil
}

// MarshalJSON encodes p as its String form.
func (p ProgressIndex) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON decodes the String form.
func (p *ProgressIndex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseProgress(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}
