package parquet

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	pq "github.com/parquet-go/parquet-go"

	"github.com/weir-dev/weir/tsfile"
)

// Column names of the two columns every file starts with.
const (
	DeviceColumn = "device"
	TimeColumn   = "time"
)

// Schema returns the Parquet schema of a file holding measurements cols (in any order; the
// file's columns are sorted by name) with timestamps in unit p: device, time, then one
// optional column per measurement. It fails on an invalid measurement name or type, or a
// name given twice.
func Schema(cols []tsfile.Column, p Precision) (*pq.Schema, error) {
	sorted, err := sortColumns(cols)
	if err != nil {
		return nil, err
	}
	return schemaOf(sorted, p), nil
}

// sortColumns validates cols and returns them sorted by name.
func sortColumns(cols []tsfile.Column) ([]tsfile.Column, error) {
	out := append([]tsfile.Column(nil), cols...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i, c := range out {
		if err := tsfile.ValidateMeasurement(c.Name); err != nil {
			return nil, err
		}
		if !c.Type.Valid() {
			return nil, fmt.Errorf("measurement %q: invalid type %v", c.Name, c.Type)
		}
		if i > 0 && out[i-1].Name == c.Name {
			return nil, fmt.Errorf("measurement %q given twice", c.Name)
		}
	}
	return out, nil
}

// schemaOf builds the schema of sorted, valid columns: a Go struct type made at run time
// gives parquet-go the columns in order, with their encodings in struct tags.
func schemaOf(cols []tsfile.Column, p Precision) *pq.Schema {
	fields := make([]reflect.StructField, 0, len(cols)+2)
	fields = append(fields,
		reflect.StructField{Name: "Device", Type: reflect.TypeFor[string](), Tag: reflect.StructTag(`parquet:"` + DeviceColumn + `,dict"`)},
		reflect.StructField{Name: "Time", Type: reflect.TypeFor[int64](), Tag: reflect.StructTag(`parquet:"` + TimeColumn + `,timestamp(` + p.tag() + `),delta"`)},
	)
	for i, c := range cols {
		var t reflect.Type
		tag := c.Name + ",optional"
		switch c.Type {
		case tsfile.Boolean:
			t = reflect.TypeFor[*bool]()
		case tsfile.Int32:
			t = reflect.TypeFor[*int32]()
		case tsfile.Int64:
			t = reflect.TypeFor[*int64]()
		case tsfile.Float:
			t = reflect.TypeFor[*float32]()
		case tsfile.Double:
			t = reflect.TypeFor[*float64]()
		case tsfile.Text:
			t = reflect.TypeFor[*string]()
			tag += ",dict"
		}
		fields = append(fields, reflect.StructField{Name: "M" + strconv.Itoa(i), Type: t, Tag: reflect.StructTag(`parquet:"` + tag + `"`)})
	}
	return pq.SchemaOf(reflect.New(reflect.StructOf(fields)).Elem().Interface())
}

// schemaColumns reads the measurement columns back from a file's schema written by this
// package (for a partition's columns after a restart).
func schemaColumns(s *pq.Schema) ([]tsfile.Column, error) {
	var cols []tsfile.Column
	for _, f := range s.Fields() {
		name := f.Name()
		if name == DeviceColumn || name == TimeColumn {
			continue
		}
		if !f.Leaf() || !f.Optional() {
			return nil, fmt.Errorf("column %q is not an optional leaf", name)
		}
		var t tsfile.DataType
		switch f.Type().Kind() {
		case pq.Boolean:
			t = tsfile.Boolean
		case pq.Int32:
			t = tsfile.Int32
		case pq.Int64:
			t = tsfile.Int64
		case pq.Float:
			t = tsfile.Float
		case pq.Double:
			t = tsfile.Double
		case pq.ByteArray:
			t = tsfile.Text
		default:
			return nil, fmt.Errorf("column %q has type %v", name, f.Type())
		}
		cols = append(cols, tsfile.Column{Name: name, Type: t})
	}
	return cols, nil
}

// mergeColumns returns the union of old and add (a column of add replaces one of old with
// the same name), sorted by name, and whether it differs from old.
func mergeColumns(old, add []tsfile.Column) ([]tsfile.Column, bool) {
	m := make(map[string]tsfile.DataType, len(old)+len(add))
	for _, c := range old {
		m[c.Name] = c.Type
	}
	changed := false
	for _, c := range add {
		if t, ok := m[c.Name]; !ok || t != c.Type {
			m[c.Name] = c.Type
			changed = true
		}
	}
	if !changed {
		return old, false
	}
	out := make([]tsfile.Column, 0, len(m))
	for n, t := range m {
		out = append(out, tsfile.Column{Name: n, Type: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, true
}

// columnsKey identifies a column set (for the schema cache).
func columnsKey(cols []tsfile.Column) string {
	var b strings.Builder
	for _, c := range cols {
		b.WriteString(c.Name)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(c.Type)))
		b.WriteByte(';')
	}
	return b.String()
}
