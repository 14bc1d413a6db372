package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-dev/weir/pipe"
)

// Test plugins for lint: names start with test-lint- so that they never clash with the
// built-in plugins or other tests' plugins.
func init() {
	pipe.RegisterExtractor(pipe.PluginInfo{Name: "test-lint-wal", Params: []pipe.ParamSpec{
		{Key: "pattern", Type: pipe.PatternParam, Default: "root.**"},
		{Key: "start-time", Type: pipe.TimeParam},
	}}, func() pipe.Extractor { return nil })
	pipe.RegisterProcessor(pipe.PluginInfo{Name: "test-lint-nop"}, func() pipe.Processor { return nil })
	pipe.RegisterConnector(pipe.PluginInfo{Name: "test-lint-write-back", Params: []pipe.ParamSpec{
		{Key: "database", Type: pipe.String, Required: true},
		{Key: "batch.max-bytes", Type: pipe.Bytes, Default: "4MiB"},
	}}, func() pipe.Connector { return nil })
}

func runLint(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"lint"}, args...))
	if err := root.Execute(); err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("lint %v: %v (not an ExitError)", args, err)
		}
		errOut.WriteString("pipectl: " + err.Error() + "\n")
		return out.String(), errOut.String(), ee.Code
	}
	return out.String(), errOut.String(), 0
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const lintGoodYAML = `name: copy
source:   {plugin: test-lint-wal, pattern: root.demo.**, start-time: 0}
processors:
  - {plugin: test-lint-nop}
sink:     {plugin: test-lint-write-back, database: root.copy}
`

const lintGoodSQL = `CREATE PIPE copy
  WITH EXTRACTOR ('extractor'='test-lint-wal-extractor', 'extractor.pattern'='root.demo.**', 'source.start-time'='0')
  WITH PROCESSOR ('processor'='test-lint-nop-processor')
  WITH CONNECTOR ('connector'='test-lint-write-back-sink', 'sink.database'='root.copy');
`

const lintNormalized = `name: copy
source:
  plugin: test-lint-wal
  pattern: root.demo.**
  start-time: 0
processors:
  - plugin: test-lint-nop
sink:
  plugin: test-lint-write-back
  database: root.copy
  batch.max-bytes: 4MiB
`

func TestLintValid(t *testing.T) {
	dir := t.TempDir()
	y := writeFile(t, dir, "copy.yaml", lintGoodYAML)
	s := writeFile(t, dir, "copy.sql", lintGoodSQL)

	for _, args := range [][]string{{y}, {s}, {"--sql", lintGoodSQL}} {
		out, errOut, code := runLint(t, "", args...)
		if code != 0 || out != lintNormalized || errOut != "" {
			t.Errorf("lint %v: code %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
		}
	}
	// Standard input: YAML, or SQL when it starts like a statement (after comments).
	for _, in := range []string{lintGoodYAML, "-- a comment\n/* another */ " + lintGoodSQL} {
		out, errOut, code := runLint(t, in, "-")
		if code != 0 || out != lintNormalized {
			t.Errorf("lint - <<%q: code %d\n%s%s", in, code, out, errOut)
		}
	}
	if out, errOut, code := runLint(t, lintGoodSQL, "--sql", "-"); code != 0 || out != lintNormalized {
		t.Errorf("lint --sql -: code %d\n%s%s", code, out, errOut)
	}

	// Several inputs: YAML documents separated by ---; JSON values one after another.
	out, _, code := runLint(t, "", y, s)
	if code != 0 || out != lintNormalized+"---\n"+lintNormalized {
		t.Errorf("two files: code %d\n%s", code, out)
	}
	out, _, code = runLint(t, "", "--json", y, s)
	dec := json.NewDecoder(strings.NewReader(out))
	for i := 0; i < 2; i++ {
		var spec pipe.Spec
		if err := dec.Decode(&spec); err != nil || spec.Sink.Params["database"] != "root.copy" || spec.Source.Plugin != "test-lint-wal" {
			t.Fatalf("--json: code %d, value %d: %v\n%s", code, i, err, out)
		}
	}
	// The JSON output is itself a valid spec.
	j := writeFile(t, dir, "copy.json", out[:strings.Index(out, "}\n{")+2])
	if out, errOut, code := runLint(t, "", j); code != 0 || out != lintNormalized {
		t.Errorf("lint of --json output: code %d\n%s%s", code, out, errOut)
	}

	// Other statements print back as SQL.
	if out, _, code := runLint(t, "", "--sql", "drop pipe if exists copy;"); code != 0 || out != "DROP PIPE IF EXISTS copy\n" {
		t.Errorf("lint DROP: code %d %q", code, out)
	}
}

func TestLintProblems(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", `name: copy!
source:
  plugin: test-lint-wal
  patern: root.demo.**
sink:
  plugin: test-lint-write-back
  batch.max-bytes: 12x
`)
	good := writeFile(t, dir, "good.yaml", lintGoodYAML)
	badSQL := writeFile(t, dir, "bad.sql", "CREATE PIPE p\n  WITH SINK ('sink'='test-lint-write-back' 'database'='x')\n")

	out, errOut, code := runLint(t, "", bad, good, badSQL)
	if code != 1 {
		t.Fatalf("code %d, want 1", code)
	}
	if out != lintNormalized {
		t.Errorf("the valid file is still printed; stdout:\n%s", out)
	}
	want := []string{
		bad + `:1:7: name: must be 1-64 chars of letters, digits, '_' '-'`,
		bad + `:4:3: source.patern: unknown key (known: pattern, start-time); did you mean "pattern"?`,
		bad + `:6:11: sink.database: missing, required by sink test-lint-write-back`,
		bad + `:7:3: sink.batch.max-bytes: "12x" is not a byte size (e.g. 1048576, 64KiB, 64MiB)`,
		badSQL + `:2:44: unexpected "'database'" (expected ")")`,
		`pipectl: lint: 5 problems in 2 of 3 inputs`,
	}
	if got := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, strings.Join(want, "\n"))
	}

	// Problems without a position, from --sql and standard input.
	_, errOut, code = runLint(t, "name: p\nsource: test-lint-wal\nsink: {plugin: test-lint-nope}\n", "-")
	if code != 1 || !strings.HasPrefix(errOut, `<stdin>:3:16: sink: unknown sink "test-lint-nope" (registered: `) ||
		!strings.HasSuffix(errOut, "\npipectl: lint: 1 problem\n") {
		t.Errorf("stdin: code %d\n%s", code, errOut)
	}
	_, errOut, code = runLint(t, "", "--sql", "CREATE PIPE p WITH SINK ('sink'='test-lint-write-back')")
	if code != 1 || !strings.HasPrefix(errOut, `--sql:1:26: sink.database: missing, required by sink test-lint-write-back`) {
		t.Errorf("--sql: code %d\n%s", code, errOut)
	}
}

func TestLintUsage(t *testing.T) {
	if _, errOut, code := runLint(t, ""); code != 2 || !strings.Contains(errOut, "give spec files") {
		t.Errorf("no arguments: code %d %q", code, errOut)
	}
	if _, errOut, code := runLint(t, "", filepath.Join(t.TempDir(), "missing.yaml")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: code %d %q", code, errOut)
	}
}
