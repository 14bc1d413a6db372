package peerwire

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"google.golang.org/protobuf/proto"
)

func TestCodecMatchesProtobuf(t *testing.T) {
	fd := &flight.FlightData{
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte("x")},
		DataHeader:       []byte("header"), AppMetadata: []byte("meta"), DataBody: bytes.Repeat([]byte("b"), 300),
	}
	mine, err := Codec{}.Marshal(fd)
	if err != nil {
		t.Fatal(err)
	}
	var viaProto flight.FlightData
	if err := proto.Unmarshal(mine, &viaProto); err != nil || !proto.Equal(&viaProto, fd) {
		t.Fatalf("protobuf reads %v (%v)", &viaProto, err)
	}
	std, _ := proto.Marshal(fd)
	var back flight.FlightData
	if err := (Codec{}).Unmarshal(std, &back); err != nil || !proto.Equal(&back, fd) {
		t.Fatalf("codec reads %v (%v)", &back, err)
	}
}

func TestFrames(t *testing.T) {
	for n := 0; n < 40; n++ {
		f, body := NewFrame([]byte("meta"), bytes.Repeat([]byte("h"), n), 64+n)
		for i := range body {
			body[i] = byte(i)
		}
		if off := uintptr(unsafe.Pointer(&body[0])) - uintptr(unsafe.Pointer(&f.B[0])); off%8 != 0 {
			t.Fatalf("header %d: body at offset %d", n, off)
		}
		var fd flight.FlightData
		if err := proto.Unmarshal(f.B, &fd); err != nil {
			t.Fatal(err)
		}
		if string(fd.AppMetadata) != "meta" || len(fd.DataHeader) != n || !bytes.Equal(fd.DataBody, body) {
			t.Fatalf("header %d: read back %v", n, &fd)
		}
	}
	f, body := BodyFirst(10, 20)
	copy(body, "0123456789")
	f.AppendMeta([]byte("after"))
	var fd flight.FlightData
	if err := (Codec{}).Unmarshal(f.B, &fd); err != nil || string(fd.DataBody) != "0123456789" || string(fd.AppMetadata) != "after" {
		t.Fatalf("body first: %v %v", &fd, err)
	}
}

func FuzzCodecUnmarshal(f *testing.F) {
	b, _ := Codec{}.Marshal(&flight.FlightData{DataHeader: []byte("h"), AppMetadata: []byte("m"), DataBody: []byte("b")})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var fd flight.FlightData
		if (Codec{}).Unmarshal(b, &fd) != nil {
			return
		}
		var want flight.FlightData
		if err := proto.Unmarshal(b, &want); err != nil {
			return // protobuf is stricter about some wire types of unknown fields
		}
		if !bytes.Equal(fd.DataHeader, want.DataHeader) || !bytes.Equal(fd.AppMetadata, want.AppMetadata) || !bytes.Equal(fd.DataBody, want.DataBody) {
			t.Fatalf("codec %v, protobuf %v", &fd, &want)
		}
	})
}
