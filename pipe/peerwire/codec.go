package peerwire

import (
	"errors"
	"fmt"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Codec is the gRPC codec of both ends, installed with grpc.ForceServerCodec and
// grpc.ForceCodec. Its name is "proto" and its bytes are protobuf's, so the wire is plain
// Flight; but it decodes FlightData by hand, aliasing data_header, app_metadata and
// data_body into the received message instead of copying them out, and it sends a Frame
// (a FlightData the caller encoded straight into its buffer) as is. Other messages go
// through protobuf.
//
// Aliasing relies on gRPC handing each received message in a buffer of its own, which it
// does unless the server or the call sets a shared receive buffer pool (they must not).
type Codec struct{}

// Name implements encoding.Codec.
func (Codec) Name() string { return "proto" }

// FlightData field numbers, and the one Weir pads with (unknown to Flight, skipped by
// every protobuf decoder).
const (
	fieldDescriptor = 1
	fieldHeader     = 2
	fieldMeta       = 3
	fieldPad        = 15
	fieldBody       = 1000
)

// Frame is a FlightData already encoded (by NewFrame or AppendFlightData), sent as is by
// Codec. gRPC may still hold its bytes after SendMsg returns: never reuse them.
type Frame struct{ B []byte }

// Marshal implements encoding.Codec.
func (Codec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *Frame:
		return m.B, nil
	case *flight.FlightData:
		return AppendFlightData(nil, m)
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("peerwire codec: cannot marshal %T", v)
}

// Unmarshal implements encoding.Codec.
func (Codec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *flight.FlightData:
		return decodeFlightData(data, m)
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("peerwire codec: cannot unmarshal into %T", v)
}

// AppendFlightData appends the protobuf encoding of fd to b.
func AppendFlightData(b []byte, fd *flight.FlightData) ([]byte, error) {
	if fd.FlightDescriptor != nil {
		d, err := proto.Marshal(fd.FlightDescriptor)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, fieldDescriptor, protowire.BytesType)
		b = protowire.AppendBytes(b, d)
	}
	if len(fd.DataHeader) > 0 {
		b = protowire.AppendTag(b, fieldHeader, protowire.BytesType)
		b = protowire.AppendBytes(b, fd.DataHeader)
	}
	if len(fd.AppMetadata) > 0 {
		b = protowire.AppendTag(b, fieldMeta, protowire.BytesType)
		b = protowire.AppendBytes(b, fd.AppMetadata)
	}
	if len(fd.DataBody) > 0 {
		b = protowire.AppendTag(b, fieldBody, protowire.BytesType)
		b = protowire.AppendBytes(b, fd.DataBody)
	}
	return b, nil
}

var errFlightData = errors.New("malformed FlightData")

func decodeFlightData(b []byte, fd *flight.FlightData) error {
	fd.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errFlightData, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != fieldDescriptor && num != fieldHeader && num != fieldMeta && num != fieldBody) {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: field %d: %v", errFlightData, num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", errFlightData, num, protowire.ParseError(n))
		}
		b = b[n:]
		v = v[:len(v):len(v)] // appends to a field never run into the next one
		switch num {
		case fieldDescriptor:
			fd.FlightDescriptor = &flight.FlightDescriptor{}
			if err := proto.Unmarshal(v, fd.FlightDescriptor); err != nil {
				return fmt.Errorf("%w: descriptor: %v", errFlightData, err)
			}
		case fieldHeader:
			fd.DataHeader = v
		case fieldMeta:
			fd.AppMetadata = v
		case fieldBody:
			fd.DataBody = v
		}
	}
	return nil
}

// NewFrame encodes a FlightData of meta and header whose data_body of bodyLen bytes is
// left for the caller to fill (body), starting at an offset of the frame that is a
// multiple of 8: a receiver that keeps the frame (gRPC allocates it aligned) can use the
// Arrow buffers in the body in place.
func NewFrame(meta, header []byte, bodyLen int) (f *Frame, body []byte) {
	n := 0
	if len(meta) > 0 {
		n += protowire.SizeTag(fieldMeta) + protowire.SizeBytes(len(meta))
	}
	if len(header) > 0 {
		n += protowire.SizeTag(fieldHeader) + protowire.SizeBytes(len(header))
	}
	bodyHead := protowire.SizeTag(fieldBody) + protowire.SizeVarint(uint64(bodyLen))
	pad := 0 // bytes of the padding field's value, which itself takes 2 more
	for (n+2+pad+bodyHead)%8 != 0 {
		pad++
	}
	b := make([]byte, 0, n+2+pad+bodyHead+bodyLen)
	if len(meta) > 0 {
		b = protowire.AppendTag(b, fieldMeta, protowire.BytesType)
		b = protowire.AppendBytes(b, meta)
	}
	if len(header) > 0 {
		b = protowire.AppendTag(b, fieldHeader, protowire.BytesType)
		b = protowire.AppendBytes(b, header)
	}
	b = protowire.AppendTag(b, fieldPad, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(pad))
	b = append(b, make([]byte, pad)...)
	b = protowire.AppendTag(b, fieldBody, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(bodyLen))
	start := len(b)
	b = b[:start+bodyLen]
	return &Frame{B: b}, b[start:]
}

// BodyFirst starts a FlightData frame with a data_body of n bytes, returned for the caller
// to fill; AppendMeta then adds the app metadata after it (field order is free in
// protobuf), so that metadata computed from the body (a CRC) costs no copy of the body.
func BodyFirst(n, metaRoom int) (f *Frame, body []byte) {
	b := make([]byte, 0, protowire.SizeTag(fieldBody)+protowire.SizeBytes(n)+protowire.SizeTag(fieldMeta)+protowire.SizeBytes(metaRoom))
	b = protowire.AppendTag(b, fieldBody, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	start := len(b)
	b = b[:start+n]
	return &Frame{B: b}, b[start:]
}

// AppendMeta adds app metadata to a frame.
func (f *Frame) AppendMeta(meta []byte) {
	f.B = protowire.AppendTag(f.B, fieldMeta, protowire.BytesType)
	f.B = protowire.AppendBytes(f.B, meta)
}
