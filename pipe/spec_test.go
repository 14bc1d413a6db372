package pipe

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var updateSpecGolden = flag.Bool("update-spec", false, "rewrite pipe/testdata/specs/good/*.out")

// Test plugins: names start with test-spec- so that they never clash with real plugins or
// other tests' plugins in the same binary.
func init() {
	RegisterExtractor(PluginInfo{Name: "test-spec-wal", Aliases: []string{"test-spec-log"}, Params: []ParamSpec{
		{Key: "pattern", Type: PatternParam, Default: "root.**"},
		{Key: "start-time", Type: TimeParam},
		{Key: "end-time", Type: TimeParam},
		{Key: "history.enable", Type: Bool, Default: "true"},
		{Key: "realtime.mode", Type: Enum, Enum: []string{"stream", "batch", "hybrid"}, Default: "stream"},
	}}, func() Extractor { return nil })
	RegisterExtractor(PluginInfo{Name: "test-spec-files", Params: []ParamSpec{
		{Key: "pattern", Type: PatternParam},
	}}, func() Extractor { return nil })
	RegisterProcessor(PluginInfo{Name: "test-spec-nop"}, func() Processor { return nil })
	RegisterProcessor(PluginInfo{Name: "test-spec-downsample", Params: []ParamSpec{
		{Key: "method", Type: Enum, Enum: []string{"tumbling-time", "swinging-door", "changing-value"}, Default: "tumbling-time"},
		{Key: "interval", Type: Duration, Default: "1m", Min: MinOf(0.001)},
		{Key: "error", Type: Float, Min: MinOf(0)},
	}}, func() Processor { return nil })
	RegisterConnector(PluginInfo{Name: "test-spec-kafka", Params: []ParamSpec{
		{Key: "brokers", Type: String, Required: true},
		{Key: "topic", Type: String, Required: true},
		{Key: "partitions", Type: Int, Default: "1", Min: MinOf(1)},
		{Key: "batch.max-bytes", Type: Bytes, Default: "1MiB"},
		{Key: "batch.max-delay", Type: Duration, Default: "100ms"},
		{Key: "format", Type: Enum, Enum: []string{"json", "arrow"}, Default: "json"},
	}}, func() Connector { return nil })
	RegisterConnector(PluginInfo{Name: "test-spec-write-back", Params: []ParamSpec{
		{Key: "database", Type: String, Required: true},
	}}, func() Connector { return nil })
	RegisterConnector(PluginInfo{Name: "test-spec-together", Params: []ParamSpec{
		{Key: "user", Type: String},
		{Key: "mode", Type: Enum, Enum: []string{"none", "plain"}, Default: "none"},
	}, Validate: func(p Params) []error {
		var errs []error
		if p.String("user") != "" && p.String("mode") == "none" {
			errs = append(errs, &Problem{Key: "user", Msg: "is set but mode is none"})
		}
		if p.String("user") == "root" {
			errs = append(errs, errors.New("root may not export"))
		}
		return errs
	}}, func() Connector { return nil })
}

func TestSpecValidateTogether(t *testing.T) {
	withDefaultSource(t)
	src := "name: p\nsink:\n  plugin: test-spec-together\n  user: root\n"
	errs := mustParseSpec(t, src).Validate()
	if got := strs(errs); len(got) != 2 || got[0] != "sink.user: is set but mode is none" || got[1] != "sink: root may not export" {
		t.Fatalf("got %q", got)
	}
	var p *Problem
	if !errors.As(errs[0], &p) || p.Line != 4 || p.Column != 3 {
		t.Fatalf("the problem is not at the key's line: %#v", errs[0])
	}
	// the plugin's check runs only once every key passed its own
	if got := strs(mustParseSpec(t, src+"  mode: secret\n").Validate()); len(got) != 1 || !strings.HasPrefix(got[0], "sink.mode:") {
		t.Fatalf("got %q", got)
	}
	if errs := mustParseSpec(t, "name: p\nsink: {plugin: test-spec-together, user: u, mode: plain}\n").Validate(); len(errs) != 0 {
		t.Fatalf("got %v", errs)
	}
}

// withDefaultSource makes DefaultSource resolvable for the test: the real extractor when
// it is linked in, otherwise a stand-in registered for the test only.
func withDefaultSource(t *testing.T) PluginInfo {
	t.Helper()
	if info, ok := Lookup(RoleSource, DefaultSource); ok {
		return info
	}
	r := &registration{info: PluginInfo{Name: DefaultSource, Role: RoleSource, Params: []ParamSpec{
		{Key: "pattern", Type: PatternParam, Default: "root.**"},
	}}}
	registry.Lock()
	registry.m[RoleSource][DefaultSource] = r
	registry.Unlock()
	t.Cleanup(func() {
		registry.Lock()
		delete(registry.m[RoleSource], DefaultSource)
		registry.Unlock()
	})
	return r.info
}

func strs(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// formatProblem writes a problem as pipectl lint does (without the file name).
func formatProblem(e error) string {
	if p, ok := PositionOf(e); ok {
		if _, syntax := e.(*SyntaxError); syntax {
			return e.Error()
		}
		return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, e)
	}
	return e.Error()
}

// noPos drops source positions so that parsed specs compare with DeepEqual.
func noPos(s *Spec) *Spec {
	if s == nil {
		return nil
	}
	c := s.Clone()
	c.pos = nil
	return c
}

func mustParseSpec(t *testing.T, src string) *Spec {
	t.Helper()
	s, err := ParseSpec([]byte(src))
	if err != nil {
		t.Fatalf("ParseSpec:\n%s\nerror: %v", src, err)
	}
	return s
}

func mustNormalize(t *testing.T, s *Spec) *Spec {
	t.Helper()
	n, err := s.Normalize()
	if err != nil {
		t.Fatalf("Normalize: %v", strings.Join(strs(Problems(err)), "\n"))
	}
	return n
}

const docExample = `name: copy
source:   {plugin: test-spec-wal, pattern: root.demo.**, start-time: 0}
processors:
  - {plugin: test-spec-nop}
sink:     {plugin: test-spec-write-back, database: root.copy}
`

func TestSpecParseYAML(t *testing.T) {
	got := noPos(mustParseSpec(t, docExample))
	want := &Spec{
		Name:       "copy",
		Source:     PluginSpec{Plugin: "test-spec-wal", Params: map[string]string{"pattern": "root.demo.**", "start-time": "0"}},
		Processors: []PluginSpec{{Plugin: "test-spec-nop"}},
		Sink:       PluginSpec{Plugin: "test-spec-write-back", Params: map[string]string{"database": "root.copy"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	if errs := got.Validate(); len(errs) != 0 {
		t.Fatalf("Validate: %v", errs)
	}
}

func TestSpecParseYAMLForms(t *testing.T) {
	cases := []struct {
		name, src string
		want      *Spec
	}{
		{"scalars become text as written", `
name: p
source: {plugin: test-spec-wal, start-time: 007, history.enable: yes, a: 1.50, b: true, c: -1, d: 0x1F, e: "quoted", f: 'single'}
sink: {plugin: k}`, &Spec{Name: "p",
			Source: PluginSpec{Plugin: "test-spec-wal", Params: map[string]string{"start-time": "007", "history.enable": "yes", "a": "1.50", "b": "true", "c": "-1", "d": "0x1F", "e": "quoted", "f": "single"}},
			Sink:   PluginSpec{Plugin: "k"}}},
		{"IoTDB aliases", `
name: p
extractor: {extractor: iotdb-source, extractor.pattern: root.a.**}
processor: {processor: do-nothing-processor, processor.x: "1"}
connector: {connector: write-back-connector, connector.database: root.b}`, &Spec{Name: "p",
			Source:     PluginSpec{Plugin: "iotdb-source", Params: map[string]string{"extractor.pattern": "root.a.**"}},
			Processors: []PluginSpec{{Plugin: "do-nothing-processor", Params: map[string]string{"processor.x": "1"}}},
			Sink:       PluginSpec{Plugin: "write-back-connector", Params: map[string]string{"connector.database": "root.b"}}}},
		{"source and sink keys name plugins", `
name: p
source: {source: wal, source.pattern: root.**}
sink: {sink: kafka}`, &Spec{Name: "p",
			Source: PluginSpec{Plugin: "wal", Params: map[string]string{"source.pattern": "root.**"}},
			Sink:   PluginSpec{Plugin: "kafka"}}},
		{"bare plugin names, nested maps, lists, params map", `
name: p
source: wal
processors: [a, {plugin: b}]
sink:
  plugin: kafka
  batch:
    max-bytes: 1MiB
    max-delay: 5s
  brokers: [h1:9092, h2:9092]
  params: {topic: t, plugin: not-the-name}`, &Spec{Name: "p",
			Source:     PluginSpec{Plugin: "wal"},
			Processors: []PluginSpec{{Plugin: "a"}, {Plugin: "b"}},
			Sink:       PluginSpec{Plugin: "kafka", Params: map[string]string{"batch.max-bytes": "1MiB", "batch.max-delay": "5s", "brokers": "h1:9092,h2:9092", "topic": "t", "plugin": "not-the-name"}}}},
		{"JSON", `{"name": "p", "source": {"plugin": "wal", "n": 5, "b": false}, "sink": {"plugin": "x", "params": {"k": "v"}}}`,
			&Spec{Name: "p", Source: PluginSpec{Plugin: "wal", Params: map[string]string{"n": "5", "b": "false"}}, Sink: PluginSpec{Plugin: "x", Params: map[string]string{"k": "v"}}}},
		{"anchors, tags and block scalars", `
name: !!str 12
source: {plugin: wal, pattern: &p root.x.**}
sink:
  plugin: x
  also: *p
  text: |
    two
    lines
`, &Spec{Name: "12",
			Source: PluginSpec{Plugin: "wal", Params: map[string]string{"pattern": "root.x.**"}},
			Sink:   PluginSpec{Plugin: "x", Params: map[string]string{"also": "root.x.**", "text": "two\nlines\n"}}}},
		{"no source, empty processors", "name: p\nprocessors: []\nsink: x\n", &Spec{Name: "p", Sink: PluginSpec{Plugin: "x"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := noPos(mustParseSpec(t, c.src))
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestSpecParseErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"name: p\nsoruce: {plugin: x}\nsink: y\n", "2:1: soruce: unknown key (known: name, source, processors, sink; IoTDB's extractor, processor, connector)"},
		{"name: p\nsource: x\nextractor: y\n", `3:1: source: given twice (as "source" and "extractor")`},
		{"name: p\nprocessors: [x]\nprocessor: y\n", `3:1: processors: given twice (as "processors" and "processor")`},
		{"name: p\nsource: {plugin: x, source: y}\n", `2:21: source: plugin named twice (by "plugin" and "source")`},
		{"name: p\nsource: {plugin: x, a.b: 1, a: {b: 2}}\n", `2:33: source.a.b: given twice`},
		{"name: p\nsource: {plugin: x, a: }\n", `2:21: source.a: no value (write "" for an empty string)`},
		{"name: p\nsource: {plugin: x, a: [{b: 1}]}\n", `2:25: source.a: a list value may hold only single values`},
		{"name: p\nsource: [x]\n", `2:9: source: must be a plugin name or a mapping with key "plugin", found a list`},
		{"name: p\nprocessors: {plugin: x}\n", `2:13: processors: must be a list of processors, found a mapping`},
		{"name: [p]\n", `1:7: name: must be a single value, found a list`},
		{"- a\n", `1:1: a spec is a mapping with keys name, source, processors, sink; found a list`},
		{"", `empty spec (want name, source, processors, sink)`},
		{"# nothing\n", `empty spec (want name, source, processors, sink)`},
		{"name: a\n---\nname: b\n", `3:1: a spec is one YAML document, found another`},
		{"name: a\nname: b\n", `2:1: mapping key "name" already defined at [1:1]`},
		{"name: p\nsource: {plugin: [x\n", `2:18: sequence end token ']' not found`},
		{"name: p\nsink: *nope\n", `2:7: unknown alias *nope`},
		{"name: p\nsink: {plugin: x, k: *nope}\n", `2:22: unknown alias *nope`},
		{"name: p\nsink: {plugin: x, k: [*nope]}\n", `2:23: unknown alias *nope`},
		{"name: p\nsink: {params: x}\n", `2:16: sink.params: must be a mapping of parameters, found a value`},
		{"name: p\nsink: {<<: {a: b}}\n", `2:8: sink: merge keys (<<) are not supported`},
		{"name: \"\\xff\"\n", ""}, // valid: YAML decodes \xff to U+00FF
		{"name: \xff\n", "spec is not valid UTF-8"},
	}
	for _, c := range cases {
		_, err := ParseSpec([]byte(c.src))
		var got []string
		for _, e := range Problems(err) {
			got = append(got, formatProblem(e))
		}
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: unexpected error %v", c.src, err)
			}
			continue
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("%q:\n got  %q\n want %q", c.src, got, c.want)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	cases := []struct {
		src  string
		want []string
	}{
		{docExample, nil},
		{`
name: bad name!
source: {plugin: wall}
processors:
  - {plugin: test-spec-nop}
  - {plugin: test-spec-downsample, method: foo, interval: 0s, error: -1}
  - {plugin: test-spec-downsampel}
  - {x: 1}
sink: {plugin: test-spec-kafka, batch.max-bytes: 12x, sink.partitions: "0", partitons: 2, connector.topic: t}`, []string{
			`name: must be 1-64 chars of letters, digits, '_' '-'`,
			`source: unknown source "wall" (registered: `,
			`processors[1].error: -1 is below the minimum 0`,
			`processors[1].interval: 0s is below the minimum 1ms`,
			`processors[1].method: "foo" is not one of tumbling-time, swinging-door, changing-value`,
			`processors[2]: unknown processor "test-spec-downsampel" (registered: `,
			`processors[3]: no plugin named (key "plugin"; in SQL 'processor')`,
			`sink.batch.max-bytes: "12x" is not a byte size (e.g. 1048576, 64KiB, 64MiB)`,
			`sink.partitons: unknown key (known: brokers, topic, partitions, batch.max-bytes, batch.max-delay, format); did you mean "partitions"?`,
			`sink.partitions: 0 is below the minimum 1`,
			`sink.brokers: missing, required by sink test-spec-kafka`,
		}},
		{"name: p\nsource: {plugin: test-spec-wal, patern: root.**, source.pattern: root.a, extractor.pattern: root.b}\nsink: {plugin: test-spec-write-back, database: x}", []string{
			`source.patern: unknown key (known: pattern, start-time, end-time, history.enable, realtime.mode); did you mean "pattern"?`,
			`source.pattern: given twice (as "extractor.pattern" and "source.pattern")`,
		}},
		{"name: p\nsource: {plugin: test-spec-wal, pattern: x.y, start-time: yesterday}\nsink: {plugin: test-spec-write-back, database: x}", []string{
			`source.pattern: pattern "x.y": must start with "root"`,
			`source.start-time: "yesterday" is neither unix milliseconds nor an RFC 3339 time`,
		}},
		{"name: p\nsource: test-spec-files\nprocessors: [test-spec-nop]\nsink: {plugin: test-spec-write-back, database: x, sink.database: y}", []string{
			`sink.database: given twice (as "database" and "sink.database")`,
		}},
		{"name: p\nsource: test-spec-files\nsink: {database: x}", []string{`sink: no plugin named (key "plugin"; in SQL 'sink')`}},
		{"name: p\nsource: test-spec-files\n", []string{`sink: required: name a sink plugin (registered: `}},
		{"name: p\nsource: test-spec-files\nprocessors: [{plugin: test-spec-nop, x: 1}]\nsink: test-spec-write-back", []string{
			`processors[0].x: unknown key (processor test-spec-nop takes no parameters)`,
			`sink.database: missing, required by sink test-spec-write-back`,
		}},
		{"source: test-spec-files\nsink: {plugin: test-spec-write-back, database: x}", []string{`name: required: 1-64 chars of letters, digits, '_' '-'`}},
		{"name: " + strings.Repeat("a", 65) + "\nsource: test-spec-files\nsink: {plugin: test-spec-write-back, database: x}", []string{`name: must be 1-64 chars`}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got := strs(mustParseSpec(t, c.src).Validate())
			if len(got) != len(c.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for j := range got {
				if !strings.HasPrefix(got[j], c.want[j]) {
					t.Errorf("problem %d:\n got  %s\n want %s…", j, got[j], c.want[j])
				}
			}
		})
	}
}

func TestSpecProblemPositions(t *testing.T) {
	src := "name: p\nsource:\n  plugin: test-spec-wal\n  patern: root.**\nsink:\n  plugin: test-spec-kafka\n  topic: t\n"
	s := mustParseSpec(t, src)
	var got []string
	for _, e := range s.Validate() {
		got = append(got, formatProblem(e))
	}
	want := []string{
		`4:3: source.patern: unknown key`,
		`6:11: sink.brokers: missing, required by sink test-spec-kafka`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("got %q, want %q…", got[i], want[i])
		}
	}
}

func TestSpecNormalize(t *testing.T) {
	src := `
name: p
extractor:
  extractor: TEST-SPEC-LOG-extractor
  source.pattern: root.a.**
  extractor.realtime.mode: batch
processor: {processor: test-spec-downsample-processor, processor.method: swinging-door}
connector: {connector: test-spec-kafka-sink, sink.brokers: "h:1", topic: t, sink.batch.max-bytes: 2MiB}
`
	s := mustParseSpec(t, src)
	before := noPos(s)
	n := mustNormalize(t, s)
	want := &Spec{
		Name: "p",
		Source: PluginSpec{Plugin: "test-spec-wal", Params: map[string]string{
			"pattern": "root.a.**", "realtime.mode": "batch", "history.enable": "true"}},
		Processors: []PluginSpec{{Plugin: "test-spec-downsample", Params: map[string]string{"method": "swinging-door", "interval": "1m"}}},
		Sink: PluginSpec{Plugin: "test-spec-kafka", Params: map[string]string{
			"brokers": "h:1", "topic": "t", "batch.max-bytes": "2MiB", "partitions": "1", "batch.max-delay": "100ms", "format": "json"}},
	}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("got  %#v\nwant %#v", n, want)
	}
	if !reflect.DeepEqual(noPos(s), before) {
		t.Fatal("Normalize changed its receiver")
	}
	if again := mustNormalize(t, n); !reflect.DeepEqual(again, n) {
		t.Fatalf("Normalize is not idempotent: %#v", again)
	}
	p := s.ParamsOf(RoleSink, 0)
	if p.Bytes("batch.max-bytes") != 2<<20 || p.Int("partitions") != 1 || p.String("brokers") != "h:1" {
		t.Fatalf("ParamsOf(sink) = %v", p.Map())
	}
	if _, ok := s.ParamsOf(RoleSource, 0).Raw("start-time"); ok {
		t.Fatal("start-time has no default and was not given, yet is set")
	}
	if got := s.ParamsOf(RoleProcessor, 0).String("method"); got != "swinging-door" {
		t.Fatalf("ParamsOf(processor 0).method = %q", got)
	}
	if got := s.ParamsOf(RoleProcessor, 5).Map(); len(got) != 0 {
		t.Fatalf("ParamsOf(processor 5) = %v", got)
	}
	if _, err := mustParseSpec(t, "name: p\nsink: {plugin: nope}").Normalize(); err == nil ||
		!strings.Contains(err.Error(), `sink: unknown sink "nope"`) {
		t.Fatalf("Normalize of an invalid spec: %v", err)
	}
}

func TestSpecDefaultSource(t *testing.T) {
	info := withDefaultSource(t)
	for _, src := range []string{
		"name: p\nsink: {plugin: test-spec-write-back, database: d}",
		"name: p\nsource: {}\nsink: {plugin: test-spec-write-back, database: d}",
		"name: p\nsource: {plugin: iotdb-source}\nsink: {plugin: test-spec-write-back, database: d}",
		"name: p\nsource: {extractor: IoTDB-Extractor}\nsink: {plugin: test-spec-write-back, database: d}",
		"name: p\nsource: {plugin: " + DefaultSource + "-source}\nsink: {plugin: test-spec-write-back, database: d}",
	} {
		n := mustNormalize(t, mustParseSpec(t, src))
		if n.Source.Plugin != info.Name {
			t.Errorf("%q: source %q, want %q", src, n.Source.Plugin, info.Name)
		}
	}
	sql, err := ParseSQL("CREATE PIPE p WITH SINK ('sink'='test-spec-write-back', 'database'='d')")
	if err != nil {
		t.Fatal(err)
	}
	yml := mustParseSpec(t, "name: p\nsink: {plugin: test-spec-write-back, database: d}")
	if a, b := mustNormalize(t, sql.Spec), mustNormalize(t, yml); !reflect.DeepEqual(a, b) {
		t.Fatalf("SQL %#v\nYAML %#v", a, b)
	}
}

func TestSpecSuffixesAreRoleSpecific(t *testing.T) {
	s := mustParseSpec(t, "name: p\nsource: test-spec-wal-sink\nsink: {plugin: test-spec-write-back-source, database: d}")
	got := strs(s.Validate())
	if len(got) != 2 || !strings.HasPrefix(got[0], `source: unknown source "test-spec-wal-sink"`) ||
		!strings.HasPrefix(got[1], `sink: unknown sink "test-spec-write-back-source"`) {
		t.Fatalf("got %q", got)
	}
}

// Both forms of the same pipe normalize to equal specs.
func TestSpecYAMLAndSQLAgree(t *testing.T) {
	pairs := []struct{ yaml, sql string }{
		{docExample, `CREATE PIPE copy WITH SOURCE ('source'='test-spec-wal', 'pattern'='root.demo.**', 'start-time'='0')
		  WITH PROCESSOR ('processor'='test-spec-nop') WITH SINK ('sink'='test-spec-write-back', 'database'='root.copy');`},
		{docExample, `create pipe copy with extractor ("extractor"="test-spec-wal-extractor", 'extractor.pattern'='root.demo.**', 'source.start-time'='0')
		  with processor ('processor'='test-spec-nop-processor') with connector ('connector'='test-spec-write-back-connector', 'connector.database'='root.copy')`},
		{`
name: k
source: {plugin: test-spec-files}
processors:
  - {plugin: test-spec-downsample, method: changing-value, error: 0.5}
  - test-spec-nop
  - {plugin: test-spec-downsample, interval: 10s}
sink:
  plugin: test-spec-kafka
  brokers: [a:1, b:2]
  topic: it's
  batch: {max-bytes: 64MiB}
`, `CREATE PIPE IF NOT EXISTS k
  WITH SOURCE ('source'='test-spec-files')
  WITH PROCESSOR ('processor'='test-spec-downsample', 'method'='changing-value', 'error'='0.5')
  WITH PROCESSOR ('processor'='test-spec-nop')
  WITH PROCESSOR ('processor'='test-spec-downsample', 'processor.interval'='10s')
  WITH SINK ('sink'='test-spec-kafka', 'sink.brokers'='a:1,b:2', 'topic'='it''s', 'batch.max-bytes'='64MiB')`},
	}
	for i, p := range pairs {
		y := mustNormalize(t, mustParseSpec(t, p.yaml))
		st, err := ParseSQL(p.sql)
		if err != nil {
			t.Fatalf("pair %d: %v", i, err)
		}
		s := mustNormalize(t, st.Spec)
		if !reflect.DeepEqual(y, s) {
			t.Errorf("pair %d differs:\nYAML %#v\nSQL  %#v", i, y, s)
		}
	}
}

// YAML(), JSON() and SQL() read back to the same spec, raw or normalized.
func TestSpecRoundTrip(t *testing.T) {
	specs := []*Spec{
		mustParseSpec(t, docExample),
		mustNormalize(t, mustParseSpec(t, docExample)),
		{Name: "odd", Source: PluginSpec{Params: map[string]string{"x": "null", "y": "", "z": "a: b", "w": "-1", "v": "*x", "u": "it's \"q\"\n\ttab ☃"}},
			Processors: []PluginSpec{{Plugin: "a", Params: map[string]string{"plugin": "p", "params": "q"}}, {}, {Plugin: "null"}},
			Sink:       PluginSpec{Plugin: "s", Params: map[string]string{"sink": "x", "a.b": "1", "true": "false"}}},
		{Name: "", Sink: PluginSpec{}},
		{Name: "only-source-params", Source: PluginSpec{Params: map[string]string{"source": "x"}}},
	}
	for i, s := range specs {
		want := noPos(s)
		for _, form := range []string{"yaml", "json", "sql"} {
			var got *Spec
			var err error
			switch form {
			case "yaml":
				got, err = ParseSpec(s.YAML())
			case "json":
				got, err = ParseSpec(s.JSON())
			case "sql":
				var st *Statement
				if st, err = ParseSQL(s.SQL()); err == nil {
					got = st.Spec
				}
			}
			if err != nil {
				t.Errorf("spec %d %s: %v\n%s%s%s", i, form, err, s.YAML(), s.JSON(), s.SQL())
				continue
			}
			if form == "sql" {
				// SQL has no place for a parameter named like the plugin key; it is written
				// with its IoTDB prefix, which normalization strips.
				continue
			}
			if !reflect.DeepEqual(noPos(got), want) {
				t.Errorf("spec %d %s:\n got  %#v\n want %#v\n%s", i, form, noPos(got), want, s.YAML())
			}
		}
	}
	// The documented YAML shape.
	want := `name: copy
source:
  plugin: test-spec-wal
  pattern: root.demo.**
  start-time: 0
processors:
  - plugin: test-spec-nop
sink:
  plugin: test-spec-write-back
  database: root.copy
`
	if got := string(mustParseSpec(t, docExample).YAML()); got != want {
		t.Errorf("YAML():\n%s\nwant\n%s", got, want)
	}
}

// The example specs under testdata/specs: each good one validates (and pairs with the same
// base name normalize equal, and match the golden .out); each bad one yields exactly the
// problems its "want:" comments list, in order (each a prefix of "line:col: key: message").
func TestSpecTestdata(t *testing.T) {
	good, _ := filepath.Glob("testdata/specs/good/*")
	bad, _ := filepath.Glob("testdata/specs/bad/*")
	if len(good) == 0 || len(bad) == 0 {
		t.Fatal("no example specs")
	}
	byBase := map[string]*Spec{}
	for _, path := range good {
		if filepath.Ext(path) == ".out" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n, errs := checkFile(path, data)
		if len(errs) > 0 {
			t.Errorf("%s: %s", path, strings.Join(strs(errs), "\n"))
			continue
		}
		base := strings.TrimSuffix(path, filepath.Ext(path))
		if prev, ok := byBase[base]; ok && !reflect.DeepEqual(prev, n) {
			t.Errorf("%s: differs from its pair:\n%s\n%s", path, prev.YAML(), n.YAML())
		}
		byBase[base] = n
		golden := base + ".out"
		if *updateSpecGolden {
			if err := os.WriteFile(golden, n.YAML(), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if want, err := os.ReadFile(golden); err != nil {
			t.Errorf("%s: %v (run with -update-spec)", path, err)
		} else if string(want) != string(n.YAML()) {
			t.Errorf("%s: normalized spec differs from %s:\n%s", path, golden, n.YAML())
		}
	}
	for _, path := range bad {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var wants []string
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			for _, c := range []string{"# want: ", "-- want: "} {
				if w, ok := strings.CutPrefix(line, c); ok {
					wants = append(wants, w)
				}
			}
		}
		if len(wants) == 0 {
			t.Errorf("%s: no want: comments", path)
		}
		_, errs := checkFile(path, data)
		var got []string
		for _, e := range errs {
			got = append(got, formatProblem(e))
		}
		if len(got) != len(wants) {
			t.Errorf("%s: got %d problems, want %d:\n%s", path, len(got), len(wants), strings.Join(got, "\n"))
			continue
		}
		for i := range got {
			if !strings.HasPrefix(got[i], wants[i]) {
				t.Errorf("%s: problem %d:\n got  %s\n want %s…", path, i, got[i], wants[i])
			}
		}
	}
}

func checkFile(path string, data []byte) (*Spec, []error) {
	if filepath.Ext(path) == ".sql" {
		st, errs := CheckSQL(string(data))
		if len(errs) > 0 {
			return nil, errs
		}
		return st.Spec, nil
	}
	return CheckSpec(data)
}

func TestSpecCheckReportsEverything(t *testing.T) {
	// Structural and validation problems together, without repeating a key.
	_, errs := CheckSpec([]byte("name: p\nsoruce: x\nsource: {plugin: test-spec-wal, patern: 1}\nsink: {plugin: test-spec-write-back, database: [a, {b: c}]}\n"))
	got := strs(errs)
	want := []string{"soruce: unknown key", "source.patern: unknown key", "sink.database: a list value"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("got %q, want %q…", got[i], want[i])
		}
	}
	var p *Problem
	if !errors.As(errs[0], &p) || p.Key != "soruce" || p.Line != 2 {
		t.Fatalf("first problem %#v", errs[0])
	}
}

func TestSpecHostileYAML(t *testing.T) {
	// An alias bomb and deep nesting are cut off, not expanded.
	bomb := "a: &a {x: 1, y: 1, z: 1, w: 1}\n"
	prev := "a"
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("b%d", i)
		bomb += fmt.Sprintf("%s: &%s {x: *%s, y: *%s, z: *%s, w: *%s}\n", name, name, prev, prev, prev, prev)
		prev = name
	}
	src := "name: p\nsink:\n  plugin: x\n  params:\n" + indent(bomb, "    ")
	_, errs := CheckSpec([]byte(src))
	found := false
	for _, e := range errs {
		found = found || strings.Contains(e.Error(), "too large")
	}
	if !found {
		t.Fatalf("alias bomb not cut off: %d problems", len(errs))
	}
	deep := "name: p\nsink:\n  plugin: x\n  k: " + strings.Repeat("{a: ", 200) + "1" + strings.Repeat("}", 200) + "\n"
	if _, err := ParseSpec([]byte(deep)); err == nil {
		t.Fatal("deep nesting accepted")
	}
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return pre + strings.Join(lines, "\n"+pre) + "\n"
}

func FuzzParseSpec(f *testing.F) {
	f.Add(docExample)
	f.Add("name: p\nextractor: {extractor: iotdb-source, extractor.pattern: root.**}\nprocessor: x\nconnector:\n  connector: y\n  a: {b: [1, 2]}\n  params: {plugin: z}\n")
	f.Add(`{"name": "p", "source": {"plugin": "wal", "n": 5}, "sink": {"plugin": "x", "params": {"k": "v"}}}`)
	f.Add("name: &n p\nsink: {plugin: *n, t: |\n  x\n}\n")
	f.Fuzz(func(t *testing.T, src string) {
		s, err := ParseSpec([]byte(src))
		CheckSpec([]byte(src))
		if err != nil {
			return
		}
		s.Validate()
		for _, data := range [][]byte{s.YAML(), s.JSON()} {
			again, err := ParseSpec(data)
			if err != nil {
				t.Fatalf("spec does not read back: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(noPos(again), noPos(s)) {
				t.Fatalf("spec reads back as %#v, not %#v\n%s", noPos(again), noPos(s), data)
			}
		}
	})
}
