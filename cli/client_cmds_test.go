package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/pipe"
)

// startTestNode runs an in-process node on 127.0.0.1 port 0 and returns its URL.
func startTestNode(t *testing.T, regions int) string {
	t.Helper()
	n, err := node.Open(node.Options{ID: 1, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Regions: regions, AutoCreate: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return "http://" + n.HTTPAddr()
}

// pipectl runs a command with stdin and returns its outputs and exit code.
func pipectl(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		code = 1
		var ee *ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
		errOut.WriteString("pipectl: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), code
}

func TestClientCommands(t *testing.T) {
	srv := startTestNode(t, 2)
	t.Setenv(serverEnv, srv) // the default of --server
	var in strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&in, "root.demo.d%d temp=%d.5,state=%di %d\n", i%3, i, i, 1000+i)
	}
	out, errOut, code := pipectl(t, in.String(), "write")
	if code != 0 || out != "wrote 20 points (10 lines, 3 tablets) to root.demo\n" {
		t.Fatalf("write: %d %q %q", code, out, errOut)
	}
	// bad lines: the good ones are written, the bad ones listed with their numbers
	out, errOut, code = pipectl(t, "root.demo.d1 temp=1.5 5000\nroot.demo.d1 temp=oops 5001\nroot.demo.d1 temp=2i 5002\n", "write", "--json")
	var res api.WriteResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.Points != 1 || len(res.LineErrors) != 2 {
		t.Fatalf("write bad lines: %d %v %+v %q", code, err, res, errOut)
	}
	wantErr := "line 2, column 19: "
	if !strings.HasPrefix(errOut, wantErr) || !strings.Contains(errOut, "\nline 3: type conflict") || !strings.HasSuffix(errOut, "pipectl: write: 2 bad lines\n") {
		t.Errorf("write stderr:\n%s", errOut)
	}

	out, _, code = pipectl(t, "", "digest", "--db", "root.demo", "--json")
	var d struct {
		Database string `json:"database"`
		Digest   string `json:"digest"`
		Points   int64  `json:"points"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 || d.Database != "root.demo" || d.Points != 21 || len(d.Digest) != 32 {
		t.Fatalf("digest --json: %d %v %q", code, err, out)
	}
	if strings.Contains(out, "regions") {
		t.Errorf("digest --json without --regions: %s", out)
	}
	out, _, _ = pipectl(t, "", "digest")
	if !regexp.MustCompile(`^DATABASE\s+DIGEST\s+POINTS\nroot\.demo\s+[0-9a-f]{32}\s+21\n$`).MatchString(out) {
		t.Errorf("digest table:\n%s", out)
	}

	out, _, code = pipectl(t, "", "query", "root.demo.d1", "--csv", "--limit", "2")
	if code != 0 || out != "device,time,state,temp\nroot.demo.d1,1001,1,1.5\nroot.demo.d1,1004,4,4.5\n" {
		t.Errorf("query --csv: %d\n%s", code, out)
	}
	out, errOut, _ = pipectl(t, "", "query", "root.demo.d2", "--measurements", "temp")
	if out != "root.demo.d2\nTIME  TEMP\n1002  2.5\n1005  5.5\n1008  8.5\n" || errOut != "1 series, 3 rows, 3 points\n" {
		t.Errorf("query table:\n%s%s", out, errOut)
	}

	// pipes
	spec := writeFile(t, t.TempDir(), "copy.yaml", "name: copy\nsource: {plugin: hybrid, pattern: root.demo.**}\nsink: {plugin: write-back, database: root.copy}\n")
	out, errOut, code = pipectl(t, "", "pipe", "create", "-f", spec, "--start")
	if code != 0 || out != "pipe copy: RUNNING (hybrid → write-back)\n" {
		t.Fatalf("pipe create: %d %q %q", code, out, errOut)
	}
	_, errOut, code = pipectl(t, "", "pipe", "create", "-f", spec)
	if code != 1 || !strings.Contains(errOut, "pipe copy: pipe already exists (HTTP 409 conflict)") {
		t.Errorf("duplicate: %d %q", code, errOut)
	}
	bad := writeFile(t, t.TempDir(), "bad.yaml", "name: bad\nsource: {plugin: wal, patern: root.x.**}\nsink: {plugin: write-back}\n")
	_, errOut, code = pipectl(t, "", "pipe", "create", "-f", bad)
	if code != 1 || !strings.HasPrefix(errOut, bad+":2:23: source.patern: unknown key") || !strings.Contains(errOut, bad+":3:16: sink.database: missing") {
		t.Errorf("invalid spec: %d\n%s", code, errOut)
	}
	out, errOut, code = pipectl(t, "", "pipe", "wait", "copy", "--timeout", "30s")
	if code != 0 || !strings.HasPrefix(out, "pipe copy caught up: ") {
		t.Fatalf("pipe wait: %d %q %q", code, out, errOut)
	}
	out, _, _ = pipectl(t, "", "node", "status")
	if !regexp.MustCompile(`^node 1: http 127\.0\.0\.1:\d+, flight -, data .*, 1 pipe\n  root\.copy: 1 region\n  root\.demo: 2 regions\n$`).MatchString(out) {
		t.Errorf("node status:\n%s", out)
	}
	out, _, _ = pipectl(t, "", "pipe", "list")
	if !regexp.MustCompile(`^NAME\s+STATE\s+SOURCE\s+SINK\s+CARRIER\s+LAG EVENTS\s+LAG S\s+EVENTS/S\s+LAST ERROR\ncopy\s+RUNNING\s+hybrid\s+write-back\s+tablet\S*\s+0\s+0\.0\s+\d+\s+-\n$`).MatchString(out) {
		t.Errorf("pipe list:\n%s", out)
	}
	out, _, _ = pipectl(t, "", "pipe", "list", "--regions")
	if len(strings.Split(strings.TrimSpace(out), "\n")) != 3 || !strings.Contains(out, "root.demo/1") {
		t.Errorf("pipe list --regions:\n%s", out)
	}
	out, _, _ = pipectl(t, "", "pipe", "list", "--json")
	var sts []pipe.Status
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 1 || sts[0].Name != "copy" || len(sts[0].Regions) != 2 {
		t.Errorf("pipe list --json: %v\n%s", err, out)
	}
	out, _, _ = pipectl(t, "", "pipe", "describe", "copy")
	for _, want := range []string{"name              copy\n", "state             RUNNING\n", "\nspec\n  name: copy\n  source:\n    plugin: hybrid\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	out, _, code = pipectl(t, "", "pipe", "watch", "copy", "--count", "2", "--interval", "10ms")
	if code != 0 || strings.Count(out, "pipe copy  RUNNING  hybrid → write-back  lag 0 events") != 2 {
		t.Errorf("watch: %d\n%s", code, out)
	}
	_, errOut, code = pipectl(t, "", "pipe", "watch", "nope", "--count", "1")
	if code != 1 || !strings.Contains(errOut, "no such pipe") {
		t.Errorf("watch unknown: %d %q", code, errOut)
	}
	a, _, _ := pipectl(t, "", "digest", "--db", "root.demo", "--json")
	b, _, _ := pipectl(t, "", "digest", "--db", "root.copy", "--json")
	if strings.Replace(a, "root.demo", "root.copy", 1) != b {
		t.Errorf("copy digest differs:\n%s%s", a, b)
	}

	out, _, code = pipectl(t, "", "delete", "root.demo.d0.**", "--end", "1003")
	if code != 0 || out != "deleted root.demo.d0.** in root.demo\n" {
		t.Errorf("delete: %d %q", code, out)
	}
	if out, _, code := pipectl(t, "", "delete", "root.nothere.**"); code != 0 || out != "deleted root.nothere.**: no database matches it\n" {
		t.Errorf("delete of nothing: %d %q", code, out)
	}
	if out, _, code := pipectl(t, "", "write"); code != 0 || out != "wrote 0 points (0 lines, 0 tablets)\n" {
		t.Errorf("empty write: %d %q", code, out)
	}
	if _, _, code := pipectl(t, "", "pipe", "wait", "copy", "--timeout", "30s"); code != 0 {
		t.Errorf("pipe wait after delete: %d", code)
	}
	a, _, _ = pipectl(t, "", "digest", "--db", "root.demo", "--json")
	b, _, _ = pipectl(t, "", "digest", "--db", "root.copy", "--json")
	if strings.Replace(a, "root.demo", "root.copy", 1) != b || !strings.Contains(a, `"points": 17`) {
		t.Errorf("after delete:\n%s%s", a, b)
	}

	// SQL
	out, _, code = pipectl(t, "", "sql", "CREATE PIPE nop WITH SOURCE ('pattern'='root.demo.**') WITH SINK ('sink'='do-nothing')")
	if code != 0 || out != "create-pipe nop: done\n" {
		t.Errorf("sql create: %d %q", code, out)
	}
	out, _, _ = pipectl(t, "", "sql", "SHOW PIPES")
	if !regexp.MustCompile(`(?s)^NAME.*\ncopy\s+RUNNING.*\nnop\s+CREATED\s+hybrid\s+do-nothing\s+-\s+0`).MatchString(out) {
		t.Errorf("show pipes:\n%s", out)
	}
	out, _, _ = pipectl(t, "", "sql", "--json", "START PIPE nop")
	var sr api.SQLResult
	if err := json.Unmarshal([]byte(out), &sr); err != nil || sr.Statement != "start-pipe" || sr.Pipes[0].State != "RUNNING" {
		t.Errorf("sql --json start: %v %s", err, out)
	}
	for _, args := range [][]string{{"pipe", "stop", "nop"}, {"pipe", "start", "nop"}, {"pipe", "drop", "nop"}, {"pipe", "drop", "nop", "--if-exists"}} {
		if _, errOut, code := pipectl(t, "", args...); code != 0 {
			t.Errorf("%v: %d %s", args, code, errOut)
		}
	}
	_, errOut, code = pipectl(t, "", "pipe", "drop", "nop")
	if code != 1 || !strings.Contains(errOut, "HTTP 404") {
		t.Errorf("drop missing: %d %q", code, errOut)
	}
	if _, _, code := pipectl(t, "", "pipe", "create", "--sql", "SHOW PIPES"); code != 2 {
		t.Errorf("pipe create --sql SHOW: %d", code)
	}
	// a node that is not there
	_, errOut, code = pipectl(t, "", "digest", "--server", "http://127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("no node: %d %q", code, errOut)
	}
}

func TestNodeRunBadConfig(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "node.yaml", "id: 0\nregions: -1\n")
	_, errOut, code := pipectl(t, "", "node", "run", "--config", cfg)
	if code != 2 || !strings.Contains(errOut, "id: must be 1-65535") || !strings.Contains(errOut, "data: missing") || !strings.Contains(errOut, "regions: must be") {
		t.Errorf("bad config: %d\n%s", code, errOut)
	}
	_, errOut, code = pipectl(t, "", "node", "run", "--config", writeFile(t, t.TempDir(), "n.yaml", "id: 1\nhttps: x\n"))
	if code != 2 || !strings.Contains(errOut, `unknown field "https"`) {
		t.Errorf("unknown key: %d\n%s", code, errOut)
	}
	for _, n := range []string{"0", "-3", "1025"} {
		_, errOut, code = pipectl(t, "", "node", "run", "--id", "1", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--regions", n)
		if code != 2 || !strings.Contains(errOut, "--regions must be 1-1024, got "+n) {
			t.Errorf("--regions %s: %d\n%s", n, code, errOut)
		}
	}
}

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n          int
		what, want string
	}{{1, "row", "1 row"}, {3, "row", "3 rows"}, {0, "point", "0 points"}, {1, "series", "1 series"}, {3, "series", "3 series"}} {
		if got := plural(c.n, c.what); got != c.want {
			t.Errorf("plural(%d, %q) = %q, want %q", c.n, c.what, got, c.want)
		}
	}
}

func TestPipeTablesShowFailedRegions(t *testing.T) {
	st := pipe.Status{Name: "p", State: pipe.StateRunning, Source: "wal", Sink: "kafka", Regions: []pipe.RegionStatus{
		{Region: "root.demo/0", Phase: pipe.PhaseFailed, LastError: "sink.tls.ca-file: open /x: no such file"},
		{Region: "root.demo/1", Phase: "running"},
	}}
	var b strings.Builder
	printPipeSummary(&b, []pipe.Status{st})
	if !strings.Contains(b.String(), "RUNNING (1/2 FAILED)") {
		t.Errorf("summary:\n%s", b.String())
	}
	b.Reset()
	printPipeTable(&b, []pipe.Status{st})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "RUNNING (FAILED)") || strings.Contains(lines[2], "FAILED") {
		t.Errorf("per region:\n%s", b.String())
	}
}
