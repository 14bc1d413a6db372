package receiver

import (
	"testing"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/pipe/peerwire"
	"github.com/weir-dev/weir/tsfile"
)

type collect struct{ out []*flight.FlightData }

func (c *collect) Send(fd *flight.FlightData) error {
	c.out = append(c.out, &flight.FlightData{DataHeader: append([]byte(nil), fd.DataHeader...), DataBody: append([]byte(nil), fd.DataBody...)})
	return nil
}

// tabletMessages returns the schema message and a record batch's IPC header and body of a
// small tablet of every type, with nulls.
func tabletMessages(t testing.TB, opts ...ipc.Option) (schema *peerwire.Msg, header, body []byte) {
	t.Helper()
	cols := []tsfile.Column{{Name: "b", Type: tsfile.Boolean}, {Name: "i", Type: tsfile.Int32}, {Name: "l", Type: tsfile.Int64},
		{Name: "f", Type: tsfile.Float}, {Name: "d", Type: tsfile.Double}, {Name: "s", Type: tsfile.Text}}
	b := tsfile.NewTabletBuilder(nil, "root.sg.d1", cols)
	for i := 0; i < 20; i++ {
		var s any
		if i%3 != 0 {
			s = "text"
		}
		if err := b.AppendRow(int64(i), i%2 == 0, int32(i), int64(i), float32(i), float64(i), s); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := b.Build()
	b.Release()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Release()
	var c collect
	w := flight.NewRecordWriter(&c, append([]ipc.Option{ipc.WithSchema(tb.Rec.Schema())}, opts...)...)
	if err := w.Write(tb.Rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var pc []peerwire.Column
	for _, c := range tb.Columns() {
		pc = append(pc, peerwire.Column{Name: c.Name, Type: c.Type})
	}
	return &peerwire.Msg{Type: peerwire.TypeSchema, SchemaID: 1, Columns: pc}, c.out[1].DataHeader, c.out[1].DataBody
}

func TestDecodeTablet(t *testing.T) {
	for name, opts := range map[string][]ipc.Option{"none": nil, "lz4": {ipc.WithLZ4()}, "zstd": {ipc.WithZstd()}} {
		t.Run(name, func(t *testing.T) {
			sh, h, b := tabletMessages(t, opts...)
			s := newSchemaSet(64 << 20)
			defer s.release()
			if err := s.add(sh); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ { // one reader decodes batch after batch
				rec, err := s.decode(1, h, b, 64<<20)
				if err != nil {
					t.Fatal(err)
				}
				tb := tsfile.NewTablet("root.sg.d1", rec)
				if err := tb.Validate(); err != nil {
					t.Fatal(err)
				}
				if tb.Rows() != 20 || tb.Points() != 20*6-7 {
					t.Fatalf("rows %d points %d", tb.Rows(), tb.Points())
				}
				tb.Release()
			}
		})
	}
}

// TestDecodeTabletCorruptOffsets: string offsets pointing past the data are refused.
func TestDecodeTabletCorruptOffsets(t *testing.T) {
	sh, h, b := tabletMessages(t)
	s := newSchemaSet(64 << 20)
	defer s.release()
	if err := s.add(sh); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), b...)
	for i := len(bad) - 200; i < len(bad); i++ { // the string column's buffers are last
		bad[i] = 0x7f
	}
	if rec, err := s.decode(1, h, bad, 64<<20); err == nil {
		rec.Release()
		t.Fatal("string offsets past the data were accepted")
	}
}

// FuzzDecodeTablet: whatever the bytes, decoding a tablet returns an error or a record
// that reads within bounds; it never panics.
func FuzzDecodeTablet(f *testing.F) {
	sh, h, b := tabletMessages(f)
	_, hz, bz := tabletMessages(f, ipc.WithZstd())
	_, hl, bl := tabletMessages(f, ipc.WithLZ4())
	f.Add(h, b)
	f.Add(hz, bz)
	f.Add(hl, bl)
	f.Add(h, b[:len(b)/2])
	f.Fuzz(func(t *testing.T, h, b []byte) {
		s := newSchemaSet(64 << 20)
		defer s.release()
		if err := s.add(sh); err != nil {
			return
		}
		rec, err := s.decode(1, h, b, 64<<20)
		if err != nil {
			return
		}
		tb := tsfile.NewTablet("root.sg.d1", rec)
		defer tb.Release()
		if tb.Validate() == nil {
			_ = tb.Points()
			_, _ = tb.MinMaxTime()
			n := tb.Normalize(memory.DefaultAllocator)
			n.Release()
		}
	})
}
