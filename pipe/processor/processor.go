// Package processor holds Weir's built-in processors — do-nothing, filter, downsample,
// aggregate and rename — and the helpers a processor written in Go uses to read an event's
// rows and emit its outputs. The built-ins register through the public registry, exactly
// as a user's processors do; import the package for its side effects:
//
//	import _ "github.com/weir-dev/weir/pipe/processor"
//
// A processor implements pipe.Processor: one event in, zero or more out. Processors work
// on Arrow columns (arrow/compute kernels where they fit). A TsFile event is opened only
// when a processor needs its rows (Each reads them); otherwise it passes through
// untouched, still a file.
//
// # Identities of outputs
//
// A sink that dedupes (write-back, a peer) recognises an event it already applied by its
// origin and origin index. A processor's outputs therefore get identities that are
// distinct and the same on every redelivery of the same input; Out assigns them:
//
//   - the input event itself, when passed on, keeps its identity;
//   - otherwise the first tablet made from a tablet input takes the input's identity;
//   - every other tablet is derived: its origin is DerivedOrigin(o) (o with the top bit
//     set; o is the input's origin, or the region's own for a file) and its index is
//     base<<DerivedShift | n, where base is the input's origin index (its last local
//     index for a file) and n counts the derived outputs of the input.
//
// Derived indexes grow with the input's index, so a sink's "skip what my progress covers"
// rule keeps working for them, and redelivered outputs are skipped, not applied twice.
package processor

import (
	"context"
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// DerivedShift is the number of low bits of a derived origin index that count the derived
// outputs of one input (see the package documentation).
const DerivedShift = 20

// maxDerived is the largest output counter that fits below DerivedShift.
const maxDerived = 1<<DerivedShift - 1

// DerivedOrigin returns the origin under which outputs derived from data of origin o are
// identified: o with its top bit set.
func DerivedOrigin(o uint32) uint32 { return o | 1<<31 }

// LocalOrigin returns the origin id of the source region's own writes (engine's default
// when the environment has no region, as in tests).
func LocalOrigin(env *pipe.Env) uint32 {
	if env != nil && env.Region != nil {
		return env.Region.Origin()
	}
	return engine.DefaultOrigin
}

// Out collects the outputs of one input event and emits them, in the order given, with
// identities a deduping sink can rely on (see the package documentation). Make one per
// Process call with NewOut, add outputs, then call Done.
type Out struct {
	in     *pipe.Event
	emit   func(*pipe.Event)
	origin uint32 // the input's data origin, for derived identities
	base   uint64 // the input's index, for derived identities
	outs   []*pipe.Event
	passed bool
}

// NewOut starts the outputs of in. localOrigin is the source region's origin
// (LocalOrigin(env)): the origin of a file's rows.
func NewOut(in *pipe.Event, emit func(*pipe.Event), localOrigin uint32) *Out {
	o := &Out{in: in, emit: emit, origin: in.Origin, base: in.OriginIndex}
	if in.Kind != pipe.KindTablet && in.Kind != pipe.KindDeletion {
		o.origin, o.base = localOrigin, in.MaxIndex
	}
	return o
}

// Pass emits the input event itself (unchanged, with its identity).
func (o *Out) Pass() {
	o.passed = true
	o.outs = append(o.outs, o.in)
}

// Tablet emits t as a tablet event derived from the input; Out takes over the caller's
// reference to t. A nil or empty tablet is released and dropped.
func (o *Out) Tablet(t *tsfile.Tablet) {
	if t == nil {
		return
	}
	if t.Rec == nil || t.Rec.NumRows() == 0 || t.Rec.NumCols() < 2 {
		if t.Rec != nil {
			t.Release()
		}
		return
	}
	in := o.in
	o.outs = append(o.outs, &pipe.Event{
		Kind: pipe.KindTablet, Region: in.Region, Progress: in.Progress,
		MinIndex: in.MinIndex, MaxIndex: in.MaxIndex, Epoch: in.Epoch, EventTime: in.EventTime,
		Tablet: t, Bytes: TabletBytes(t),
	})
}

// Event emits e (a deletion, a heartbeat) as it is, with its own identity.
func (o *Out) Event(e *pipe.Event) {
	if e != nil {
		o.outs = append(o.outs, e)
	}
}

// Deletions emits, for a TsFile input, the deletions taken during its epoch as deletion
// events (a sink applies them before the file's rows: emit them before the rows).
func (o *Out) Deletions() {
	in := o.in
	if in.Kind != pipe.KindTsFile || in.File == nil {
		return
	}
	for _, d := range in.File.Deletions {
		dd := d.Deletion
		idx := d.Index
		if idx == 0 {
			// one that came with a received file has no local index: the file's place
			idx = in.MaxIndex
		}
		o.outs = append(o.outs, &pipe.Event{Kind: pipe.KindDeletion, Region: in.Region, Deletion: &dd,
			Origin: d.Origin, OriginIndex: d.OriginIndex, MinIndex: idx, MaxIndex: idx, Epoch: in.Epoch,
			Progress: pipe.ProgressIndex{d.Origin: d.OriginIndex}, EventTime: in.EventTime, Bytes: 64})
	}
}

// Len returns the outputs added so far.
func (o *Out) Len() int { return len(o.outs) }

// Done assigns the identities of the tablet outputs and emits every output in order.
func (o *Out) Done() {
	own := !o.passed && o.in.Kind == pipe.KindTablet
	n := uint64(0)
	for _, e := range o.outs {
		if e != o.in && e.Kind == pipe.KindTablet && e.Tablet != nil && e.Origin == 0 && e.OriginIndex == 0 {
			if own {
				e.Origin, e.OriginIndex, own = o.in.Origin, o.in.OriginIndex, false
			} else {
				e.Origin, e.OriginIndex = DerivedOrigin(o.origin), o.base<<DerivedShift|min(n, maxDerived)
				n++
			}
		}
		o.emit(e)
	}
	o.outs = nil
}

// Release drops the outputs not yet emitted (on an error path).
func (o *Out) Release() {
	for _, e := range o.outs {
		if e != o.in {
			e.Release()
		}
	}
	o.outs = nil
}

// Each calls fn with every tablet of in's rows: in.Tablet for a tablet event; for a TsFile
// event, each record batch of the rows the event selects (its pattern and time range), a
// tablet valid only during fn (Retain it to keep it); nothing for other kinds. The file is
// opened only here: a processor that does not call Each leaves it untouched.
func Each(ctx context.Context, in *pipe.Event, fn func(*tsfile.Tablet) error) error {
	switch in.Kind {
	case pipe.KindTablet:
		if in.Tablet == nil {
			return nil
		}
		return fn(in.Tablet)
	case pipe.KindTsFile:
		if in.File == nil {
			return nil
		}
		return eachFileTablet(ctx, in.File, fn)
	}
	return nil
}

func eachFileTablet(ctx context.Context, f *pipe.FileRef, fn func(*tsfile.Tablet) error) error {
	rd, err := f.Open()
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Path, err)
	}
	defer rd.Close()
	for _, di := range rd.Meta().Devices {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := f.Columns(di)
		if len(want) == 0 {
			continue
		}
		err := rd.ReadDevice(di.Device, want, f.MinTime, f.MaxTime, func(rec arrow.Record) error {
			return fn(tsfile.NewTablet(di.Device, rec))
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
	}
	return nil
}

// Map handles in for a processor that transforms each tablet on its own: deletions and
// heartbeats pass through; a tablet event's tablet goes through fn; a TsFile event passes
// through untouched when keepFile says so (nil keepFile: never), else its deletions are
// emitted and then each tablet of its rows goes through fn. fn returns its argument to
// keep the tablet unchanged, a new tablet (Map takes over its reference) to replace it, or
// nil to drop it; fn must not release its argument.
func Map(ctx context.Context, in *pipe.Event, emit func(*pipe.Event), localOrigin uint32,
	keepFile func(*pipe.FileRef) bool, fn func(*tsfile.Tablet) (*tsfile.Tablet, error)) error {
	out := NewOut(in, emit, localOrigin)
	switch in.Kind {
	case pipe.KindTablet:
		t, err := fn(in.Tablet)
		if err != nil {
			return err
		}
		if t == in.Tablet {
			out.Pass()
		} else {
			out.Tablet(t)
		}
	case pipe.KindTsFile:
		if keepFile != nil && keepFile(in.File) {
			out.Pass()
			break
		}
		out.Deletions()
		err := Each(ctx, in, func(t *tsfile.Tablet) error {
			r, err := fn(t)
			if err != nil {
				return err
			}
			if r == t {
				t.Retain()
				r = tsfile.NewTablet(t.Device, t.Rec)
			}
			out.Tablet(r)
			return nil
		})
		if err != nil {
			out.Release()
			return err
		}
	default:
		out.Pass()
	}
	out.Done()
	return nil
}

// TabletBytes is a tablet's size in bytes: the sum of its Arrow buffers (for batching and
// rates).
func TabletBytes(t *tsfile.Tablet) int64 {
	var n int64
	for _, c := range t.Rec.Columns() {
		for _, b := range c.Data().Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
	}
	return n
}

// WithColumns returns a tablet of device holding rec's time column and the given columns of
// rec (indexes ≥ 1, in order), sharing their buffers; nil when cols is empty.
func WithColumns(device string, rec arrow.Record, cols []int) *tsfile.Tablet {
	if len(cols) == 0 {
		return nil
	}
	fs := rec.Schema().Fields()
	fields := make([]arrow.Field, 0, len(cols)+1)
	arrs := make([]arrow.Array, 0, len(cols)+1)
	fields = append(fields, fs[0])
	arrs = append(arrs, rec.Column(0))
	for _, c := range cols {
		fields = append(fields, fs[c])
		arrs = append(arrs, rec.Column(c))
	}
	md := rec.Schema().Metadata()
	return tsfile.NewTablet(device, array.NewRecord(arrow.NewSchema(fields, &md), arrs, rec.NumRows()))
}
