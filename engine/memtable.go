package engine

import (
	"math"
	"runtime"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/sourcegraph/conc/pool"

	"github.com/weir-dev/weir/tsfile"
)

// memtable is one epoch of writes in memory: per device, the tablets in write order.
// Its version orders it against files and tombstones; its id is the epoch.
type memtable struct {
	version  uint64
	devices  map[string]*memDevice
	bytes    int64
	rows     int64
	points   int64
	minIndex uint64
	maxIndex uint64
	progress map[uint32]uint64
	created  time.Time // time of the first write
	flushed  chan struct{}
	err      error
}

type memDevice struct {
	tablets []*tsfile.Tablet
	maxT    int64
}

func newMemtable(version uint64) *memtable {
	return &memtable{version: version, devices: map[string]*memDevice{}, progress: map[uint32]uint64{}, flushed: make(chan struct{})}
}

func (m *memtable) empty() bool { return m.maxIndex == 0 }

func recBytes(rec arrow.Record) int64 {
	var n int64
	for _, c := range rec.Columns() {
		for _, b := range c.Data().Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
	}
	return n
}

// insert adds a normalised tablet (strictly increasing times); the memtable takes a reference.
func (m *memtable) insert(t *tsfile.Tablet, idx uint64, origin uint32, originIndex uint64) {
	d := m.devices[t.Device]
	if d == nil {
		d = &memDevice{maxT: math.MinInt64}
		m.devices[t.Device] = d
	}
	t.Retain()
	d.tablets = append(d.tablets, t)
	ts := t.Times()
	if last := ts[len(ts)-1]; last > d.maxT {
		d.maxT = last
	}
	m.noteIndex(idx, origin, originIndex)
	m.bytes += recBytes(t.Rec)
	m.rows += int64(t.Rows())
	m.points += int64(t.Points())
}

func (m *memtable) noteIndex(idx uint64, origin uint32, originIndex uint64) {
	if m.minIndex == 0 {
		m.minIndex = idx
		m.created = time.Now()
	}
	m.maxIndex = idx
	if originIndex > m.progress[origin] {
		m.progress[origin] = originIndex
	}
}

// deleteInPlace nulls the matching cells of the memtable (a deletion in the live epoch).
func (m *memtable) deleteInPlace(mem memory.Allocator, p tsfile.Pattern, minT, maxT int64) {
	for dev, d := range m.devices {
		if !p.MayMatchDevice(dev) {
			continue
		}
		for i, t := range d.tablets {
			rec, changed := nullOut(mem, dev, t.Rec, p, minT, maxT)
			if changed {
				d.tablets[i] = tsfile.NewTablet(dev, rec)
				t.Release()
			}
		}
	}
}

// sources returns the device's tablets as merge sources (retained; caller releases).
func (d *memDevice) sources(ver uint64) []source {
	out := make([]source, 0, len(d.tablets))
	for _, t := range d.tablets {
		t.Rec.Retain()
		out = append(out, newSource(ver, t.Rec))
	}
	return out
}

func (m *memtable) release() {
	for _, d := range m.devices {
		for _, t := range d.tablets {
			t.Release()
		}
		d.tablets = nil
	}
}

// deviceData merges the memtable into one sorted record per device, for a flush. Devices
// are merged in parallel, one worker per core.
func (m *memtable) deviceData(mem memory.Allocator, schema map[string]tsfile.DataType) ([]tsfile.DeviceData, error) {
	devs := make([]string, 0, len(m.devices))
	for dev := range m.devices {
		devs = append(devs, dev)
	}
	out := make([]tsfile.DeviceData, len(devs))
	p := pool.New().WithErrors().WithMaxGoroutines(runtime.GOMAXPROCS(0))
	for i, dev := range devs {
		d := m.devices[dev]
		p.Go(func() error {
			rec, err := mergeMemDevice(mem, dev, d, schema)
			out[i] = tsfile.DeviceData{Device: dev, Rec: rec}
			return err
		})
	}
	err := p.Wait()
	kept := out[:0]
	for _, dd := range out {
		if dd.Rec == nil {
			continue
		}
		if err != nil {
			dd.Rec.Release()
			continue
		}
		kept = append(kept, dd)
	}
	if err != nil {
		return nil, err
	}
	return kept, nil
}

func mergeMemDevice(mem memory.Allocator, dev string, d *memDevice, schema map[string]tsfile.DataType) (arrow.Record, error) {
	cols := unionColumns(d.tablets, schema)
	srcs := d.sources(0)
	defer releaseSources(srcs)
	var recs []arrow.Record
	err := mergeDevice(mem, dev, srcs, nil, cols, math.MinInt64, math.MaxInt64, func(r arrow.Record) error {
		r.Retain()
		recs = append(recs, r)
		return nil
	})
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return tsfile.ConcatRecords(mem, recs)
}

func releaseSources(srcs []source) {
	for _, s := range srcs {
		s.rec.Release()
	}
}

// unionColumns lists the measurements present in the tablets, sorted by name.
func unionColumns(ts []*tsfile.Tablet, schema map[string]tsfile.DataType) []tsfile.Column {
	seen := map[string]bool{}
	var cols []tsfile.Column
	for _, t := range ts {
		for _, f := range t.Rec.Schema().Fields()[1:] {
			if !seen[f.Name] {
				seen[f.Name] = true
				cols = append(cols, tsfile.Column{Name: f.Name, Type: schema[f.Name]})
			}
		}
	}
	sortColumns(cols)
	return cols
}
