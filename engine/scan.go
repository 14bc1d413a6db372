package engine

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/zeebo/xxh3"

	"github.com/weir-dev/weir/tsfile"
)

// Query selects what Scan reads: series matching Pattern (zero = all), optionally only the
// named measurements, within [MinTime, MaxTime] (both zero = all time).
type Query struct {
	Pattern      tsfile.Pattern
	Measurements []string
	MinTime      int64
	MaxTime      int64
}

func (q Query) timeRange() (int64, int64) {
	if q.MinTime == 0 && q.MaxTime == 0 {
		return math.MinInt64, math.MaxInt64
	}
	return q.MinTime, q.MaxTime
}

func sortColumns(cols []tsfile.Column) {
	sort.Slice(cols, func(i, j int) bool { return cols[i].Name < cols[j].Name })
}

// snapshot is a consistent view of a region for one scan.
type snapshot struct {
	mems   []*memSnap
	files  []*fileHandle
	tombs  []tomb
	schema map[string]tsfile.DataType
}

type memSnap struct {
	version uint64
	devices map[string][]*tsfile.Tablet
}

func (r *Region) snapshot(q Query) *snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &snapshot{tombs: append([]tomb(nil), r.man.Tombstones...), schema: make(map[string]tsfile.DataType, len(r.man.Schema))}
	for k, v := range r.man.Schema {
		s.schema[k] = v
	}
	for _, m := range append(append([]*memtable(nil), r.immutables...), r.live) {
		ms := &memSnap{version: m.version, devices: map[string][]*tsfile.Tablet{}}
		for dev, d := range m.devices {
			if !q.Pattern.MayMatchDevice(dev) {
				continue
			}
			ts := make([]*tsfile.Tablet, len(d.tablets))
			for i, t := range d.tablets {
				t.Retain()
				ts[i] = t
			}
			ms.devices[dev] = ts
		}
		s.mems = append(s.mems, ms)
	}
	for _, h := range r.files {
		h.mu.Lock()
		h.pins++
		h.mu.Unlock()
		s.files = append(s.files, h)
	}
	sort.Slice(s.files, func(i, j int) bool { return s.files[i].info.Version < s.files[j].info.Version })
	return s
}

func (s *snapshot) release() {
	for _, m := range s.mems {
		for _, ts := range m.devices {
			for _, t := range ts {
				t.Release()
			}
		}
	}
	for _, h := range s.files {
		h.mu.Lock()
		h.pins--
		h.mu.Unlock()
	}
}

// Scan calls fn with the live points of each matching device, device by device in name
// order and in time order within a device: memtables and files merged, the highest version
// winning for a (device, measurement, time), tombstones applied. Columns are "time" then
// the selected measurements (sorted by name unless q.Measurements names an order). A record
// is valid only during fn.
func (r *Region) Scan(q Query, fn func(device string, rec arrow.Record) error) error {
	minT, maxT := q.timeRange()
	if minT > maxT {
		return fmt.Errorf("scan: start time %d after end time %d", minT, maxT)
	}
	for _, m := range q.Measurements {
		if err := tsfile.ValidateMeasurement(m); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	s := r.snapshot(q)
	defer s.release()
	// devices: from memtables and file indexes
	devset := map[string]bool{}
	for _, m := range s.mems {
		for dev := range m.devices {
			devset[dev] = true
		}
	}
	fileDevs := make([]map[string]tsfile.DeviceIndex, len(s.files))
	for i, h := range s.files {
		meta := h.rd.Meta()
		fileDevs[i] = make(map[string]tsfile.DeviceIndex, len(meta.Devices))
		for _, d := range meta.Devices {
			if d.MaxTime < minT || d.MinTime > maxT || !q.Pattern.MayMatchDevice(d.Device) {
				continue
			}
			fileDevs[i][d.Device] = d
			devset[d.Device] = true
		}
	}
	devs := make([]string, 0, len(devset))
	for d := range devset {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	for _, dev := range devs {
		if err := r.scanDevice(s, fileDevs, dev, q, minT, maxT, fn); err != nil {
			return err
		}
	}
	return nil
}

func (r *Region) scanDevice(s *snapshot, fileDevs []map[string]tsfile.DeviceIndex, dev string, q Query, minT, maxT int64, fn func(string, arrow.Record) error) error {
	var srcs []source
	defer func() { releaseSources(srcs) }()
	present := map[string]bool{}
	// files first: lower versions
	for i, h := range s.files {
		di, ok := fileDevs[i][dev]
		if !ok {
			continue
		}
		var want []string
		for _, c := range di.Columns {
			if c.Count > 0 && q.Pattern.Match(dev, c.Name) && wanted(q.Measurements, c.Name) {
				want = append(want, c.Name)
			}
		}
		if len(want) == 0 {
			continue
		}
		h.mu.Lock()
		err := h.rd.ReadDevice(dev, want, minT, maxT, func(rec arrow.Record) error {
			rec.Retain()
			srcs = append(srcs, newSource(h.info.Version, rec))
			return nil
		})
		h.mu.Unlock()
		if err != nil {
			return fmt.Errorf("scan %s: %w", h.info.Name, err)
		}
		for _, w := range want {
			present[w] = true
		}
	}
	for _, m := range s.mems {
		ts := m.devices[dev]
		for _, t := range ts {
			t.Rec.Retain()
			srcs = append(srcs, newSource(m.version, t.Rec))
			for _, f := range t.Rec.Schema().Fields()[1:] {
				present[f.Name] = true
			}
		}
	}
	// resolution order: by version; tablets of one memtable keep their write order
	sort.SliceStable(srcs, func(i, j int) bool { return srcs[i].ver < srcs[j].ver })
	var cols []tsfile.Column
	if len(q.Measurements) > 0 {
		for _, name := range q.Measurements {
			if present[name] && q.Pattern.Match(dev, name) {
				cols = append(cols, tsfile.Column{Name: name, Type: s.schema[name]})
			}
		}
	} else {
		for name := range present {
			if q.Pattern.Match(dev, name) {
				cols = append(cols, tsfile.Column{Name: name, Type: s.schema[name]})
			}
		}
		sortColumns(cols)
	}
	var tombs []tomb
	for _, t := range s.tombs {
		if t.Pattern.MayMatchDevice(dev) {
			tombs = append(tombs, t)
		}
	}
	return mergeDevice(r.mem, dev, srcs, tombs, cols, minT, maxT, func(rec arrow.Record) error { return fn(dev, rec) })
}

func wanted(ms []string, name string) bool {
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if m == name {
			return true
		}
	}
	return false
}

// Digest hashes every live point (device, measurement, time, type, value) in a canonical
// order, so that two replicas with the same points have the same digest whatever their
// files and memtables look like.
func (r *Region) Digest() (Digest, error) {
	h := xxh3.New()
	var n int64
	var buf []byte
	err := r.Scan(Query{}, func(dev string, rec arrow.Record) error {
		n += HashRecord(h, &buf, dev, rec)
		return nil
	})
	if err != nil {
		return Digest{}, err
	}
	sum := h.Sum128().Bytes()
	return Digest{Hash: hex.EncodeToString(sum[:]), Points: n}, nil
}

// HashRecord feeds every non-null point of rec into h, row by row and column by column, and
// returns how many points it hashed. Columns must be sorted by name (as Scan gives them).
// The device is hashed without its database (root.db), so a copy of a database into another
// one has the same digest.
func HashRecord(h io.Writer, bufp *[]byte, dev string, rec arrow.Record) int64 {
	dev = dev[len(tsfile.Database(dev)):]
	ts := rec.Column(0).(*array.Int64).Int64Values()
	fs := rec.Schema().Fields()
	var n int64
	buf := *bufp
	for i, t := range ts {
		for c := 1; c < len(fs); c++ {
			col := rec.Column(c)
			if col.IsNull(i) {
				continue
			}
			buf = append(buf, dev...)
			buf = append(buf, 0)
			buf = append(buf, fs[c].Name...)
			buf = append(buf, 0)
			buf = binary.LittleEndian.AppendUint64(buf, uint64(t))
			switch a := col.(type) {
			case *array.Boolean:
				v := byte(0)
				if a.Value(i) {
					v = 1
				}
				buf = append(buf, 1, v)
			case *array.Int32:
				buf = append(buf, 2)
				buf = binary.LittleEndian.AppendUint32(buf, uint32(a.Value(i)))
			case *array.Int64:
				buf = append(buf, 3)
				buf = binary.LittleEndian.AppendUint64(buf, uint64(a.Value(i)))
			case *array.Float32:
				buf = append(buf, 4)
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(a.Value(i)))
			case *array.Float64:
				buf = append(buf, 5)
				buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(a.Value(i)))
			case *array.String:
				buf = append(buf, 6)
				buf = binary.AppendUvarint(buf, uint64(len(a.Value(i))))
				buf = append(buf, a.Value(i)...)
			}
			n++
		}
		if len(buf) > 32<<10 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	*bufp = buf[:0]
	return n
}
