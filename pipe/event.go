package pipe

import (
	"fmt"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/tsfile"
)

// Kind says what an event carries.
type Kind uint8

// Event kinds.
const (
	KindTablet    Kind = iota + 1 // a tablet of fresh writes (from the WAL)
	KindTsFile                    // a sealed TsFile; rows are read only when asked
	KindDeletion                  // a deletion (pattern, time range)
	KindHeartbeat                 // liveness and lag, no data
)

func (k Kind) String() string {
	switch k {
	case KindTablet:
		return "tablet"
	case KindTsFile:
		return "tsfile"
	case KindDeletion:
		return "deletion"
	case KindHeartbeat:
		return "heartbeat"
	}
	return "unknown"
}

// Event is the unit that flows through a pipe. CommitID orders events of one task; the
// task commits them in that order and advances the durable progress over the contiguous
// acknowledged prefix only.
type Event struct {
	Kind     Kind
	CommitID uint64
	Region   string
	// Progress is what the receiver has seen once it applied this event: origin → index.
	Progress ProgressIndex
	// Origin and OriginIndex identify a tablet or deletion at the replica that first took it.
	Origin      uint32
	OriginIndex uint64
	// MinIndex and MaxIndex are the local WAL index range the event covers (one index for
	// a tablet). Epoch is the epoch (memtable version) of the writes it carries.
	//
	// An event of a TsFile the region received from another replica covers no local index:
	// its MinIndex is 0, its MaxIndex the last local index shipped before it (0 when none)
	// and its Epoch the file's version in the region, which is above the epochs of the
	// local writes before it and below those after it. (MaxIndex, Epoch) is thus a position
	// of its own, the same on every replay (see FromReceivedFile). Processors copy
	// MinIndex, MaxIndex and Epoch from their input to every output.
	MinIndex, MaxIndex uint64
	Epoch              uint64
	Tablet             *tsfile.Tablet   // KindTablet
	File               *FileRef         // KindTsFile
	Deletion           *engine.Deletion // KindDeletion
	// EventTime is the wall-clock time (unix ms) the data was written or sealed, for lag.
	EventTime int64
	// Bytes is the event's size for rates and lag in bytes.
	Bytes int64

	once    sync.Once
	release []func()
}

// FromReceivedFile reports whether e is a TsFile the region received from another replica,
// or an output a processor made of one: it covers no local WAL index (MinIndex 0, a
// non-zero Epoch). Its order among the region's events is (MaxIndex, Epoch): after every
// event of the local writes up to MaxIndex, before those of MaxIndex+1, and among several
// files received between the same local writes, by Epoch.
func (e *Event) FromReceivedFile() bool { return e.MinIndex == 0 && e.Epoch != 0 }

// OnRelease adds fn to run when the event is released (after its commit): for pins.
func (e *Event) OnRelease(fn func()) { e.release = append(e.release, fn) }

// Release frees what the event holds (tablet reference, pins). Safe to call twice.
func (e *Event) Release() {
	e.once.Do(func() {
		if e.Tablet != nil {
			e.Tablet.Release()
		}
		for _, fn := range e.release {
			fn()
		}
	})
}

// Points counts the data points the event carries (a file's from its metadata).
func (e *Event) Points() int64 {
	switch e.Kind {
	case KindTablet:
		return int64(e.Tablet.Points())
	case KindTsFile:
		return e.File.Info.Points
	}
	return 0
}

// FileRef is a pinned sealed TsFile. Its rows are read lazily: a processor that does not
// look at rows passes the file through untouched.
type FileRef struct {
	Path string
	Info engine.FileInfo
	// Pattern and the time range select the rows the pipe wants; the zero Pattern and
	// MinTime=math.MinInt64, MaxTime=math.MaxInt64 mean the whole file.
	Pattern          tsfile.Pattern
	MinTime, MaxTime int64
	// Deletions taken during the file's epoch. A receiver applies those its progress does
	// not cover before it loads the file: they hide its older data, never the file's rows.
	Deletions []engine.IndexedDeletion
}

// Whole reports whether the pipe wants every row of the file (so it may ship it as is).
func (f *FileRef) Whole() bool {
	return (f.Pattern.IsZero() || f.Pattern.String() == "root.**") &&
		f.MinTime <= f.Info.MinTime && f.MaxTime >= f.Info.MaxTime
}

// Columns returns the measurements of device di the pipe selects (Pattern) that hold
// values in the file; none when the device is not selected.
func (f *FileRef) Columns(di tsfile.DeviceIndex) []string {
	if !f.Pattern.IsZero() && !f.Pattern.MayMatchDevice(di.Device) {
		return nil
	}
	var want []string
	for _, col := range di.Columns {
		if col.Count > 0 && (f.Pattern.IsZero() || f.Pattern.Match(di.Device, col.Name)) {
			want = append(want, col.Name)
		}
	}
	return want
}

// Open opens the file for reading its rows.
func (f *FileRef) Open() (*tsfile.Reader, error) { return tsfile.OpenFile(f.Path) }

// SelectRows reads the rows of the file that the pipe selects (Pattern, time range): one
// record per device ("time" then the selected measurements), the device renamed by rename
// (nil: kept). The caller releases the records.
func (f *FileRef) SelectRows(rename func(string) string) (data []tsfile.DeviceData, err error) {
	rd, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	defer func() {
		if err != nil {
			for _, d := range data {
				d.Rec.Release()
			}
			data = nil
		}
	}()
	for _, di := range rd.Meta().Devices {
		want := f.Columns(di)
		if len(want) == 0 {
			continue
		}
		var recs []arrow.Record
		err := rd.ReadDevice(di.Device, want, f.MinTime, f.MaxTime, func(rec arrow.Record) error {
			rec.Retain()
			recs = append(recs, rec)
			return nil
		})
		var rec arrow.Record
		if err == nil && len(recs) > 0 {
			rec, err = tsfile.ConcatRecords(memory.DefaultAllocator, recs)
		}
		for _, r := range recs {
			r.Release()
		}
		if err != nil {
			return data, fmt.Errorf("read %s: %w", f.Path, err)
		}
		if rec == nil {
			continue
		}
		dev := di.Device
		if rename != nil {
			dev = rename(dev)
		}
		data = append(data, tsfile.DeviceData{Device: dev, Rec: rec})
	}
	return data, nil
}
