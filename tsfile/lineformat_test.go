package tsfile

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"pgregory.net/rapid"
)

const testNow = 1_732_530_000_000

func TestParseLine(t *testing.T) {
	cases := []struct {
		line string
		want Point
	}{
		{`root.demo.d1 temp=21.5,state=1i,ok=true,name="x" 1732530000000`, Point{"root.demo.d1", 1732530000000, []Field{
			{"temp", Double, 21.5}, {"state", Int64, int64(1)}, {"ok", Boolean, true}, {"name", Text, "x"}}}},
		{`root.demo.d1 temp=21.5`, Point{"root.demo.d1", testNow, []Field{{"temp", Double, 21.5}}}},
		{`root.d x=1`, Point{"root.d", testNow, []Field{{"x", Double, 1.0}}}},
		{`root.d x=-2e3,y=.5,z=1.,w=+3E-2`, Point{"root.d", testNow, []Field{
			{"x", Double, -2000.0}, {"y", Double, 0.5}, {"z", Double, 1.0}, {"w", Double, 0.03}}}},
		{`root.d a=1i32,b=-2147483648i32,c=9223372036854775807i,d=-9223372036854775808i`, Point{"root.d", testNow, []Field{
			{"a", Int32, int32(1)}, {"b", Int32, int32(math.MinInt32)}, {"c", Int64, int64(math.MaxInt64)}, {"d", Int64, int64(math.MinInt64)}}}},
		{`root.d f=1.5f,g=-3e38f,h=1f`, Point{"root.d", testNow, []Field{
			{"f", Float, float32(1.5)}, {"g", Float, float32(-3e38)}, {"h", Float, float32(1)}}}},
		{`root.d a=t,b=f,c=T,d=F,e=true,g=false,h=TRUE,i=FALSE,j=True,k=False`, Point{"root.d", testNow, []Field{
			{"a", Boolean, true}, {"b", Boolean, false}, {"c", Boolean, true}, {"d", Boolean, false},
			{"e", Boolean, true}, {"g", Boolean, false}, {"h", Boolean, true}, {"i", Boolean, false},
			{"j", Boolean, true}, {"k", Boolean, false}}}},
		{`root.d s="",t="a \"q\" \\ b\nc\rd\te, x=1 #",u="héllo ✓"`, Point{"root.d", testNow, []Field{
			{"s", Text, ""}, {"t", Text, "a \"q\" \\ b\nc\rd\te, x=1 #"}, {"u", Text, "héllo ✓"}}}},
		{"  root.d\tx=1i \t -5  \r", Point{"root.d", -5, []Field{{"x", Int64, int64(1)}}}},
		{`root.d x=1i +7`, Point{"root.d", 7, []Field{{"x", Int64, int64(1)}}}},
		{`root.a-b.c_d.0 m-1=1i,_m=2i 0`, Point{"root.a-b.c_d.0", 0, []Field{{"m-1", Int64, int64(1)}, {"_m", Int64, int64(2)}}}},
		{`root.d x=1e-400`, Point{"root.d", testNow, []Field{{"x", Double, 0.0}}}}, // underflow rounds to 0
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			got, err := ParseLine(c.line, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestParseLineErrors(t *testing.T) {
	cases := []struct {
		line string
		col  int
		msg  string
	}{
		// structure
		{``, 1, "blank or a comment"},
		{`# comment`, 1, "blank or a comment"},
		{`root.d`, 7, `expected a space and fields (name=value) after device "root.d"`},
		{`root.d `, 7, `expected a space and fields`},
		{`root.d x`, 9, `expected '=' after measurement name "x"`},
		{`root.d temp:1`, 12, `expected '=' after measurement name "temp", found ':'`},
		{`root.d x=`, 10, `expected a value after '=' for "x"`},
		{`root.d x=,y=1`, 10, `expected a value after '=' for "x"`},
		{`root.d x= 1`, 10, `expected a value after '=' for "x"`},
		{`root.d =1`, 8, `expected a field (name=value), found '='`},
		{`root.d x=1,`, 12, `expected a measurement name after ',', found end of line`},
		{`root.d x=1,,y=2`, 12, `expected a measurement name after ',', found ','`},
		{`root.d 1732530000000`, 8, `expected fields (name=value) before the timestamp`},
		{`root.d x=1 y=2`, 11, `expected ',' between fields, found a space`},
		{`root.d x="a"b`, 13, `expected ',' or a space after the value of "x", found 'b'`},
		// devices and names
		{`root.d,host=a x=1`, 7, `unexpected ',' in device path`},
		{`root.dé x=1`, 7, `unexpected 'é' in device path`},
		{`rooty.d x=1`, 1, `invalid device path: device "rooty.d": path must start with "root."`},
		{`root x=1`, 1, `path needs at least one node after root`},
		{`root..d x=1`, 1, `empty node`},
		{`root.d time=1`, 8, `measurement "time": name is reserved`},
		{`root.d device=1`, 8, `measurement "device": name is reserved`},
		{`root.d x=1,y=2,x=3`, 16, `duplicate field "x"`},
		{`root.d x.y=1`, 9, `expected '=' after measurement name "x", found '.'`},
		// values
		{`root.d x=abc`, 10, `invalid value "abc" for "x": expected a number`},
		{`root.d x=NaN`, 10, `NaN and infinities are not allowed`},
		{`root.d x=-Inf`, 10, `NaN and infinities are not allowed`},
		{`root.d x=inff`, 10, `NaN and infinities are not allowed`},
		{`root.d x=1e400`, 10, `value 1e400 of "x" overflows DOUBLE`},
		{`root.d x=1e39f`, 10, `value 1e39f of "x" overflows FLOAT`},
		{`root.d x=2147483648i32`, 10, `value 2147483648i32 of "x" overflows INT32`},
		{`root.d x=-2147483649i32`, 10, `overflows INT32`},
		{`root.d x=9223372036854775808i`, 10, `value 9223372036854775808i of "x" overflows INT64`},
		{`root.d x=1.5i`, 10, `invalid INT64 value "1.5i" for "x": expected an integer before 'i'`},
		{`root.d x=1.5i32`, 10, `invalid INT32 value "1.5i32"`},
		{`root.d x=i`, 10, `invalid INT64 value "i"`},
		{`root.d x=1u`, 10, `invalid value "1u"`},
		{`root.d x=0x10`, 10, `invalid value "0x10"`},
		{`root.d x=1_000`, 10, `invalid value "1_000"`},
		{`root.d x=1e`, 10, `invalid value "1e"`},
		{`root.d x=.`, 10, `invalid value "."`},
		{`root.d x=yes`, 10, `invalid value "yes"`},
		{`root.d x=truee`, 10, `invalid value "truee"`},
		{`root.d x="abc`, 10, `unterminated string value for "x"`},
		{`root.d x="abc\"`, 10, `unterminated string value for "x"`},
		{`root.d x="abc\`, 10, `unterminated string value for "x"`},
		{`root.d x="a\qb"`, 12, `invalid escape \q in the string value of "x"`},
		{"root.d x=\"a\nb\"", 12, `line break in the string value of "x"`},
		{"root.d x=\"a\xffb\"", 10, `string value of "x" is not valid UTF-8`},
		// timestamps
		{`root.d x=1 12.5`, 12, `expected an integer timestamp or end of line, found "12.5"`},
		{`root.d x=1 1s`, 12, `found "1s"`},
		{`root.d x=1 9223372036854775808`, 12, `timestamp 9223372036854775808 overflows int64`},
		{`root.d x=1 1 2`, 14, `expected end of line after the timestamp, found '2'`},
		// columns count characters, not bytes
		{`root.d s="é",x`, 15, `expected '=' after measurement name "x"`},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			p, err := ParseLine(c.line, testNow)
			if err == nil {
				t.Fatalf("no error; got %#v", p)
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not a *LineError", err)
			}
			if le.Column != c.col || !strings.Contains(le.Msg, c.msg) {
				t.Fatalf("got column %d %q, want column %d %q", le.Column, le.Msg, c.col, c.msg)
			}
			if want := fmt.Sprintf("column %d: ", c.col); !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %q does not start with %q", err, want)
			}
		})
	}
	long := "root.d x=\"" + strings.Repeat("a", MaxLineLength) + "\""
	if _, err := ParseLine(long, 0); err == nil || !strings.Contains(err.Error(), "line longer than") {
		t.Fatalf("long line: %v", err)
	}
}

func TestParseLines(t *testing.T) {
	input := "\xEF\xBB\xBF# header\n" +
		"root.demo.d1 temp=21.5 1000\r\n" +
		"\n" +
		"   \t\n" +
		"  # indented comment\n" +
		"root.demo.d1 temp=x 2000\n" +
		"root.demo.d2 temp=22.5,state=1i\n" +
		"root.demo.d1 temp 3000\n" +
		"root.demo.d1 temp=23.5 4000" // no final newline
	var lines []int
	var pts []Point
	ticks := int64(0)
	now := func() int64 { ticks++; return 5000 + ticks }
	err := ParseLines(strings.NewReader(input), now, func(n int, p Point) error {
		lines = append(lines, n)
		pts = append(pts, p)
		return nil
	})
	var les *LineErrors
	if !errors.As(err, &les) {
		t.Fatalf("error %v (%T), want *LineErrors", err, err)
	}
	want := []LineError{
		{Line: 6, Column: 19, Msg: `invalid value "x" for "temp": ` + valueHint},
		{Line: 8, Column: 18, Msg: `expected '=' after measurement name "temp", found ' '`},
	}
	if !reflect.DeepEqual(les.Errors, want) || les.Omitted != 0 || les.Len() != 2 {
		t.Fatalf("errors:\n%#v\nwant\n%#v", les, want)
	}
	wantMsg := "2 bad lines:\n  line 6, column 19: invalid value \"x\" for \"temp\": " + valueHint +
		"\n  line 8, column 18: expected '=' after measurement name \"temp\", found ' '"
	if err.Error() != wantMsg {
		t.Fatalf("message:\n%s\nwant\n%s", err, wantMsg)
	}
	if !reflect.DeepEqual(lines, []int{2, 7, 9}) {
		t.Fatalf("lines %v", lines)
	}
	if pts[0].Time != 1000 || pts[1].Time != 5001 || pts[2].Time != 4000 || ticks != 1 {
		t.Fatalf("times %d %d %d (now called %d times)", pts[0].Time, pts[1].Time, pts[2].Time, ticks)
	}
	if pts[1].Device != "root.demo.d2" || len(pts[1].Fields) != 2 {
		t.Fatalf("point %#v", pts[1])
	}

	t.Run("one error", func(t *testing.T) {
		err := ParseLines(strings.NewReader("root.d x=1\nroot.d x\n"), nil, func(int, Point) error { return nil })
		if err == nil || err.Error() != `line 2, column 9: expected '=' after measurement name "x"` {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("nil now", func(t *testing.T) {
		var got Point
		if err := ParseLines(strings.NewReader("root.d x=1"), nil, func(_ int, p Point) error { got = p; return nil }); err != nil {
			t.Fatal(err)
		}
		if got.Time < 1_700_000_000_000 {
			t.Fatalf("time %d is not now in ms", got.Time)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if err := ParseLines(strings.NewReader(""), nil, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseLinesCapsErrors(t *testing.T) {
	var sb strings.Builder
	for i := range 250 {
		if i%2 == 0 {
			sb.WriteString("bad\n")
		} else {
			sb.WriteString("root.d x=1i 1\n")
		}
	}
	good := 0
	err := ParseLines(strings.NewReader(sb.String()), nil, func(int, Point) error { good++; return nil })
	var les *LineErrors
	if !errors.As(err, &les) {
		t.Fatalf("error %v", err)
	}
	if good != 125 || len(les.Errors) != 100 || les.Omitted != 25 || les.Len() != 125 {
		t.Fatalf("good %d, listed %d, omitted %d", good, len(les.Errors), les.Omitted)
	}
	if les.Errors[99].Line != 199 || !strings.HasSuffix(err.Error(), "\n  ... and 25 more") {
		t.Fatalf("last listed line %d; message ends %q", les.Errors[99].Line, err.Error()[len(err.Error())-30:])
	}
}

func TestParseLinesLongLines(t *testing.T) {
	okLong := "root.d x=\"" + strings.Repeat("a", MaxLineLength-11) + "\"" // exactly MaxLineLength bytes
	if len(okLong) != MaxLineLength {
		t.Fatal(len(okLong))
	}
	tooLong := okLong + " "
	wayTooLong := "root.d x=\"" + strings.Repeat("b", 3*MaxLineLength) + "\""
	input := okLong + "\r\n" + tooLong + "\n" + wayTooLong + "\nroot.d y=2\n"
	var lines []int
	err := ParseLines(strings.NewReader(input), nil, func(n int, p Point) error {
		lines = append(lines, n)
		return nil
	})
	var les *LineErrors
	if !errors.As(err, &les) || les.Len() != 2 || les.Errors[0].Line != 2 || les.Errors[1].Line != 3 ||
		!strings.Contains(les.Errors[0].Msg, "line longer than 1048576 bytes") {
		t.Fatalf("error %v", err)
	}
	if !reflect.DeepEqual(lines, []int{1, 4}) {
		t.Fatalf("good lines %v", lines)
	}
}

type failReader struct{ data string }

func (r *failReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestParseLinesStops(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := ParseLines(strings.NewReader("root.d x=1\nroot.d x=2\n"), nil, func(int, Point) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	err = ParseLines(&failReader{"root.d x=1\nbad\nroot.d x="}, nil, func(int, Point) error { return nil })
	var les *LineErrors
	if err == nil || !strings.Contains(err.Error(), "reading line 3: disk on fire") || !errors.As(err, &les) || les.Len() != 1 {
		t.Fatalf("err %v", err)
	}
}

func TestPointsToTablets(t *testing.T) {
	mem := newMem(t)
	lines := `root.db.d1 a=1,b=2i 1
root.db.d1 b=3i,a=1.5 2
root.db.d2 a=2 1
root.db.d1 a=3 3
root.db.d1 a=4 4
root.db.d1 a=5,c="x" 5
root.db2.d1 a=1i 1`
	var pts []Point
	for _, l := range strings.Split(lines, "\n") {
		p, err := ParseLine(l, 0)
		if err != nil {
			t.Fatal(err)
		}
		pts = append(pts, p)
	}
	tabs, err := PointsToTablets(mem, pts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, tab := range tabs {
			tab.Release()
		}
	}()
	type summary struct {
		device string
		cols   []Column
		times  []int64
	}
	var got []summary
	for _, tab := range tabs {
		if err := tab.Validate(); err != nil {
			t.Fatal(err)
		}
		got = append(got, summary{tab.Device, tab.Columns(), tab.Times()})
	}
	want := []summary{
		{"root.db.d1", []Column{{"a", Double}, {"b", Int64}}, []int64{1, 2}},
		{"root.db.d2", []Column{{"a", Double}}, []int64{1}},
		{"root.db.d1", []Column{{"a", Double}}, []int64{3, 4}},
		{"root.db.d1", []Column{{"a", Double}, {"c", Text}}, []int64{5}},
		{"root.db2.d1", []Column{{"a", Int64}}, []int64{1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	// values land in the right columns whatever the field order
	if v := Value(tabs[0].Rec.Column(1), 1); v != 1.5 {
		t.Fatalf("a[1] = %v", v)
	}
	if v := Value(tabs[0].Rec.Column(2), 1); v != int64(3) {
		t.Fatalf("b[1] = %v", v)
	}
}

func TestPointsToTabletsErrors(t *testing.T) {
	mem := newMem(t)
	ok := Point{"root.db.d1", 1, []Field{{"a", Double, 1.0}}}
	cases := []struct {
		name string
		pts  []Point
		want string
	}{
		{"type conflict", []Point{ok, {"root.db.d2", 2, []Field{{"b", Int32, int32(1)}, {"a", Int64, int64(1)}}}},
			`points[1]: type conflict: root.db.d2 measurement "a" is INT64, but DOUBLE earlier in the batch (device root.db.d1)`},
		{"no fields", []Point{ok, {"root.db.d1", 2, nil}}, "points[1]: root.db.d1: point has no fields"},
		{"bad device", []Point{{"db.d1", 1, ok.Fields}}, `points[0]: device "db.d1": path must start`},
		{"bad name", []Point{{"root.d", 1, []Field{{"a b", Double, 1.0}}}}, `points[0]: root.d: measurement "a b"`},
		{"duplicate", []Point{{"root.d", 1, []Field{{"a", Double, 1.0}, {"a", Double, 2.0}}}}, `duplicate field "a"`},
		{"value type", []Point{{"root.d", 1, []Field{{"a", Double, 1}}}}, `field "a": value 1 (int) does not match type DOUBLE`},
		{"nil value", []Point{{"root.d", 1, []Field{{"a", Text, nil}}}}, `value <nil> (<nil>) does not match type TEXT`},
		{"NaN", []Point{{"root.d", 1, []Field{{"a", Double, math.NaN()}}}}, `value NaN is not finite`},
		{"Inf", []Point{{"root.d", 1, []Field{{"a", Float, float32(math.Inf(1))}}}}, `value +Inf is not finite`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tabs, err := PointsToTablets(mem, c.pts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if tabs != nil {
				t.Fatal("tablets returned with an error")
			}
		})
	}
	tabs, err := PointsToTablets(mem, nil)
	if err != nil || len(tabs) != 0 {
		t.Fatalf("no points: %v %v", tabs, err)
	}
}

// genPoint draws a valid point.
func genPoint(t *rapid.T) Point {
	node := rapid.StringMatching(`[a-zA-Z0-9_-]{1,8}`)
	device := "root." + strings.Join(rapid.SliceOfN(node, 1, 4).Draw(t, "nodes"), ".")
	name := node.Filter(func(s string) bool { return s != "time" && s != "device" })
	names := rapid.SliceOfNDistinct(name, 1, 8, func(s string) string { return s }).Draw(t, "names")
	finite64 := rapid.Float64().Filter(func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) })
	finite32 := rapid.Float32().Filter(func(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) })
	str := rapid.OneOf(rapid.String(), rapid.StringMatching(`[ a-z"\\,=\n\r\t#]{0,6}`))
	p := Point{Device: device, Time: rapid.Int64().Draw(t, "time")}
	for _, n := range names {
		f := Field{Name: n, Type: rapid.SampledFrom(AllTypes).Draw(t, "type")}
		switch f.Type {
		case Boolean:
			f.Value = rapid.Bool().Draw(t, "v")
		case Int32:
			f.Value = rapid.Int32().Draw(t, "v")
		case Int64:
			f.Value = rapid.Int64().Draw(t, "v")
		case Float:
			f.Value = finite32.Draw(t, "v")
		case Double:
			f.Value = finite64.Draw(t, "v")
		case Text:
			f.Value = str.Draw(t, "v")
		}
		p.Fields = append(p.Fields, f)
	}
	return p
}

func TestFormatLineRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := genPoint(t)
		line := FormatLine(p)
		if strings.ContainsAny(line, "\n\r") {
			t.Fatalf("line break in %q", line)
		}
		got, err := ParseLine(line, 0)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if !reflect.DeepEqual(got, p) || !sameFloatBits(got, p) {
			t.Fatalf("%q:\ngot  %#v\nwant %#v", line, got, p)
		}
	})
}

// sameFloatBits tells apart 0 and -0, which reflect.DeepEqual does not.
func sameFloatBits(a, b Point) bool {
	for i, f := range a.Fields {
		switch v := f.Value.(type) {
		case float64:
			if math.Float64bits(v) != math.Float64bits(b.Fields[i].Value.(float64)) {
				return false
			}
		case float32:
			if math.Float32bits(v) != math.Float32bits(b.Fields[i].Value.(float32)) {
				return false
			}
		}
	}
	return true
}

func TestFormatLine(t *testing.T) {
	p := Point{"root.demo.d1", 1732530000000, []Field{
		{"temp", Double, 21.5}, {"state", Int64, int64(1)}, {"n", Int32, int32(-3)}, {"f", Float, float32(0.1)},
		{"ok", Boolean, true}, {"name", Text, "a \"b\"\\\n"}, {"big", Double, 1e21}, {"one", Double, 1.0}}}
	want := `root.demo.d1 temp=21.5,state=1i,n=-3i32,f=0.1f,ok=true,name="a \"b\"\\\n",big=1e+21,one=1 1732530000000`
	if got := FormatLine(p); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`root.demo.d1 temp=21.5,state=1i,ok=true,name="x" 1732530000000`,
		`root.d a=1i32,b=-2e3,c=1.5f,d=t,e="\"\\\n" -1`,
		`root.d x=1e400`,
		"root.d x=\"é\\\"\" \t 5 \r",
		`# comment`,
	} {
		f.Add(s)
	}
	mem := memory.NewGoAllocator()
	f.Fuzz(func(t *testing.T, line string) {
		p, err := ParseLine(line, 42)
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Column < 1 || le.Column > len(line)+1 {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		// A parsed point is valid and survives formatting.
		tabs, err := PointsToTablets(mem, []Point{p})
		if err != nil {
			t.Fatalf("parsed point is invalid: %v", err)
		}
		for _, tab := range tabs {
			tab.Release()
		}
		again, err := ParseLine(FormatLine(p), 0)
		if err != nil {
			t.Fatalf("%q: formatted as %q: %v", line, FormatLine(p), err)
		}
		if !reflect.DeepEqual(again, p) || !sameFloatBits(again, p) {
			t.Fatalf("%q: got %#v, want %#v", line, again, p)
		}
	})
}
