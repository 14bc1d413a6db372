package kafka

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

func encoder(t *testing.T, kv ...string) *Encoder {
	t.Helper()
	cfg, err := ParseConfig(params("127.0.0.1:9092", kv...))
	if err != nil {
		t.Fatal(err)
	}
	return NewEncoder(cfg, "p", "r0")
}

func TestEncodeJSONRows(t *testing.T) {
	en := encoder(t, "topic", "w.{database}")
	e := tabletEvent(t, 7, "root.db.d1", 1, 30)
	defer e.Release()
	var recs []*kgo.Record
	n, err := en.Event(e, func(r *kgo.Record) error { recs = append(recs, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n.Records != 30 || len(recs) != 30 || n.Rows != 30 || n.Points != int64(e.Tablet.Points()) {
		t.Fatalf("counts %+v, %d records", n, len(recs))
	}
	var want, got digest
	want.addRecord("root.db.d1", e.Tablet.Rec)
	for _, r := range recs {
		if r.Topic != "w.root.db" || string(r.Key) != "root.db.d1" {
			t.Fatalf("topic %q key %q", r.Topic, r.Key)
		}
		if header(r, HeaderDatabase) != "root.db" || header(r, HeaderDevice) != "root.db.d1" ||
			header(r, HeaderRegion) != "r0" || header(r, HeaderProgress) != "1:7" {
			t.Fatalf("headers %v", r.Headers)
		}
		got.addJSON(t, r.Value)
	}
	if got != want {
		t.Fatalf("digest %+v, want %+v", got, want)
	}
	var row map[string]any
	if err := json.Unmarshal(recs[2].Value, &row); err != nil { // time 3: name null, temp 0.75
		t.Fatal(err)
	}
	if _, ok := row["name"]; ok || row["temp"] != 0.75 || row["ok"] != false || row["n"] != 21.0 {
		t.Fatalf("row %s", recs[2].Value)
	}
	if string(recs[0].Value) != `{"device":"root.db.d1","time":1,"temp":0.25,"n":7,"s":1,"f":0.5,"ok":false,"name":"x\"1\n"}` {
		t.Fatalf("row 0: %s", recs[0].Value)
	}
}

func TestEncodeArrowSplitsToFit(t *testing.T) {
	en := encoder(t, "format", "arrow", "key", "none", "max-message-bytes", "8KiB")
	e := tabletEvent(t, 1, "root.db.d1", 0, 2000)
	defer e.Release()
	var want, got digest
	want.addRecord("root.db.d1", e.Tablet.Rec)
	rows := 0
	var recs []*kgo.Record
	if _, err := en.Event(e, func(r *kgo.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(recs) < 2 {
		t.Fatalf("2000 rows in %d messages of at most 8KiB", len(recs))
	}
	for _, r := range recs {
		if r.Key != nil || len(r.Value) > 8<<10 {
			t.Fatalf("key %q, %d bytes", r.Key, len(r.Value))
		}
		rd, err := ipc.NewReader(bytes.NewReader(r.Value))
		if err != nil {
			t.Fatal(err)
		}
		if dev, _ := rd.Schema().Metadata().GetValue(tsfile.MetaDevice); rd.Schema().Metadata().FindKey(tsfile.MetaDevice) < 0 || dev != "root.db.d1" {
			t.Fatalf("schema metadata %v", rd.Schema().Metadata())
		}
		for rd.Next() {
			rows += int(rd.Record().NumRows())
			got.addRecord("root.db.d1", rd.Record())
		}
		rd.Release()
	}
	if rows != 2000 || got != want {
		t.Fatalf("rows %d, digest %+v want %+v", rows, got, want)
	}
}

func TestEncodeTooLargeRowFails(t *testing.T) {
	en := encoder(t, "max-message-bytes", "1KiB")
	b := tsfile.NewTabletBuilder(nil, "root.db.d1", []tsfile.Column{{Name: "s", Type: tsfile.Text}})
	defer b.Release()
	if err := b.AppendRow(1, string(bytes.Repeat([]byte("x"), 2000))); err != nil {
		t.Fatal(err)
	}
	tb, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	e := &pipe.Event{Kind: pipe.KindTablet, Tablet: tb, Progress: pipe.ProgressIndex{1: 1}}
	defer e.Release()
	_, err = en.Event(e, func(*kgo.Record) error { return nil })
	if !pipe.IsPermanent(err) || !contains(err, "does not fit in max-message-bytes 1024") {
		t.Fatalf("got %v", err)
	}
	en = encoder(t, "max-message-bytes", "1KiB", "format", "arrow")
	_, err = en.Event(e, func(*kgo.Record) error { return nil })
	if !pipe.IsPermanent(err) || !contains(err, "one row takes") {
		t.Fatalf("arrow: got %v", err)
	}
}

func TestJSONString(t *testing.T) {
	for in, want := range map[string]string{
		"plain": `"plain"`, "a\"b\\c": `"a\"b\\c"`, "\x01\t": `"\u0001\t"`, "é€": `"é€"`, "a\xffb": `"a\ufffdb"`,
	} {
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal(appendJSONString(nil, in), &back); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// Booleans are read from their bitmap: a slice of a record (its arrays at an offset) and
// nulls among them must give the values of the rows they are.
func TestEncodeBoolsOfSlice(t *testing.T) {
	mem := memory.NewGoAllocator()
	tb := array.NewInt64Builder(mem)
	bb := array.NewBooleanBuilder(mem)
	var want []string
	for i := range 40 {
		tb.Append(int64(i))
		switch {
		case i%7 == 3:
			bb.AppendNull()
			want = append(want, fmt.Sprintf(`{"device":"root.d","time":%d}`, i))
		default:
			v := i%3 == 0 || i%5 == 1
			bb.Append(v)
			want = append(want, fmt.Sprintf(`{"device":"root.d","time":%d,"b":%v}`, i, v))
		}
	}
	sc := arrow.NewSchema([]arrow.Field{{Name: tsfile.TimeColumn, Type: arrow.PrimitiveTypes.Int64}, {Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true}}, nil)
	ta, ba := tb.NewArray(), bb.NewArray()
	rec := array.NewRecord(sc, []arrow.Array{ta, ba}, 40)
	ta.Release()
	ba.Release()
	defer rec.Release()
	for _, lo := range []int64{0, 1, 5, 13} {
		s := rec.NewSlice(lo, 40)
		enc, err := newRowEncoder("root.d", s)
		if err != nil {
			t.Fatal(err)
		}
		for r := 0; r < int(s.NumRows()); r++ {
			if got := string(enc.appendRow(nil, r)); got != want[int(lo)+r] {
				t.Fatalf("slice from %d, row %d: %s, want %s", lo, r, got, want[int(lo)+r])
			}
			if got := string(enc.appendRow(make([]byte, 0, enc.size(r)), r)); got != want[int(lo)+r] {
				t.Fatalf("slice from %d, row %d, with room: %s, want %s", lo, r, got, want[int(lo)+r])
			}
		}
		s.Release()
	}
}
