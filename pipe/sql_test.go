package pipe

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSQLStatements(t *testing.T) {
	cases := []struct {
		sql  string
		want Statement
	}{
		{"START PIPE p", Statement{Kind: StartPipe, Name: "p"}},
		{"stop pipe p;", Statement{Kind: StopPipe, Name: "p"}},
		{"Drop Pipe If Exists p ;", Statement{Kind: DropPipe, Name: "p", IfExists: true}},
		{"DROP PIPE `if`", Statement{Kind: DropPipe, Name: "if"}},
		{"SHOW PIPES", Statement{Kind: ShowPipes}},
		{"-- all of them\nSHOW /* inline */ PIPE my-pipe_2", Statement{Kind: ShowPipes, Name: "my-pipe_2"}},
		{"SHOW PIPE `a``b`", Statement{Kind: ShowPipes, Name: "a`b"}},
		{"CREATE PIPE IF NOT EXISTS p WITH SINK ('sink'='x')", Statement{Kind: CreatePipe, Name: "p", IfNotExists: true,
			Spec: &Spec{Name: "p", Sink: PluginSpec{Plugin: "x"}}}},
		{`create pipe p
		    with extractor ('extractor'='wal', 'extractor.pattern'='root.a.**')
		    with processor ("processor"="a", 'k'="it""s")
		    with processor ('processor'='b')
		    with connector ('connector'='c', 'connector.node-urls'='h:1,h:2', 'empty'='');`,
			Statement{Kind: CreatePipe, Name: "p", Spec: &Spec{Name: "p",
				Source:     PluginSpec{Plugin: "wal", Params: map[string]string{"extractor.pattern": "root.a.**"}},
				Processors: []PluginSpec{{Plugin: "a", Params: map[string]string{"k": `it"s`}}, {Plugin: "b"}},
				Sink:       PluginSpec{Plugin: "c", Params: map[string]string{"connector.node-urls": "h:1,h:2", "empty": ""}}}}},
		{"CREATE PIPE p WITH SOURCE ('source.pattern'='root.**') WITH SINK ()", Statement{Kind: CreatePipe, Name: "p",
			Spec: &Spec{Name: "p", Source: PluginSpec{Params: map[string]string{"source.pattern": "root.**"}}}}},
		{"CREATE PIPE p WITH SINK ('Sink'='x')", Statement{Kind: CreatePipe, Name: "p", Spec: &Spec{Name: "p", Sink: PluginSpec{Plugin: "x"}}}},
	}
	for _, c := range cases {
		st, err := ParseSQL(c.sql)
		if err != nil {
			t.Errorf("%q: %v", c.sql, err)
			continue
		}
		st.Spec = noPos(st.Spec)
		if !reflect.DeepEqual(*st, c.want) {
			t.Errorf("%q:\n got  %#v %#v\n want %#v %#v", c.sql, *st, st.Spec, c.want, c.want.Spec)
		}
		again, err := ParseSQL(st.String())
		if err != nil {
			t.Errorf("%q: String() %q does not parse: %v", c.sql, st.String(), err)
			continue
		}
		again.Spec = noPos(again.Spec)
		if !reflect.DeepEqual(again, st) {
			t.Errorf("%q: String() %q reads back as %#v", c.sql, st.String(), again)
		}
	}
}

func TestSQLSyntaxErrors(t *testing.T) {
	cases := []struct{ sql, want string }{
		{"", `1:1: unexpected end of input (expected CREATE PIPE, START PIPE, STOP PIPE, DROP PIPE or SHOW PIPES)`},
		{"CREATE TABLE t", `1:8: unexpected "TABLE" (expected PIPE)`},
		{"CREATE PIPE p WITH", `1:19: unexpected end of input (expected SOURCE, EXTRACTOR, PROCESSOR, SINK or CONNECTOR)`},
		{"CREATE PIPE p\nWITH SINK", `2:10: unexpected end of input (expected "(")`},
		{"CREATE PIPE p WITH SINK ('sink'", `1:32: unexpected end of input (expected "=")`},
		{"CREATE PIPE p WITH SINK ('sink'=)", `1:33: unexpected ")" (expected a quoted string)`},
		{"CREATE PIPE p WITH SINK ('sink'=x)", `1:33: unexpected "x" (expected a quoted string)`},
		{"CREATE PIPE p WITH SINK ('a'='b',)", `1:34: unexpected ")" (expected 'key'='value')`},
		{"CREATE PIPE p WITH SINK ('a'='b'", `1:33: unexpected end of input (expected ")")`},
		{"CREATE PIPE p WITH SINK ('a'='b') junk", `1:35: unexpected "junk" (expected WITH, ";" or the end)`},
		{"CREATE PIPE p WITH SINK ('a'='b'); DROP PIPE p", `1:36: unexpected "DROP" (expected the end: one statement at a time)`},
		{"CREATE PIPE WITH SINK ('a'='b')", "1:13: unexpected \"WITH\" (expected a pipe name; a name that is a keyword is written `WITH`)"},
		{"CREATE PIPE IF EXISTS p", `1:16: unexpected "EXISTS" (expected "NOT" "EXISTS")`},
		{"DROP PIPE IF NOT EXISTS p", `1:14: unexpected "NOT" (expected "EXISTS")`},
		{"SHOW", `1:5: unexpected end of input (expected PIPES or PIPE name)`},
		{"START PIPE", `1:11: unexpected end of input (expected a pipe name)`},
		{"STOP PIPE p q", `1:13: unexpected "q" (expected ";" or the end)`},
		{"CREATE PIPE p WITH SINK ('a'='b)", `1:30: unterminated string`},
		{"CREATE PIPE `p", `1:13: unterminated quoted name`},
		{"CREATE PIPE p /* c", `1:15: unterminated comment`},
		{"CREATE PIPE p WITH SINK ('a'#'b')", `1:29: unexpected character '#'`},
		{"CREATE PIPE p WITH SINK ('a'='\xff')", `statement is not valid UTF-8`},
	}
	for _, c := range cases {
		_, err := ParseSQL(c.sql)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: got %v, want a syntax error", c.sql, err)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("%q:\n got  %s\n want %s", c.sql, err, c.want)
		}
	}
}

func TestSQLProblems(t *testing.T) {
	cases := []struct {
		sql  string
		want []string
	}{
		{"CREATE PIPE p WITH SOURCE ('source'='a') WITH EXTRACTOR ('extractor'='b') WITH SINK ('sink'='c')",
			[]string{"1:42: source: WITH SOURCE given twice"}},
		{"CREATE PIPE p WITH SINK ('sink'='a', 'connector'='b', 'k'='1', 'k'='2', ''='3')",
			[]string{
				"1:38: sink: plugin named twice (by 'sink' and 'connector')",
				"1:64: sink.k: given twice",
				"1:73: sink: empty key",
			}},
	}
	for _, c := range cases {
		_, err := ParseSQL(c.sql)
		var got []string
		for _, e := range Problems(err) {
			got = append(got, formatProblem(e))
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got  %q\n want %q", c.sql, got, c.want)
		}
	}
}

func TestSQLCheck(t *testing.T) {
	withDefaultSource(t)
	st, errs := CheckSQL(`CREATE PIPE p
  WITH SOURCE ('source'='test-spec-wal', 'source.patern'='root.**')
  WITH PROCESSOR ('processor'='test-spec-downsample', 'method'='foo')
  WITH SINK ('sink'='test-spec-kafka', 'topic'='t', 'sink.batch.max-bytes'='12x')`)
	if st != nil {
		t.Fatal("invalid statement accepted")
	}
	var got []string
	for _, e := range errs {
		got = append(got, formatProblem(e))
	}
	want := []string{
		`2:42: source.patern: unknown key (known: pattern, start-time, end-time, history.enable, realtime.mode); did you mean "pattern"?`,
		`3:55: processors[0].method: "foo" is not one of tumbling-time, swinging-door, changing-value`,
		`4:53: sink.batch.max-bytes: "12x" is not a byte size (e.g. 1048576, 64KiB, 64MiB)`,
		`4:14: sink.brokers: missing, required by sink test-spec-kafka`,
	}
	// Problems are sorted by position.
	want[2], want[3] = want[3], want[2]
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	st, errs = CheckSQL("CREATE PIPE p WITH SINK ('sink'='test-spec-write-back-sink', 'sink.database'='root.x')")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if st.Spec.Sink.Plugin != "test-spec-write-back" || st.Spec.Sink.Params["database"] != "root.x" {
		t.Fatalf("not normalized: %#v", st.Spec)
	}
	if st, errs := CheckSQL("DROP PIPE p"); len(errs) > 0 || st.Kind != DropPipe {
		t.Fatal(st, errs)
	}
	b, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(b), `"kind":"create-pipe"`) || !strings.Contains(string(b), `"sql":"CREATE PIPE p WITH SOURCE`) {
		t.Fatalf("JSON: %s %v", b, err)
	}
}

func FuzzParseSQL(f *testing.F) {
	for _, s := range []string{
		"CREATE PIPE p WITH SOURCE ('source'='wal') WITH PROCESSOR ('processor'='a') WITH SINK ('sink'='b', 'k'='v');",
		"create pipe if not exists `we``ird` with extractor (\"extractor\"=\"x\") with connector ('connector'='it''s')",
		"DROP PIPE IF EXISTS p", "SHOW PIPES", "SHOW PIPE p", "START PIPE p", "STOP PIPE p;",
		"CREATE PIPE p /* c */ WITH SINK ('sink'='x', 'a.b'='\n') -- c",
		"CREATE PIPE p WITH SINK ('sink'='a', 'sink'='b')",
		"CREATE PIPE", "'", "`", "/*",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		st, err := ParseSQL(sql)
		CheckSQL(sql)
		if err != nil {
			if st != nil {
				t.Fatal("statement and error")
			}
			return
		}
		// A statement reads back from its SQL text...
		again, err := ParseSQL(st.String())
		if err != nil {
			t.Fatalf("String() %q does not parse: %v", st.String(), err)
		}
		st.Spec, again.Spec = noPos(st.Spec), noPos(again.Spec)
		if !reflect.DeepEqual(st, again) {
			t.Fatalf("String() %q reads back as %#v, not %#v", st.String(), again, st)
		}
		if st.Kind != CreatePipe {
			return
		}
		// ...and its spec from YAML and JSON.
		for _, data := range [][]byte{st.Spec.YAML(), st.Spec.JSON()} {
			s, err := ParseSpec(data)
			if err != nil {
				t.Fatalf("spec does not read back: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(noPos(s), st.Spec) {
				t.Fatalf("spec reads back as %#v, not %#v\n%s", noPos(s), st.Spec, data)
			}
		}
		st.Spec.Validate()
	})
}
