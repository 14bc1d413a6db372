package tsfile

// The line format: one point per line, as in InfluxDB line protocol (without tags):
//
//	root.demo.d1 temp=21.5,state=1i,ok=true,name="x" 1732530000000
//
// See docs/line-format.md for the grammar.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// MaxLineLength bounds a line of the line format, in bytes, line terminator excluded.
const MaxLineLength = 1 << 20

// maxLineErrors bounds the errors a LineErrors lists.
const maxLineErrors = 100

// Point is one line of the line format: a device, a time and its field values.
type Point struct {
	Device string
	Time   int64
	Fields []Field
}

// Field is one measurement value of a Point. Value has the Go type of Type: bool, int32,
// int64, float32, float64 or string.
type Field struct {
	Name  string
	Type  DataType
	Value any
}

// LineError reports a syntax error in the line format. Line and Column are 1-based; Column counts
// characters (runes). Line is 0 for errors of ParseLine, which knows nothing of line numbers.
type LineError struct {
	Line, Column int
	Msg          string
}

func (e *LineError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("column %d: %s", e.Column, e.Msg)
}

// LineErrors lists the bad lines ParseLines met: the first 100 in Errors, and the count of the
// others in Omitted.
type LineErrors struct {
	Errors  []LineError
	Omitted int
}

// Len returns the number of bad lines, listed or not.
func (e *LineErrors) Len() int { return len(e.Errors) + e.Omitted }

func (e *LineErrors) Error() string {
	if e.Len() == 1 {
		return e.Errors[0].Error()
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d bad lines:", e.Len())
	for i := range e.Errors {
		sb.WriteString("\n  ")
		sb.WriteString(e.Errors[i].Error())
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&sb, "\n  ... and %d more", e.Omitted)
	}
	return sb.String()
}

func (e *LineErrors) add(le *LineError) {
	if len(e.Errors) < maxLineErrors {
		e.Errors = append(e.Errors, *le)
	} else {
		e.Omitted++
	}
}

// ParseLine parses one line of the line format. now is the time of a point whose line has no
// timestamp. Errors are *LineError. A blank line or a comment (#...) is an error here; ParseLines
// skips them.
func ParseLine(line string, now int64) (Point, error) {
	p, hasTime, err := parseLine(line)
	if err != nil {
		return Point{}, err
	}
	if !hasTime {
		p.Time = now
	}
	return p, nil
}

// ParseLines parses the lines of r and calls fn, in order, with each good line's number (1-based)
// and point. Blank lines and comments (lines whose first non-blank character is '#') are skipped;
// a line may end in "\n" or "\r\n" and be at most MaxLineLength bytes long. now is called for
// each line without a timestamp (nil means time.Now in milliseconds).
//
// A bad line does not stop the parse: after the last line ParseLines returns a *LineErrors that
// lists the bad lines, or nil when there were none. An error returned by fn stops the parse and
// is returned as is; an error reading r is returned (joined with the *LineErrors so far, if any),
// the line being read when it happened not parsed.
func ParseLines(r io.Reader, now func() int64, fn func(lineNo int, p Point) error) error {
	if now == nil {
		now = func() int64 { return time.Now().UnixMilli() }
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var errs LineErrors
	var buf []byte
	for lineNo := 1; ; lineNo++ {
		raw, tooLong, rerr := readLine(br, buf[:0])
		buf = raw
		if rerr != nil && rerr != io.EOF {
			var lerr error
			if errs.Len() > 0 {
				lerr = &errs
			}
			return errors.Join(fmt.Errorf("reading line %d: %w", lineNo, rerr), lerr)
		}
		if len(raw) > 0 || tooLong {
			line := trimEOL(raw)
			if lineNo == 1 {
				line = trimBOM(line)
			}
			if tooLong || len(line) > MaxLineLength {
				errs.add(&LineError{Line: lineNo, Column: MaxLineLength + 1,
					Msg: fmt.Sprintf("line longer than %d bytes", MaxLineLength)})
			} else if !skipLine(line) {
				p, hasTime, err := parseLine(string(line))
				if err != nil {
					le := err.(*LineError)
					le.Line = lineNo
					errs.add(le)
				} else {
					if !hasTime {
						p.Time = now()
					}
					if err := fn(lineNo, p); err != nil {
						return err
					}
				}
			}
		}
		if rerr == io.EOF {
			if errs.Len() > 0 {
				return &errs
			}
			return nil
		}
	}
}

// readLine reads one line, its "\n" included, appending it to buf. When the line is longer
// than MaxLineLength+2 it is consumed but not returned, and tooLong is set.
func readLine(br *bufio.Reader, buf []byte) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(frag) > MaxLineLength+2 {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, frag...)
			}
		}
		if err != bufio.ErrBufferFull {
			return buf, tooLong, err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return b[3:]
	}
	return b
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// skipLine reports whether s is blank or a comment.
func skipLine[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r':
		case '#':
			return true
		default:
			return false
		}
	}
	return true
}

func isNodeChar(c byte) bool {
	return c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

type lineParser struct {
	s string
}

// errAt returns a *LineError at byte offset pos of the line.
func (lp *lineParser) errAt(pos int, format string, args ...any) error {
	if pos > len(lp.s) {
		pos = len(lp.s)
	}
	return &LineError{Column: utf8.RuneCountInString(lp.s[:pos]) + 1, Msg: fmt.Sprintf(format, args...)}
}

// found describes the character at pos for an error message.
func (lp *lineParser) found(pos int) string {
	if pos >= len(lp.s) {
		return "end of line"
	}
	r, _ := utf8.DecodeRuneInString(lp.s[pos:])
	return strconv.QuoteRune(r)
}

// parseLine parses a line; hasTime reports whether it had a timestamp.
func parseLine(line string) (p Point, hasTime bool, err error) {
	if len(line) > MaxLineLength {
		return p, false, &LineError{Column: MaxLineLength + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineLength)}
	}
	lp := &lineParser{s: line}
	s := line
	end := len(s)
	for end > 0 && (isBlank(s[end-1]) || s[end-1] == '\r') {
		end--
	}
	i := 0
	for i < end && isBlank(s[i]) {
		i++
	}
	if i == end || s[i] == '#' {
		return p, false, lp.errAt(i, "expected a device path; the line is blank or a comment")
	}

	// device
	start := i
	for i < end && (isNodeChar(s[i]) || s[i] == '.') {
		i++
	}
	if i < end && !isBlank(s[i]) {
		return p, false, lp.errAt(i, "unexpected %s in device path (letters, digits, '_', '-' and '.' only)", lp.found(i))
	}
	p.Device = s[start:i]
	if err := ValidateDevice(p.Device); err != nil {
		return p, false, lp.errAt(start, "invalid device path: %v", err)
	}
	if i == end {
		return p, false, lp.errAt(i, "expected a space and fields (name=value) after device %q", p.Device)
	}
	for i < end && isBlank(s[i]) {
		i++
	}

	// fields
	var seen map[string]struct{}
	for {
		nameAt := i
		for i < end && isNodeChar(s[i]) {
			i++
		}
		name := s[nameAt:i]
		if name == "" || i == end || s[i] != '=' {
			switch {
			case name == "" && len(p.Fields) == 0:
				return p, false, lp.errAt(i, "expected a field (name=value), found %s", lp.found(i))
			case name == "":
				return p, false, lp.errAt(i, "expected a measurement name after ',', found %s", lp.found(i))
			case len(p.Fields) == 0 && allDigits(name) && (i == end || isBlank(s[i])):
				return p, false, lp.errAt(nameAt, "expected fields (name=value) before the timestamp")
			case i == end:
				return p, false, lp.errAt(i, "expected '=' after measurement name %q", name)
			}
			return p, false, lp.errAt(i, "expected '=' after measurement name %q, found %s", name, lp.found(i))
		}
		if err := ValidateMeasurement(name); err != nil {
			return p, false, lp.errAt(nameAt, "invalid measurement name: %v", err)
		}
		if dupField(p.Fields, &seen, name) {
			return p, false, lp.errAt(nameAt, "duplicate field %q", name)
		}
		i++ // '='
		f, next, err := lp.parseValue(i, end, name)
		if err != nil {
			return p, false, err
		}
		p.Fields = append(p.Fields, f)
		i = next
		if i == end {
			return p, false, nil
		}
		if s[i] == ',' {
			i++
			continue
		}
		if !isBlank(s[i]) {
			return p, false, lp.errAt(i, "expected ',' or a space after the value of %q, found %s", name, lp.found(i))
		}
		break
	}

	// timestamp
	for i < end && isBlank(s[i]) {
		i++
	}
	tsAt := i
	for i < end && !isBlank(s[i]) {
		i++
	}
	tok := s[tsAt:i]
	if strings.Contains(tok, "=") {
		return p, false, lp.errAt(tsAt-1, "expected ',' between fields, found a space")
	}
	if !isInteger(tok) {
		return p, false, lp.errAt(tsAt, "expected an integer timestamp or end of line, found %q", tok)
	}
	ts, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return p, false, lp.errAt(tsAt, "timestamp %s overflows int64", tok)
	}
	p.Time = ts
	for i < end && isBlank(s[i]) {
		i++
	}
	if i != end {
		return p, false, lp.errAt(i, "expected end of line after the timestamp, found %s", lp.found(i))
	}
	return p, true, nil
}

// dupField reports whether name is among fields (then it is a duplicate), switching to a map
// for long lines.
func dupField(fields []Field, seen *map[string]struct{}, name string) bool {
	if len(fields) < 16 {
		for i := range fields {
			if fields[i].Name == name {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(fields))
		for i := range fields {
			(*seen)[fields[i].Name] = struct{}{}
		}
	}
	if _, ok := (*seen)[name]; ok {
		return true
	}
	(*seen)[name] = struct{}{}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// isInteger reports whether s is [+-]?[0-9]+.
func isInteger(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	return allDigits(s)
}

// isDecimal reports whether s is [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?.
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	n := digits()
	if i < len(s) && s[i] == '.' {
		i++
		n += digits()
	}
	if n == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

const valueHint = `expected a number (1.5, 1i, 1i32, 1.5f), a boolean (true, false) or a "string"`

// parseValue parses the value of field name at s[i:end]; it returns the field and the offset
// just past the value.
func (lp *lineParser) parseValue(i, end int, name string) (Field, int, error) {
	s := lp.s
	f := Field{Name: name}
	if i == end || s[i] == ',' || isBlank(s[i]) {
		return f, i, lp.errAt(i, "expected a value after '=' for %q", name)
	}
	if s[i] == '"' {
		v, next, err := lp.parseString(i, end, name)
		if err != nil {
			return f, i, err
		}
		f.Type, f.Value = Text, v
		return f, next, nil
	}
	at := i
	for i < end && s[i] != ',' && !isBlank(s[i]) {
		i++
	}
	tok := s[at:i]
	switch tok {
	case "t", "T", "true", "True", "TRUE":
		f.Type, f.Value = Boolean, true
		return f, i, nil
	case "f", "F", "false", "False", "FALSE":
		f.Type, f.Value = Boolean, false
		return f, i, nil
	}
	switch {
	case strings.HasSuffix(tok, "i32"):
		body := tok[:len(tok)-3]
		if !isInteger(body) {
			return f, at, lp.errAt(at, "invalid INT32 value %q for %q: expected an integer before 'i32'", tok, name)
		}
		v, err := strconv.ParseInt(body, 10, 32)
		if err != nil {
			return f, at, lp.errAt(at, "value %s of %q overflows INT32", tok, name)
		}
		f.Type, f.Value = Int32, int32(v)
	case strings.HasSuffix(tok, "i"):
		body := tok[:len(tok)-1]
		if !isInteger(body) {
			return f, at, lp.errAt(at, "invalid INT64 value %q for %q: expected an integer before 'i'", tok, name)
		}
		v, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return f, at, lp.errAt(at, "value %s of %q overflows INT64", tok, name)
		}
		f.Type, f.Value = Int64, v
	case strings.HasSuffix(tok, "f") && isDecimal(tok[:len(tok)-1]):
		v, err := strconv.ParseFloat(tok[:len(tok)-1], 32)
		if err != nil {
			return f, at, lp.errAt(at, "value %s of %q overflows FLOAT", tok, name)
		}
		f.Type, f.Value = Float, float32(v)
	case isDecimal(tok):
		v, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			return f, at, lp.errAt(at, "value %s of %q overflows DOUBLE", tok, name)
		}
		f.Type, f.Value = Double, v
	default:
		if isNonFinite(tok) {
			return f, at, lp.errAt(at, "invalid value %q for %q: NaN and infinities are not allowed", tok, name)
		}
		return f, at, lp.errAt(at, "invalid value %q for %q: %s", tok, name, valueHint)
	}
	return f, i, nil
}

func isNonFinite(tok string) bool {
	t := strings.TrimLeft(strings.ToLower(tok), "+-")
	switch t {
	case "nan", "inf", "infinity", "nanf", "inff", "infinityf":
		return true
	}
	return false
}

// parseString parses a quoted string starting at s[i] == '"'.
func (lp *lineParser) parseString(i, end int, name string) (string, int, error) {
	s := lp.s
	at := i
	i++
	var sb strings.Builder
	chunk := i
	for {
		j := strings.IndexAny(s[i:end], "\"\\\n\r")
		if j < 0 {
			return "", at, lp.errAt(at, "unterminated string value for %q: expected a closing '\"'", name)
		}
		i += j
		switch s[i] {
		case '"':
			var v string
			if sb.Len() == 0 && chunk == at+1 {
				v = s[chunk:i]
			} else {
				sb.WriteString(s[chunk:i])
				v = sb.String()
			}
			if !utf8.ValidString(v) {
				return "", at, lp.errAt(at, "string value of %q is not valid UTF-8", name)
			}
			return v, i + 1, nil
		case '\n', '\r':
			return "", at, lp.errAt(i, "line break in the string value of %q (write \\n or \\r)", name)
		}
		// backslash
		sb.WriteString(s[chunk:i])
		if i+1 >= end {
			return "", at, lp.errAt(at, "unterminated string value for %q: expected a closing '\"'", name)
		}
		switch s[i+1] {
		case '"':
			sb.WriteByte('"')
		case '\\':
			sb.WriteByte('\\')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		default:
			return "", at, lp.errAt(i, `invalid escape \%s in the string value of %q (use \", \\, \n, \r or \t)`, strings.Trim(lp.found(i+1), "'"), name)
		}
		i += 2
		chunk = i
	}
}

// FormatLine formats p as a line of the line format (without a line terminator), always with
// its timestamp, such that ParseLine gives p back. Values are formatted by their Go type; p is
// assumed valid (a float that is NaN or infinite, for one, gives a line ParseLine refuses).
func FormatLine(p Point) string {
	b := make([]byte, 0, len(p.Device)+16*len(p.Fields)+24)
	b = append(b, p.Device...)
	for i, f := range p.Fields {
		if i == 0 {
			b = append(b, ' ')
		} else {
			b = append(b, ',')
		}
		b = append(b, f.Name...)
		b = append(b, '=')
		b = appendValue(b, f.Value)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, p.Time, 10)
	return string(b)
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case bool:
		return strconv.AppendBool(b, x)
	case int32:
		return append(strconv.AppendInt(b, int64(x), 10), "i32"...)
	case int64:
		return append(strconv.AppendInt(b, x, 10), 'i')
	case float32:
		return append(strconv.AppendFloat(b, float64(x), 'g', -1, 32), 'f')
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case string:
		b = append(b, '"')
		for i := 0; i < len(x); i++ {
			switch c := x[i]; c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, c)
			}
		}
		return append(b, '"')
	}
	return fmt.Appendf(b, "%v", v)
}

// PointsToTablets turns points into tablets: each run of consecutive points of the same device
// and the same field set (names and types, in any order) becomes one tablet, in order; its
// columns are in the order of the run's first point. It checks the points (device and
// measurement names, value types, finite floats, no duplicate or missing fields) and that a
// measurement name keeps one type per database across the batch. The caller must Release the
// tablets; on error none are returned.
func PointsToTablets(mem memory.Allocator, pts []Point) (out []*Tablet, err error) {
	type seenType struct {
		typ    DataType
		device string
	}
	types := make(map[string]seenType)
	var (
		tb    *TabletBuilder
		dev   string
		cols  []Column
		index map[string]int
	)
	defer func() {
		if tb != nil {
			tb.Release()
		}
		if err != nil {
			for _, t := range out {
				t.Release()
			}
			out = nil
		}
	}()
	flush := func() error {
		if tb == nil {
			return nil
		}
		t, err := tb.Build()
		tb.Release()
		tb = nil
		if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	}
	for k := range pts {
		p := &pts[k]
		if err := checkPoint(p); err != nil {
			return out, fmt.Errorf("points[%d]: %w", k, err)
		}
		db := Database(p.Device)
		for _, f := range p.Fields {
			key := db + "\x00" + f.Name
			if st, ok := types[key]; !ok {
				types[key] = seenType{f.Type, p.Device}
			} else if st.typ != f.Type {
				return out, fmt.Errorf("points[%d]: type conflict: %s measurement %q is %s, but %s earlier in the batch (device %s)",
					k, p.Device, f.Name, f.Type, st.typ, st.device)
			}
		}
		if tb == nil || p.Device != dev || !sameFields(cols, index, p.Fields) {
			if err := flush(); err != nil {
				return out, err
			}
			dev = p.Device
			cols = make([]Column, len(p.Fields))
			index = make(map[string]int, len(p.Fields))
			for i, f := range p.Fields {
				cols[i] = Column{Name: f.Name, Type: f.Type}
				index[f.Name] = i
			}
			tb = NewTabletBuilder(mem, dev, cols)
		}
		tb.Times().Append(p.Time)
		for _, f := range p.Fields {
			appendGo(tb.Field(index[f.Name]), f.Value)
		}
	}
	if err := flush(); err != nil {
		return out, err
	}
	return out, nil
}

func sameFields(cols []Column, index map[string]int, fields []Field) bool {
	if len(fields) != len(cols) {
		return false
	}
	for _, f := range fields {
		i, ok := index[f.Name]
		if !ok || cols[i].Type != f.Type {
			return false
		}
	}
	return true // fields has no duplicates (checkPoint)
}

// checkPoint validates a point's device, field names, types and values.
func checkPoint(p *Point) error {
	if err := ValidateDevice(p.Device); err != nil {
		return err
	}
	if len(p.Fields) == 0 {
		return fmt.Errorf("%s: point has no fields", p.Device)
	}
	var seen map[string]struct{}
	for i, f := range p.Fields {
		if err := ValidateMeasurement(f.Name); err != nil {
			return fmt.Errorf("%s: %w", p.Device, err)
		}
		if dupField(p.Fields[:i], &seen, f.Name) {
			return fmt.Errorf("%s: duplicate field %q", p.Device, f.Name)
		}
		if err := checkFieldValue(f); err != nil {
			return fmt.Errorf("%s: field %q: %w", p.Device, f.Name, err)
		}
	}
	return nil
}

func checkFieldValue(f Field) error {
	ok := false
	switch v := f.Value.(type) {
	case bool:
		ok = f.Type == Boolean
	case int32:
		ok = f.Type == Int32
	case int64:
		ok = f.Type == Int64
	case float32:
		ok = f.Type == Float
		if ok && (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) {
			return fmt.Errorf("value %v is not finite", v)
		}
	case float64:
		ok = f.Type == Double
		if ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
			return fmt.Errorf("value %v is not finite", v)
		}
	case string:
		ok = f.Type == Text
	}
	if !ok {
		return fmt.Errorf("value %v (%T) does not match type %s", f.Value, f.Value, f.Type)
	}
	return nil
}

// appendGo appends a checked Go value to a builder of its type.
func appendGo(b array.Builder, v any) {
	switch x := v.(type) {
	case bool:
		b.(*array.BooleanBuilder).Append(x)
	case int32:
		b.(*array.Int32Builder).Append(x)
	case int64:
		b.(*array.Int64Builder).Append(x)
	case float32:
		b.(*array.Float32Builder).Append(x)
	case float64:
		b.(*array.Float64Builder).Append(x)
	case string:
		b.(*array.StringBuilder).Append(x)
	}
}
