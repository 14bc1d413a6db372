package tsfile

import (
	"fmt"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
)

// DataType is one of the six measurement types Weir stores.
type DataType int8

// The six measurement types and their Arrow encodings.
const (
	Boolean DataType = iota + 1 // arrow bool
	Int32                       // arrow int32
	Int64                       // arrow int64
	Float                       // arrow float32
	Double                      // arrow float64
	Text                        // arrow utf8
)

// AllTypes lists every DataType in declaration order.
var AllTypes = []DataType{Boolean, Int32, Int64, Float, Double, Text}

// String returns the IoTDB name of the type (BOOLEAN, INT32, ...).
func (t DataType) String() string {
	switch t {
	case Boolean:
		return "BOOLEAN"
	case Int32:
		return "INT32"
	case Int64:
		return "INT64"
	case Float:
		return "FLOAT"
	case Double:
		return "DOUBLE"
	case Text:
		return "TEXT"
	}
	return fmt.Sprintf("DataType(%d)", int8(t))
}

// Valid reports whether t is one of the six types.
func (t DataType) Valid() bool { return t >= Boolean && t <= Text }

// ParseDataType parses a type name, case-insensitively (BOOLEAN, INT32, INT64, FLOAT, DOUBLE, TEXT).
func ParseDataType(s string) (DataType, error) {
	for _, t := range AllTypes {
		if strings.EqualFold(s, t.String()) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown data type %q (want one of BOOLEAN, INT32, INT64, FLOAT, DOUBLE, TEXT)", s)
}

// ArrowType returns the Arrow type that stores t.
func (t DataType) ArrowType() arrow.DataType {
	switch t {
	case Boolean:
		return arrow.FixedWidthTypes.Boolean
	case Int32:
		return arrow.PrimitiveTypes.Int32
	case Int64:
		return arrow.PrimitiveTypes.Int64
	case Float:
		return arrow.PrimitiveTypes.Float32
	case Double:
		return arrow.PrimitiveTypes.Float64
	case Text:
		return arrow.BinaryTypes.String
	}
	return nil
}

// FromArrow maps an Arrow type back to a DataType.
func FromArrow(dt arrow.DataType) (DataType, error) {
	switch dt.ID() {
	case arrow.BOOL:
		return Boolean, nil
	case arrow.INT32:
		return Int32, nil
	case arrow.INT64:
		return Int64, nil
	case arrow.FLOAT32:
		return Float, nil
	case arrow.FLOAT64:
		return Double, nil
	case arrow.STRING:
		return Text, nil
	}
	return 0, fmt.Errorf("arrow type %s is not a Weir measurement type", dt)
}

// Column names a measurement and its type.
type Column struct {
	Name string   `json:"name"`
	Type DataType `json:"type"`
}

// MarshalText encodes the type by name.
func (t DataType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText decodes a type name.
func (t *DataType) UnmarshalText(b []byte) error {
	v, err := ParseDataType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
