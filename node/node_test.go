package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/node/client"
)

type testNode struct {
	*node.Node
	c   *client.Client
	url string
}

// startNode opens and starts an in-process node on 127.0.0.1 port 0.
func startNode(t *testing.T, o node.Options) *testNode {
	t.Helper()
	if o.ID == 0 {
		o.ID = 1
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	o.HTTPAddr = "127.0.0.1:0"
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.AutoCreate = true
	n, err := node.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	url := "http://" + n.HTTPAddr()
	return &testNode{Node: n, c: client.New(url), url: url}
}

func lines(devices, rows int, base int64) string {
	var b strings.Builder
	for r := 0; r < rows; r++ {
		for d := 0; d < devices; d++ {
			fmt.Fprintf(&b, "root.demo.d%d temp=%d.5,state=%di,ok=%t,name=\"n%d\" %d\n", d, r, r%7, r%2 == 0, d, base+int64(r)*1000)
		}
	}
	return b.String()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// A write lands in the device's region; the query, the digest (whatever the number of
// regions) and the region stats agree.
func TestWriteQueryDigest(t *testing.T) {
	c := ctx(t)
	four := startNode(t, node.Options{Regions: 4})
	one := startNode(t, node.Options{Regions: 1, ID: 2})
	body := lines(10, 50, 1_732_530_000_000)
	for _, n := range []*testNode{four, one} {
		res, err := n.c.Write(c, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if res.Points != 10*50*4 || res.Lines != 500 || len(res.Databases) != 1 || res.Databases[0] != "root.demo" {
			t.Fatalf("write: %+v", res)
		}
	}
	d4, err := four.c.Digest(c, "root.demo")
	if err != nil {
		t.Fatal(err)
	}
	d1, err := one.c.Digest(c, "root.demo")
	if err != nil {
		t.Fatal(err)
	}
	if d4.Digest != d1.Digest || d4.Points != 2000 || len(d4.Regions) != 4 || len(d1.Regions) != 1 {
		t.Fatalf("digests differ: %+v vs %+v", d4, d1)
	}
	if d1.Regions[0].Digest != d1.Digest {
		t.Errorf("a one-region database's digest is its region's: %+v", d1)
	}
	var sum int64
	nonEmpty := 0
	for _, r := range d4.Regions {
		sum += r.Points
		if r.Points > 0 {
			nonEmpty++
		}
	}
	if sum != 2000 || nonEmpty < 2 {
		t.Errorf("regions: %+v", d4.Regions)
	}
	// flushing changes files, not the digest
	if err := four.c.Flush(c, "root.demo"); err != nil {
		t.Fatal(err)
	}
	if d, _ := four.c.Digest(c, "root.demo"); d.Digest != d1.Digest {
		t.Errorf("digest changed by a flush")
	}
	regs, err := four.c.Regions(c, "root.demo")
	if err != nil || len(regs) != 4 {
		t.Fatalf("regions: %v %+v", err, regs)
	}
	origins := map[uint32]bool{}
	for _, r := range regs {
		origins[r.Origin] = true
		if r.Origin>>16 != 1 {
			t.Errorf("region %s origin %d is not node 1's", r.Region, r.Origin)
		}
	}
	if len(origins) != 4 {
		t.Errorf("origins not distinct: %+v", regs)
	}

	// query: devices in order, one series each
	q, err := four.c.Query(c, api.Query{Pattern: "root.demo.**", Measurements: []string{"temp", "state"}, Start: 1_732_530_000_000, End: 1_732_530_009_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Series) != 10 || q.Rows != 100 || q.Points != 200 {
		t.Fatalf("query: %d series, %d rows, %d points", len(q.Series), q.Rows, q.Points)
	}
	if s := q.Series[0]; s.Device != "root.demo.d0" || strings.Join(s.Columns, ",") != "time,temp,state" || strings.Join(s.Types, ",") != "INT64,DOUBLE,INT64" {
		t.Errorf("series 0: %+v", s)
	}
	if row := q.Series[1].Rows[2]; fmt.Sprint(row) != "[1732530002000 2.5 2]" {
		t.Errorf("row: %v", row)
	}
	// limit, and CSV
	var csv bytes.Buffer
	if err := four.c.QueryTo(c, api.Query{Pattern: "root.demo.d3", Limit: 2}, "csv", &csv); err != nil {
		t.Fatal(err)
	}
	want := "device,time,name,ok,state,temp\nroot.demo.d3,1732530000000,n3,true,0,0.5\nroot.demo.d3,1732530001000,n3,false,1,1.5\n"
	if csv.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", csv.String(), want)
	}

	// delete a device's points and the digests move together
	for _, n := range []*testNode{four, one} {
		if _, err := n.c.Delete(c, api.Delete{Pattern: "root.demo.d3.**", Start: 1_732_530_000_000, End: 1_732_530_010_000}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := four.c.Digest(c, "root.demo")
	b, _ := one.c.Digest(c, "root.demo")
	if a.Digest != b.Digest || a.Points != 2000-44 {
		t.Errorf("after delete: %+v vs %+v", a, b)
	}
}

func TestJSONTablets(t *testing.T) {
	c := ctx(t)
	n := startNode(t, node.Options{Regions: 2})
	res, err := n.c.WriteTablets(c, []api.Tablet{{
		Device:  "root.plant.m1",
		Columns: []api.Column{{Name: "rpm", Type: "INT64"}, {Name: "on", Type: "BOOLEAN"}, {Name: "t", Type: "FLOAT"}},
		Times:   []int64{1, 2, 3},
		Values:  [][]any{{1, "9007199254740993", nil}, {true, false, nil}, {1.5, nil, 2}},
	}})
	if err != nil || res.Points != 6 || res.Tablets != 1 {
		t.Fatalf("write: %+v %v", res, err)
	}
	q, err := n.c.Query(c, api.Query{Pattern: "root.plant.**"})
	if err != nil || len(q.Series) != 1 || q.Points != 6 {
		t.Fatalf("query: %+v %v", q, err)
	}
	// JSON numbers keep int64 precision
	raw, _ := json.Marshal(q.Series[0].Rows[1])
	if string(raw) != "[2,false,9007199254740993,null]" {
		t.Errorf("row 1: %s", raw)
	}
	bad := []struct {
		tab   api.Tablet
		field string
	}{
		{api.Tablet{Device: "plant.m1", Columns: []api.Column{{Name: "a", Type: "INT64"}}, Times: []int64{1}, Values: [][]any{{1}}}, "tablets[0].device"},
		{api.Tablet{Device: "root.plant.m1", Columns: []api.Column{{Name: "a", Type: "INT65"}}, Times: []int64{1}, Values: [][]any{{1}}}, "tablets[0].columns[0].type"},
		{api.Tablet{Device: "root.plant.m1", Columns: []api.Column{{Name: "a", Type: "INT64"}}, Times: []int64{1, 2}, Values: [][]any{{1}}}, "tablets[0].values[0]"},
		{api.Tablet{Device: "root.plant.m1", Columns: []api.Column{{Name: "a", Type: "INT64"}}, Times: []int64{1}, Values: [][]any{{"x"}}}, "tablets[0].values[0][0]"},
		{api.Tablet{Device: "root.plant.m1", Columns: []api.Column{{Name: "a", Type: "DOUBLE"}}, Times: []int64{1}, Values: [][]any{{true}}}, "tablets[0].values[0][0]"},
	}
	for _, b := range bad {
		_, err := n.c.WriteTablets(c, []api.Tablet{b.tab})
		e, ok := client.AsError(err)
		if !ok || e.Status != http.StatusBadRequest || e.Field != b.field || !strings.HasPrefix(e.Message, b.field+": ") {
			t.Errorf("%+v: %v (want field %s)", b.tab, err, b.field)
		}
	}
	// a type conflict with what the database holds
	_, err = n.c.WriteTablets(c, []api.Tablet{{Device: "root.plant.m2", Columns: []api.Column{{Name: "rpm", Type: "DOUBLE"}}, Times: []int64{1}, Values: [][]any{{1.5}}}})
	if e, ok := client.AsError(err); !ok || e.Code != api.CodeTypeConflict || !strings.Contains(e.Message, "rpm is INT64") {
		t.Errorf("type conflict: %v", err)
	}
}

// Bad lines are reported with their numbers; the good ones are written.
func TestWriteBadLines(t *testing.T) {
	c := ctx(t)
	n := startNode(t, node.Options{Regions: 2})
	body := "root.demo.d1 a=1 1\n" +
		"root.demo.d1 a= 2\n" +
		"# comment\n" +
		"root.demo.d2 a=1i 3\n" + // type conflict with line 1
		"demo.d3 a=1 4\n" +
		"root.demo.d1 a=2,b=true 5\n"
	res, err := n.c.Write(c, strings.NewReader(body))
	e, ok := client.AsError(err)
	if !ok || e.Status != http.StatusBadRequest || e.Code != api.CodeBadLines {
		t.Fatalf("err %v", err)
	}
	if res.Points != 3 || res.Lines != 2 || len(res.LineErrors) != 3 {
		t.Fatalf("result %+v", res)
	}
	for i, want := range []string{"line 2, column 16: ", "line 4: type conflict: root.demo.d2.a is DOUBLE in root.demo, this write has INT64", "line 5, column 1: "} {
		if got := res.LineErrors[i].String(); !strings.HasPrefix(got, want) {
			t.Errorf("line error %d: %q, want prefix %q", i, got, want)
		}
	}
	if !strings.Contains(e.Message, "3 bad lines (the other 2 lines were written)") {
		t.Errorf("message %q", e.Message)
	}
	if d, _ := n.c.Digest(c, "root.demo"); d.Points != 3 {
		t.Errorf("digest %+v", d)
	}
}

func TestBadRequests(t *testing.T) {
	c := ctx(t)
	n := startNode(t, node.Options{Regions: 1, MaxBodyBytes: 1024})
	do := func(method, path, ctype, body string) *api.Error {
		t.Helper()
		req, _ := http.NewRequestWithContext(c, method, n.url+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.Error
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("%s %s: %d, body is not a JSON error: %v", method, path, resp.StatusCode, err)
		}
		e.Status = resp.StatusCode
		return &e
	}
	cases := []struct {
		method, path, ctype, body string
		status                    int
		code, field, msg          string
	}{
		{"POST", "/v1/delete", "application/json", `{"pattern":`, 400, api.CodeBadRequest, "", "malformed JSON"},
		{"POST", "/v1/delete", "application/json", `{"patern":"root.x"}`, 400, api.CodeBadRequest, "patern", "unknown field"},
		{"POST", "/v1/delete", "application/json", `{"pattern":"root.x","start":"yesterday"}`, 400, api.CodeBadRequest, "start", "is not int64"},
		{"POST", "/v1/delete", "application/json", `{"pattern":"x.y"}`, 400, api.CodeBadRequest, "pattern", "must start with"},
		{"GET", "/v1/query?pattern=root.demo.**&start=yesterday", "", "", 400, api.CodeBadRequest, "start", "neither unix milliseconds"},
		{"GET", "/v1/query", "", "", 400, api.CodeBadRequest, "pattern", "missing"},
		{"GET", "/v1/query?pattern=root.x&format=xml", "", "", 400, api.CodeBadRequest, "format", "not one of json, csv"},
		{"GET", "/v1/digest?db=root.nope", "", "", 404, api.CodeNotFound, "db", "no such database"},
		{"GET", "/v1/digest?db=nope", "", "", 400, api.CodeBadRequest, "db", "not a database name"},
		{"DELETE", "/v1/write", "", "", 405, api.CodeMethod, "", "not allowed"},
		{"GET", "/v2/anything", "", "", 404, api.CodeNotFound, "", "no route"},
		{"POST", "/v1/write", "image/png", "x", 415, api.CodeBadRequest, "Content-Type", "text/plain"},
		{"POST", "/v1/write", "text/plain", strings.Repeat("root.demo.d1 a=1 1\n", 100), 413, api.CodeTooLarge, "", "limit of 1024 bytes"},
		{"POST", "/v1/databases", "application/json", `{"name":"root.x.y"}`, 400, api.CodeBadRequest, "name", "not a database name"},
		{"POST", "/v1/pipes", "", "", 400, api.CodeBadRequest, "", "empty body"},
		{"GET", "/v1/pipes/nope", "", "", 404, api.CodeNotFound, "", "no such pipe"},
		{"POST", "/v1/pipes/nope/start", "", "", 404, api.CodeNotFound, "", "no such pipe"},
		{"DELETE", "/v1/pipes/nope", "", "", 404, api.CodeNotFound, "", "no such pipe"},
		{"POST", "/v1/sql", "", "DROP PIPE nope", 404, api.CodeNotFound, "", "no such pipe"},
		{"POST", "/v1/sql", "", "CREATE PIPE", 400, api.CodeInvalidSpec, "", "unexpected"},
	}
	for _, k := range cases {
		e := do(k.method, k.path, k.ctype, k.body)
		if e.Status != k.status || e.Code != k.code || e.Field != k.field || !strings.Contains(e.Message, k.msg) {
			t.Errorf("%s %s %.30q: got %d %s field=%q %q; want %d %s field=%q ~%q", k.method, k.path, k.body, e.Status, e.Code, e.Field, e.Message, k.status, k.code, k.field, k.msg)
		}
	}
	// a chunked body over the limit: the lines before the limit are written
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 100; i++ {
			fmt.Fprintf(pw, "root.demo.d1 a=1 %d\n", i)
		}
		pw.Close()
	}()
	res, err := n.c.Write(c, pr)
	e, ok := client.AsError(err)
	if !ok || e.Status != http.StatusRequestEntityTooLarge || res.Points == 0 || res.Points >= 100 {
		t.Errorf("chunked over the limit: %v %+v", err, res)
	}
	pr.Close()
	// the node still serves
	if err := n.c.Health(c); err != nil {
		t.Fatal(err)
	}
}

const copySpec = `name: copy
source: {plugin: hybrid, pattern: root.demo.**}
sink: {plugin: write-back, database: root.copy}
`

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (%s)", what, limit, state)
		}
		<-tick.C
	}
}

func TestPipes(t *testing.T) {
	c := ctx(t)
	n := startNode(t, node.Options{Regions: 3})
	if _, err := n.c.Write(c, strings.NewReader(lines(6, 20, 1000))); err != nil {
		t.Fatal(err)
	}
	p, err := n.c.CreatePipe(c, []byte(copySpec), client.CreateOptions{Start: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "copy" || p.State != "RUNNING" || p.Spec.Source.Params["selector.max-lag"] == "" {
		t.Fatalf("created: %+v", p)
	}
	_, err = n.c.CreatePipe(c, []byte(copySpec), client.CreateOptions{})
	if e, ok := client.AsError(err); !ok || e.Status != http.StatusConflict || e.Code != api.CodeConflict {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := n.c.CreatePipe(c, []byte(copySpec), client.CreateOptions{IfNotExists: true}); err != nil {
		t.Errorf("if not exists: %v", err)
	}
	_, err = n.c.CreatePipe(c, []byte("name: bad pipe\nsource: {plugin: wall}\nsink: {plugin: write-back}\n"), client.CreateOptions{})
	e, ok := client.AsError(err)
	if !ok || e.Code != api.CodeInvalidSpec || len(e.Problems) != 3 || e.Problems[0].Key != "name" || e.Problems[0].Line != 1 {
		t.Errorf("invalid spec: %v %+v", err, e)
	}
	waitCaughtUp(t, n, "copy", "root.demo", "root.copy")
	if _, err := n.c.Write(c, strings.NewReader(lines(6, 5, 900_000))); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, n, "copy", "root.demo", "root.copy")

	// the pipe reads the three regions of root.demo
	ps, err := n.c.Pipes(c)
	if err != nil || len(ps) != 1 || len(ps[0].Regions) != 3 || ps[0].Regions[0].Region != "root.demo/0" {
		t.Fatalf("list: %v %+v", err, ps)
	}
	// SQL
	res, err := n.c.SQL(c, "CREATE PIPE IF NOT EXISTS out WITH SOURCE ('pattern'='root.demo.d1') WITH SINK ('sink'='do-nothing')")
	if err != nil || !res.Done || res.Statement != "create-pipe" || len(res.Pipes) != 1 || res.Pipes[0].State != "CREATED" {
		t.Fatalf("sql create: %v %+v", err, res)
	}
	if res, err := n.c.SQL(c, "create pipe if not exists out with sink ('sink'='do-nothing')"); err != nil || res.Done {
		t.Errorf("sql create if not exists: %v %+v", err, res)
	}
	if res, err := n.c.SQL(c, "START PIPE out"); err != nil || res.Pipes[0].State != "RUNNING" {
		t.Errorf("sql start: %v %+v", err, res)
	}
	if res, err := n.c.SQL(c, "SHOW PIPES"); err != nil || len(res.Pipes) != 2 {
		t.Errorf("sql show: %v %+v", err, res)
	}
	if res, err := n.c.SQL(c, "STOP PIPE out"); err != nil || res.Pipes[0].State != "STOPPED" {
		t.Errorf("sql stop: %v %+v", err, res)
	}
	if res, err := n.c.SQL(c, "DROP PIPE out"); err != nil || !res.Done {
		t.Errorf("sql drop: %v %+v", err, res)
	}
	if res, err := n.c.SQL(c, "DROP PIPE IF EXISTS out"); err != nil || res.Done {
		t.Errorf("sql drop if exists: %v %+v", err, res)
	}
	if p, err := n.c.StopPipe(c, "copy"); err != nil || p.State != "STOPPED" {
		t.Errorf("stop: %v %+v", err, p)
	}
	if ok, err := n.c.DropPipe(c, "copy", false); err != nil || !ok {
		t.Errorf("drop: %v", err)
	}
	if ok, err := n.c.DropPipe(c, "copy", true); err != nil || ok {
		t.Errorf("drop if exists: %v", err)
	}
	// write-back into a database of several regions is refused, naming why
	if _, err := n.c.CreateDatabase(c, "root.wide", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.CreateDatabase(c, "root.wide", 3); err == nil {
		t.Error("a database re-created with another number of regions")
	}
	if _, err := n.c.CreatePipe(c, []byte("name: wide\nsource: {pattern: root.demo.**}\nsink: {plugin: write-back, database: root.wide}\n"), client.CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "write-back error shown", 20*time.Second, func() (bool, string) {
		p, err := n.c.Pipe(c, "wide")
		return err == nil && strings.Contains(p.LastError, "needs one"), p.LastError
	})
}

// waitCaughtUp waits until a pipe has no lag and the copy's digest equals the source's.
func waitCaughtUp(t *testing.T, n *testNode, pipeName, src, dst string) {
	t.Helper()
	c := ctx(t)
	waitFor(t, pipeName+" caught up", 30*time.Second, func() (bool, string) {
		p, err := n.c.Pipe(c, pipeName)
		if err != nil {
			return false, err.Error()
		}
		a, err1 := n.c.Digest(c, src)
		b, err2 := n.c.Digest(c, dst)
		ok := err1 == nil && err2 == nil && p.LagEvents == 0 && p.InFlightEvents == 0 && a.Digest == b.Digest
		return ok, fmt.Sprintf("lag %d, last error %q, digests %v %v %v %v", p.LagEvents, p.LastError, a, b, err1, err2)
	})
}

func TestMetricsAndStatus(t *testing.T) {
	c := ctx(t)
	n := startNode(t, node.Options{Regions: 2})
	if _, err := n.c.Write(c, strings.NewReader(lines(3, 3, 0))); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.CreatePipe(c, []byte("name: nop\nsource: {pattern: root.demo.**}\nsink: do-nothing\n"), client.CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
	m, err := n.c.Metrics(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`weir_write_points_total{format="line"} 36`,
		`weir_http_requests_total{code="200",route="/v1/write"} 1`,
		`weir_region_points_total{database="root.demo",region="root.demo/0"}`,
		`weir_region_wal_bytes{database="root.demo",region="root.demo/1"}`,
		`weir_pipe_state{pipe="nop",state="RUNNING"} 1`,
		`weir_pipe_lag_events{pipe="nop",region="root.demo/0"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	st, err := n.c.Status(c)
	if err != nil || st.ID != 1 || len(st.Databases) != 1 || st.Databases[0].Regions != 2 || st.Pipes != 1 {
		t.Errorf("status %v %+v", err, st)
	}
}

// A node reopened on its directory has its databases, data, origins and pipes.
func TestReopen(t *testing.T) {
	c := ctx(t)
	dir := t.TempDir()
	n := startNode(t, node.Options{DataDir: dir, Regions: 2})
	if _, err := n.c.Write(c, strings.NewReader(lines(4, 4, 0))); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.CreatePipe(c, []byte(copySpec), client.CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, n, "copy", "root.demo", "root.copy")
	before, _ := n.c.Digest(c, "root.demo")
	regs, _ := n.c.Regions(c, "")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Open(node.Options{ID: 2, DataDir: dir}); err == nil || !strings.Contains(err.Error(), "belongs to node 1") {
		t.Errorf("another id on the directory: %v", err)
	}
	m := startNode(t, node.Options{DataDir: dir, Regions: 5})
	after, err := m.c.Digest(c, "root.demo")
	if err != nil || after.Digest != before.Digest || len(after.Regions) != 2 {
		t.Fatalf("after reopen: %v %+v (before %+v)", err, after, before)
	}
	regs2, _ := m.c.Regions(c, "")
	for i := range regs {
		if regs[i].Origin != regs2[i].Origin {
			t.Errorf("origin of %s changed: %d → %d", regs[i].Region, regs[i].Origin, regs2[i].Origin)
		}
	}
	p, err := m.c.Pipe(c, "copy")
	if err != nil || p.State != "RUNNING" {
		t.Fatalf("pipe after reopen: %v %+v", err, p)
	}
	if _, err := m.c.Write(c, strings.NewReader(lines(4, 2, 500_000))); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, m, "copy", "root.demo", "root.copy")
	// a new database gets new origins
	if _, err := m.c.CreateDatabase(c, "root.other", 0); err != nil {
		t.Fatal(err)
	}
	regs3, _ := m.c.Regions(c, "root.other")
	if len(regs3) != 5 {
		t.Fatalf("root.other: %+v", regs3)
	}
	for _, r := range regs3 {
		for _, o := range regs2 {
			if r.Origin == o.Origin {
				t.Errorf("origin %d reused", r.Origin)
			}
		}
	}

}
