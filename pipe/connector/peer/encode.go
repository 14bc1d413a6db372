package peer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/flight"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/peerwire"
	"github.com/weir-dev/weir/tsfile"
)

// maxWriters bounds the schemas an encoder keeps; past it, it starts over (telling the
// receiver to forget its schemas too).
const maxWriters = 256

// tabletEncoder turns tablets into Arrow IPC record batch messages, one IPC writer per
// distinct schema (its fields; the device travels in the app metadata), so a schema (as a
// column list) is sent once per stream and each tablet costs one message.
type tabletEncoder struct {
	opts    []ipc.Option
	writers map[string]*schemaWriter
	nextID  uint32
	reset   bool
	key     strings.Builder
	meta    []byte // app metadata, reused (NewFrame copies it)
}

type schemaWriter struct {
	id  uint32
	w   *ipc.Writer
	cap *capture
}

// capture is an ipc.PayloadWriter that encodes a record batch payload into a Frame with
// the app metadata set beforehand (meta), the Arrow buffers copied once, straight into the
// gRPC message. The schema payload, the first, is dropped: the receiver builds schemas from
// column lists.
type capture struct {
	meta    []byte
	out     *peerwire.Frame
	started bool
}

func (c *capture) Start() error { return nil }
func (c *capture) Close() error { return nil }
func (c *capture) WritePayload(p ipc.Payload) error {
	if !c.started {
		c.started = true
		return nil
	}
	var n byteCounter
	if err := p.SerializeBody(&n); err != nil {
		return err
	}
	meta := p.Meta()
	defer meta.Release()
	f, body := peerwire.NewFrame(c.meta, meta.Bytes(), int(n.n))
	w := sliceWriter{b: body[:0]}
	if err := p.SerializeBody(&w); err != nil {
		return err
	}
	if len(w.b) != len(body) {
		return fmt.Errorf("IPC body of %d bytes, expected %d", len(w.b), len(body))
	}
	c.out = f
	return nil
}

// sliceWriter appends to a slice that has the room.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > cap(w.b) {
		return 0, fmt.Errorf("IPC body larger than measured")
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

func newTabletEncoder(comp string) *tabletEncoder {
	opts := []ipc.Option{ipc.WithAllocator(memory.DefaultAllocator)}
	switch comp {
	case "lz4":
		opts = append(opts, ipc.WithLZ4())
	case "zstd":
		opts = append(opts, ipc.WithZstd())
	}
	return &tabletEncoder{opts: opts, writers: map[string]*schemaWriter{}}
}

func (t *tabletEncoder) schemaKey(sc *arrow.Schema) string {
	t.key.Reset()
	for _, f := range sc.Fields() {
		t.key.WriteString(f.Name)
		t.key.WriteByte(0)
		t.key.WriteString(f.Type.Name())
		if f.Nullable {
			t.key.WriteByte(1)
		}
		t.key.WriteByte(0)
	}
	return t.key.String()
}

// encode returns the schema message to send first (nil when the schema was sent already)
// and the frame of the record batch, whose app metadata is meta with the schema id set.
func (t *tabletEncoder) encode(tb *tsfile.Tablet, meta *peerwire.Msg) (schema *peerwire.Msg, frame *peerwire.Frame, err error) {
	rec := tb.Rec
	k := t.schemaKey(rec.Schema())
	sw := t.writers[k]
	if sw == nil {
		if len(t.writers) >= maxWriters {
			t.release()
			t.reset = true
		}
		t.nextID++
		schema = &peerwire.Msg{Type: peerwire.TypeSchema, SchemaID: t.nextID, Reset: t.reset}
		t.reset = false
		for _, c := range tb.Columns() {
			schema.Columns = append(schema.Columns, peerwire.Column{Name: c.Name, Type: c.Type})
		}
		sc := arrow.NewSchema(rec.Schema().Fields(), nil) // the device is in the app metadata
		c := &capture{}
		sw = &schemaWriter{id: t.nextID, cap: c, w: ipc.NewWriterWithPayloadWriter(c, append([]ipc.Option{ipc.WithSchema(sc)}, t.opts...)...)}
		t.writers[k] = sw
	}
	meta.SchemaID = sw.id
	t.meta = meta.Append(t.meta[:0])
	sw.cap.meta, sw.cap.out = t.meta, nil
	if err := sw.w.Write(rec); err != nil {
		return nil, nil, fmt.Errorf("encode tablet of %s: %w", tb.Device, err)
	}
	if sw.cap.out == nil {
		return nil, nil, fmt.Errorf("encode tablet of %s: no record batch", tb.Device)
	}
	return schema, sw.cap.out, nil
}

func (t *tabletEncoder) release() {
	for k, sw := range t.writers {
		sw.w.Close()
		delete(t.writers, k)
	}
}

// limiter paces bytes to a rate, allowing a burst of a tenth of a second.
type limiter struct {
	rate float64 // bytes per second; <= 0: unlimited
	next time.Time
}

func newLimiter(rate float64) *limiter { return &limiter{rate: rate} }

func (l *limiter) wait(ctx context.Context, n int) error {
	if l.rate <= 0 || n <= 0 {
		return nil
	}
	now := time.Now()
	if floor := now.Add(-100 * time.Millisecond); l.next.Before(floor) {
		l.next = floor
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	d := l.next.Sub(now)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// send sends m (a *flight.FlightData or a *peerwire.Frame) on st at the connector's rate.
func (c *Connector) send(st *stream, lim *limiter, m any) error {
	n := 0
	switch m := m.(type) {
	case *peerwire.Frame:
		n = len(m.B)
	case *flight.FlightData:
		n = len(m.AppMetadata) + len(m.DataHeader) + len(m.DataBody)
	}
	if err := lim.wait(c.ctx, n); err != nil {
		return err
	}
	return st.cs.SendMsg(m)
}

// prepare readies it for sending and returns how many sequenced messages it takes (0:
// none, it is acknowledged at once).
func (c *Connector) prepare(it *item, have pipe.ProgressIndex) (int, error) {
	if it.e.Kind != pipe.KindTsFile {
		return 1, nil
	}
	if it.file == nil {
		f, err := c.prepareFile(it.e)
		if err != nil {
			return 0, err
		}
		it.file = f
	}
	if !it.file.empty {
		return 1, nil
	}
	// no rows selected: only the deletions the receiver lacks travel, each alone
	it.file.alone = it.file.alone[:0]
	for _, d := range it.file.dels {
		if !have.CoversIndex(d.Origin, d.OriginIndex) {
			it.file.alone = append(it.file.alone, d)
		}
	}
	return len(it.file.alone), nil
}

// sendEvent sends it's messages with sequence numbers from first on.
func (c *Connector) sendEvent(st *stream, enc *tabletEncoder, lim *limiter, it *item, first uint64) error {
	e := it.e
	switch e.Kind {
	case pipe.KindTablet:
		schema, frame, err := enc.encode(e.Tablet, &peerwire.Msg{Type: peerwire.TypeTablet, Seq: first, Commit: e.CommitID,
			Origin: e.Origin, OriginIndex: e.OriginIndex, Progress: e.Progress, Device: e.Tablet.Device})
		if err != nil {
			return err
		}
		if schema != nil {
			if err := c.send(st, lim, &flight.FlightData{AppMetadata: schema.Encode()}); err != nil {
				return err
			}
		}
		return c.send(st, lim, frame)
	case pipe.KindDeletion:
		d := e.Deletion
		m := &peerwire.Msg{Type: peerwire.TypeDeletion, Seq: first, Commit: e.CommitID, Origin: e.Origin, OriginIndex: e.OriginIndex,
			Progress: e.Progress, Pattern: d.Pattern.String(), MinTime: d.MinTime, MaxTime: d.MaxTime}
		return c.send(st, lim, &flight.FlightData{AppMetadata: m.Encode()})
	case pipe.KindTsFile:
		if it.file.empty {
			for i, d := range it.file.alone {
				m := &peerwire.Msg{Type: peerwire.TypeDeletion, Seq: first + uint64(i), Commit: e.CommitID, Origin: d.Origin,
					OriginIndex: d.OriginIndex, Progress: map[uint32]uint64{d.Origin: d.OriginIndex}, Pattern: d.Pattern, MinTime: d.MinTime, MaxTime: d.MaxTime}
				if err := c.send(st, lim, &flight.FlightData{AppMetadata: m.Encode()}); err != nil {
					return err
				}
			}
			return nil
		}
		return c.sendFile(st, lim, it, first)
	}
	return fmt.Errorf("cannot send a %s event", e.Kind)
}

// byteCounter counts what is written to it.
type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
