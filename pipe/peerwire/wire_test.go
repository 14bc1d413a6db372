package peerwire

import (
	"errors"
	"reflect"
	"testing"

	"github.com/weir-dev/weir/tsfile"
)

var samples = []*Msg{
	{Type: TypeHello, Pipe: "p", Region: "root.sg/0", Database: "root.sg", Origin: 3, Sender: "host/1"},
	{Type: TypeSchema, SchemaID: 7, Reset: true, Columns: []Column{{Name: "a", Type: tsfile.Int64}, {Name: "s", Type: tsfile.Text}}},
	{Type: TypeTablet, Seq: 1, Commit: 9, Origin: 1, OriginIndex: 42, Progress: map[uint32]uint64{1: 42, 2: 7}, Device: "root.sg.d1", SchemaID: 7},
	{Type: TypeDeletion, Seq: 2, Commit: 10, Origin: 1, OriginIndex: 43, Progress: map[uint32]uint64{1: 43}, Pattern: "root.sg.**", MinTime: -5, MaxTime: 1 << 62},
	{Type: TypeFileBegin, Seq: 3, Commit: 11, Progress: map[uint32]uint64{1: 50}, FileID: "f-1-0000abcd", Name: "1.tsfile", Size: 1000, CRC: 0xabcd, Offset: 500,
		Deletions: []Deletion{{Origin: 1, OriginIndex: 44, Pattern: "root.sg.d1", MinTime: 0, MaxTime: 9}}},
	{Type: TypeFileChunk, Seq: 3, Offset: 500, CRC: 12345},
	{Type: TypeFileEnd, Seq: 3},
	{Type: TypeWelcome, Progress: map[uint32]uint64{1: 40}, Partials: []Partial{{FileID: "f-1-0000abcd", Have: 500}}},
	{Type: TypeAck, Through: 3},
}

func TestRoundTrip(t *testing.T) {
	for _, m := range samples {
		got, err := Decode(m.Encode())
		if err != nil {
			t.Fatalf("%s: %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: got %+v, want %+v", m.Type, got, m)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":    nil,
		"magic":    []byte("X\x01\x10"),
		"version":  []byte("W\x09\x10"),
		"type":     []byte("W\x01\x63"),
		"short":    []byte("W\x01\x03\x01"),
		"trailing": append((&Msg{Type: TypeAck, Through: 1}).Encode(), 0),
		"seq0":     (&Msg{Type: TypeFileEnd}).Encode(),
		"offset":   (&Msg{Type: TypeFileBegin, Seq: 1, FileID: "x", Size: 10, Offset: 11}).Encode(),
		"coltype":  (&Msg{Type: TypeSchema, Columns: []Column{{Name: "a", Type: 9}}}).Encode(),
		"count":    []byte("W\x01\x10\xff\xff\xff\xff\x0f"),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestDatabaseOf(t *testing.T) {
	for in, want := range map[string]string{"root.sg/0": "root.sg", "root.sg": "root.sg", "root.sg.d1/0": "", "src": "", "": ""} {
		if got := DatabaseOf(in); got != want {
			t.Errorf("DatabaseOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzDecode: any bytes decode to an error or to a message that encodes back to them.
func FuzzDecode(f *testing.F) {
	for _, m := range samples {
		f.Add(m.Encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(m.Encode())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoding %+v: %+v, %v", m, again, err)
		}
	})
}
