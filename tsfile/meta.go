package tsfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
)

// maxBufferLimit bounds weir.max_buffer: no Arrow buffer of a TsFile may be larger.
const maxBufferLimit = 1 << 32

// encodeMeta renders m (and the largest buffer size) as the schema metadata of a TsFile.
func encodeMeta(m *FileMeta, maxBuf int64) (arrow.Metadata, error) {
	prog, err := json.Marshal(m.Progress)
	if err != nil {
		return arrow.Metadata{}, fmt.Errorf("tsfile: progress: %w", err)
	}
	devs, err := json.Marshal(m.Devices)
	if err != nil {
		return arrow.Metadata{}, fmt.Errorf("tsfile: device index: %w", err)
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	keys := []string{MetaFormatVersion, MetaRegion, MetaVersion, MetaEpoch, MetaMinTime, MetaMaxTime,
		MetaRows, MetaPoints, MetaCompression, MetaProgress, MetaIndexMin, MetaIndexMax, MetaMaxBuffer, MetaDevices}
	vals := []string{strconv.Itoa(m.FormatVersion), m.Region, u(m.Version), u(m.Epoch), i(m.MinTime), i(m.MaxTime),
		i(m.Rows), i(m.Points), string(m.Compression), string(prog), u(m.MinIndex), u(m.MaxIndex), i(maxBuf), string(devs)}
	return arrow.NewMetadata(keys, vals), nil
}

// UnmarshalJSON decodes stats, giving Min and Max the Go type of the column type.
func (c *ColumnStats) UnmarshalJSON(b []byte) error {
	var raw struct {
		Name  string          `json:"name"`
		Type  DataType        `json:"type"`
		Count int64           `json:"count"`
		Min   json.RawMessage `json:"min"`
		Max   json.RawMessage `json:"max"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	lo, err := decodeStat(raw.Type, raw.Min)
	if err != nil {
		return fmt.Errorf("column %q: min: %w", raw.Name, err)
	}
	hi, err := decodeStat(raw.Type, raw.Max)
	if err != nil {
		return fmt.Errorf("column %q: max: %w", raw.Name, err)
	}
	*c = ColumnStats{Name: raw.Name, Type: raw.Type, Count: raw.Count, Min: lo, Max: hi}
	return nil
}

func decodeStat(t DataType, b json.RawMessage) (any, error) {
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil, nil
	}
	// b is one valid JSON value (the decoder checked it)
	switch t {
	case Boolean:
		switch string(b) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	case Int32, Int64:
		if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			return v, nil
		}
	case Float, Double:
		if b[0] != '"' {
			if v, err := strconv.ParseFloat(string(b), 64); err == nil {
				return v, nil
			}
		}
	case Text:
		if b[0] == '"' {
			if bytes.IndexByte(b, '\\') < 0 {
				return string(b[1 : len(b)-1]), nil
			}
			var v string
			if err := json.Unmarshal(b, &v); err == nil {
				return v, nil
			}
		}
	default:
		return nil, fmt.Errorf("unknown type %s", t)
	}
	return nil, fmt.Errorf("%.40s is not a %s value", b, t)
}

// deviceJSON and statsJSON decode the device index in one pass (ColumnStats.UnmarshalJSON
// would have each stats object scanned twice).
type deviceJSON struct {
	Device      string       `json:"device"`
	Batches     []int        `json:"batches"`
	BatchRanges []BatchRange `json:"batch_ranges"`
	MinTime     int64        `json:"min_time"`
	MaxTime     int64        `json:"max_time"`
	Rows        int64        `json:"rows"`
	Columns     []statsJSON  `json:"columns"`
}

type statsJSON struct {
	Name  string          `json:"name"`
	Type  DataType        `json:"type"`
	Count int64           `json:"count"`
	Min   json.RawMessage `json:"min"`
	Max   json.RawMessage `json:"max"`
}

func decodeDevices(s string) ([]DeviceIndex, error) {
	var raw []deviceJSON
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, err
	}
	out := make([]DeviceIndex, len(raw))
	for i, d := range raw {
		out[i] = DeviceIndex{Device: d.Device, Batches: d.Batches, BatchRanges: d.BatchRanges, MinTime: d.MinTime,
			MaxTime: d.MaxTime, Rows: d.Rows, Columns: make([]ColumnStats, len(d.Columns))}
		for k, c := range d.Columns {
			lo, err := decodeStat(c.Type, c.Min)
			if err != nil {
				return nil, fmt.Errorf("device %s: column %q: min: %w", d.Device, c.Name, err)
			}
			hi, err := decodeStat(c.Type, c.Max)
			if err != nil {
				return nil, fmt.Errorf("device %s: column %q: max: %w", d.Device, c.Name, err)
			}
			out[i].Columns[k] = ColumnStats{Name: c.Name, Type: c.Type, Count: c.Count, Min: lo, Max: hi}
		}
	}
	return out, nil
}

// metaError is a metadata check failure: which key and why.
func metaError(key string, format string, args ...any) error {
	return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
}

// parseMaxBuffer parses weir.max_buffer.
func parseMaxBuffer(s string, ok bool) (int64, error) {
	if !ok {
		return 0, metaError(MetaMaxBuffer, "missing")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > maxBufferLimit {
		return 0, metaError(MetaMaxBuffer, "bad value %q", s)
	}
	return v, nil
}

// decodeMeta reads and checks the metadata of a TsFile with the given schema and number of
// record batches. It checks the schema shape, every key, and that the device index is
// consistent: devices sorted, batches numbered in device order and covering the file, time
// ranges ordered, row and point totals adding up, stats typed and ordered.
func decodeMeta(schema *arrow.Schema, nbatches int) (FileMeta, error) {
	var m FileMeta
	fs := schema.Fields()
	if len(fs) < 2 {
		return m, fmt.Errorf("schema: %d columns, want at least device and time", len(fs))
	}
	if fs[0].Name != DeviceColumn || !arrow.TypeEqual(fs[0].Type, deviceType) {
		return m, fmt.Errorf("schema: first column is %s %s, want %s %s", fs[0].Name, fs[0].Type, DeviceColumn, deviceType)
	}
	if fs[1].Name != TimeColumn || fs[1].Type.ID() != arrow.INT64 {
		return m, fmt.Errorf("schema: second column is %s %s, want %s int64", fs[1].Name, fs[1].Type, TimeColumn)
	}
	m.Columns = make([]Column, 0, len(fs)-2)
	for i, f := range fs[2:] {
		if err := ValidateMeasurement(f.Name); err != nil {
			return m, fmt.Errorf("schema: column %d: %w", i+2, err)
		}
		t, err := FromArrow(f.Type)
		if err != nil {
			return m, fmt.Errorf("schema: column %s: %w", f.Name, err)
		}
		if i > 0 && f.Name <= fs[i+1].Name {
			return m, fmt.Errorf("schema: column %s: measurement columns not sorted by name", f.Name)
		}
		m.Columns = append(m.Columns, Column{Name: f.Name, Type: t})
	}

	md := schema.Metadata()
	get := func(key string) (string, error) {
		i := md.FindKey(key)
		if i < 0 {
			return "", metaError(key, "missing")
		}
		return md.Values()[i], nil
	}
	getU := func(key string) (uint64, error) {
		s, err := get(key)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, metaError(key, "bad value %q", s)
		}
		return v, nil
	}
	getI := func(key string) (int64, error) {
		s, err := get(key)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, metaError(key, "bad value %q", s)
		}
		return v, nil
	}
	var err error
	fv, err := get(MetaFormatVersion)
	if err != nil {
		return m, err
	}
	if fv != strconv.Itoa(FormatVersion) {
		return m, metaError(MetaFormatVersion, "unsupported format version %q (this build reads %d)", fv, FormatVersion)
	}
	m.FormatVersion = FormatVersion
	if m.Region, err = get(MetaRegion); err != nil {
		return m, err
	}
	if m.Version, err = getU(MetaVersion); err != nil {
		return m, err
	}
	if m.Epoch, err = getU(MetaEpoch); err != nil {
		return m, err
	}
	if m.MinTime, err = getI(MetaMinTime); err != nil {
		return m, err
	}
	if m.MaxTime, err = getI(MetaMaxTime); err != nil {
		return m, err
	}
	if m.Rows, err = getI(MetaRows); err != nil {
		return m, err
	}
	if m.Points, err = getI(MetaPoints); err != nil {
		return m, err
	}
	cs, err := get(MetaCompression)
	if err != nil {
		return m, err
	}
	if c, err := ParseCompression(cs); err != nil || string(c) != cs {
		return m, metaError(MetaCompression, "bad value %q", cs)
	}
	m.Compression = Compression(cs)
	ps, err := get(MetaProgress)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(ps), &m.Progress); err != nil || m.Progress == nil {
		return m, metaError(MetaProgress, "bad JSON object: %v", err)
	}
	if m.MinIndex, err = getU(MetaIndexMin); err != nil {
		return m, err
	}
	if m.MaxIndex, err = getU(MetaIndexMax); err != nil {
		return m, err
	}
	if m.MinIndex > m.MaxIndex {
		return m, metaError(MetaIndexMin, "index range [%d, %d] is inverted", m.MinIndex, m.MaxIndex)
	}
	mb, err := get(MetaMaxBuffer)
	if err != nil {
		return m, err
	}
	if _, err := parseMaxBuffer(mb, true); err != nil {
		return m, err
	}
	ds, err := get(MetaDevices)
	if err != nil {
		return m, err
	}
	if m.Devices, err = decodeDevices(ds); err != nil {
		return m, metaError(MetaDevices, "bad JSON: %v", err)
	}
	if err := checkIndex(&m, nbatches); err != nil {
		return m, metaError(MetaDevices, "%v", err)
	}
	return m, nil
}

// checkIndex checks the device index against the schema columns and the totals.
func checkIndex(m *FileMeta, nbatches int) error {
	types := make(map[string]DataType, len(m.Columns))
	for _, c := range m.Columns {
		types[c.Name] = c.Type
	}
	next := 0
	var rows, points int64
	minT, maxT := int64(0), int64(0)
	for i := range m.Devices {
		d := &m.Devices[i]
		if err := ValidateDevice(d.Device); err != nil {
			return err
		}
		if i > 0 && d.Device <= m.Devices[i-1].Device {
			return fmt.Errorf("device %s: devices not sorted", d.Device)
		}
		if len(d.Batches) == 0 || len(d.Batches) != len(d.BatchRanges) {
			return fmt.Errorf("device %s: %d batches, %d batch ranges", d.Device, len(d.Batches), len(d.BatchRanges))
		}
		var drows int64
		for k, b := range d.Batches {
			br := d.BatchRanges[k]
			if b != next {
				return fmt.Errorf("device %s: batch %d out of order (want %d)", d.Device, b, next)
			}
			next++
			if br.Rows <= 0 || br.Rows > math.MaxInt32 || br.MinTime > br.MaxTime || (br.Rows == 1) != (br.MinTime == br.MaxTime) ||
				uint64(br.MaxTime-br.MinTime) < uint64(br.Rows-1) {
				return fmt.Errorf("device %s: batch %d: bad range %+v", d.Device, b, br)
			}
			if k > 0 && br.MinTime <= d.BatchRanges[k-1].MaxTime {
				return fmt.Errorf("device %s: batch %d overlaps the previous batch in time", d.Device, b)
			}
			drows += br.Rows
		}
		if d.Rows != drows {
			return fmt.Errorf("device %s: rows %d, batches hold %d", d.Device, d.Rows, drows)
		}
		if d.MinTime != d.BatchRanges[0].MinTime || d.MaxTime != d.BatchRanges[len(d.BatchRanges)-1].MaxTime {
			return fmt.Errorf("device %s: time range [%d, %d] differs from its batches'", d.Device, d.MinTime, d.MaxTime)
		}
		for k, c := range d.Columns {
			t, ok := types[c.Name]
			if !ok {
				return fmt.Errorf("device %s: column %s not in the schema", d.Device, c.Name)
			}
			if c.Type != t {
				return fmt.Errorf("device %s: column %s: type %s, schema says %s", d.Device, c.Name, c.Type, t)
			}
			if k > 0 && c.Name <= d.Columns[k-1].Name {
				return fmt.Errorf("device %s: columns not sorted", d.Device)
			}
			if err := checkStats(c, d.Rows); err != nil {
				return fmt.Errorf("device %s: column %s: %w", d.Device, c.Name, err)
			}
			points += c.Count
		}
		rows += d.Rows
		if i == 0 || d.MinTime < minT {
			minT = d.MinTime
		}
		if i == 0 || d.MaxTime > maxT {
			maxT = d.MaxTime
		}
	}
	if next != nbatches {
		return fmt.Errorf("index names %d batches, file has %d", next, nbatches)
	}
	if rows != m.Rows {
		return fmt.Errorf("devices hold %d rows, %s says %d", rows, MetaRows, m.Rows)
	}
	if points != m.Points {
		return fmt.Errorf("devices hold %d points, %s says %d", points, MetaPoints, m.Points)
	}
	if minT != m.MinTime || maxT != m.MaxTime {
		return fmt.Errorf("devices span [%d, %d], %s/%s say [%d, %d]", minT, maxT, MetaMinTime, MetaMaxTime, m.MinTime, m.MaxTime)
	}
	return nil
}

func checkStats(c ColumnStats, rows int64) error {
	if c.Count < 0 || c.Count > rows {
		return fmt.Errorf("count %d outside [0, %d]", c.Count, rows)
	}
	if c.Count == 0 {
		if c.Min != nil || c.Max != nil {
			return errors.New("min/max given for an empty column")
		}
		return nil
	}
	switch lo := c.Min.(type) {
	case bool:
		hi, ok := c.Max.(bool)
		if !ok || (lo && !hi) {
			return fmt.Errorf("bad min/max %v/%v", c.Min, c.Max)
		}
	case int64:
		hi, ok := c.Max.(int64)
		if !ok || lo > hi || (c.Type == Int32 && (lo < math.MinInt32 || hi > math.MaxInt32)) {
			return fmt.Errorf("bad min/max %v/%v", c.Min, c.Max)
		}
	case float64:
		hi, ok := c.Max.(float64)
		if !ok || lo > hi {
			return fmt.Errorf("bad min/max %v/%v", c.Min, c.Max)
		}
	case string:
		hi, ok := c.Max.(string)
		if !ok || lo > hi {
			return fmt.Errorf("bad min/max %q/%q", c.Min, c.Max)
		}
	default:
		return fmt.Errorf("missing min/max")
	}
	return nil
}
