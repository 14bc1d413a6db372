package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/processor" // the do-nothing processor
	"github.com/weir-dev/weir/tsfile"
)

// listSource emits the events of listEvents, then ends.
type listSource struct{ evs []*pipe.Event }

var listEvents func() []*pipe.Event

func init() {
	pipe.RegisterExtractor(pipe.PluginInfo{Name: "builtin-test-list"}, func() pipe.Extractor { return &listSource{} })
}

func (s *listSource) Open(context.Context, *pipe.Env) error { s.evs = listEvents(); return nil }
func (s *listSource) Next(context.Context) (*pipe.Event, error) {
	if len(s.evs) == 0 {
		return nil, io.EOF
	}
	e := s.evs[0]
	s.evs = s.evs[1:]
	return e, nil
}
func (s *listSource) Committed(*pipe.Event) []byte { return nil }
func (s *listSource) Status() pipe.ExtractorStatus { return pipe.ExtractorStatus{} }
func (s *listSource) Close() error                 { return nil }

func testEvents(t *testing.T) []*pipe.Event {
	b := tsfile.NewTabletBuilder(nil, "root.sg.d1", []tsfile.Column{{Name: "temp", Type: tsfile.Double}, {Name: "state", Type: tsfile.Text}})
	defer b.Release()
	if err := b.AppendRow(1000, 21.5, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendRow(2000, nil, "hot"); err != nil {
		t.Fatal(err)
	}
	tab, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return []*pipe.Event{
		{Kind: pipe.KindTablet, Tablet: tab, Progress: pipe.ProgressIndex{1: 7}, MaxIndex: 7},
		{Kind: pipe.KindDeletion, Deletion: &engine.Deletion{Pattern: tsfile.MustPattern("root.sg.**"), MinTime: 0, MaxTime: 500}, Progress: pipe.ProgressIndex{1: 8}},
		{Kind: pipe.KindTsFile, File: &pipe.FileRef{Path: "/data/r1/00000000000000000003.tsfile", Info: engine.FileInfo{Name: "00000000000000000003.tsfile", Rows: 10, Points: 20, Size: 4096}}, Progress: pipe.ProgressIndex{1: 9}},
	}
}

func runPipe(t *testing.T, sink string, params map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	WriterMu.Lock()
	old := Writer
	Writer = &buf
	WriterMu.Unlock()
	defer func() { WriterMu.Lock(); Writer = old; WriterMu.Unlock() }()
	listEvents = func() []*pipe.Event { return testEvents(t) }
	spec, err := (&pipe.Spec{Name: "p", Source: pipe.PluginSpec{Plugin: "builtin-test-list"},
		Processors: []pipe.PluginSpec{{Plugin: "do-nothing"}}, Sink: pipe.PluginSpec{Plugin: sink, Params: params}}).Normalize()
	if err != nil {
		t.Fatal(err)
	}
	store, err := pipe.NewStore(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	task := pipe.NewTask(pipe.TaskOptions{Pipe: "p", Spec: spec, RegionName: "r1", Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := task.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := task.Status(); st.CommittedEvents != 3 {
		t.Fatalf("committed %d of 3", st.CommittedEvents)
	}
	return buf.String()
}

func TestStdoutJSON(t *testing.T) {
	out := runPipe(t, "stdout", map[string]string{"batch.max-events": "2"})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{
		`{"kind":"tablet","commit_id":1,"region":"r1","progress":"1:7","device":"root.sg.d1","rows":[{"time":1000,"temp":21.5,"state":"ok"},{"time":2000,"state":"hot"}]}`,
		`{"kind":"deletion","commit_id":2,"region":"r1","progress":"1:8","pattern":"root.sg.**","min_time":0,"max_time":500}`,
		`{"kind":"tsfile","commit_id":3,"region":"r1","progress":"1:9","file":"/data/r1/00000000000000000003.tsfile","info":{"name":"00000000000000000003.tsfile","size":4096,"crc32c":0,"version":0,"epoch":0,"min_index":0,"max_index":0,"min_time":0,"max_time":0,"rows":10,"points":20}}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
		if !json.Valid([]byte(lines[i])) {
			t.Errorf("line %d is not JSON", i)
		}
	}
}

func TestStdoutSummaryAndDoNothing(t *testing.T) {
	out := runPipe(t, "stdout", map[string]string{"format": "summary"})
	want := "tablet commit=1 region=r1 progress=1:7 device=root.sg.d1 rows=2 points=3\n" +
		"deletion commit=2 region=r1 progress=1:8 pattern=root.sg.** min_time=0 max_time=500\n" +
		"tsfile commit=3 region=r1 progress=1:9 file=/data/r1/00000000000000000003.tsfile rows=10 points=20 bytes=4096\n"
	if out != want {
		t.Fatalf("summary:\n%s\nwant:\n%s", out, want)
	}
	if out := runPipe(t, "do-nothing", nil); out != "" {
		t.Fatalf("do-nothing wrote %q", out)
	}
	if _, err := (&pipe.Spec{Name: "p", Source: pipe.PluginSpec{Plugin: "builtin-test-list"},
		Sink: pipe.PluginSpec{Plugin: "stdout", Params: map[string]string{"format": "xml"}}}).Normalize(); err == nil {
		t.Fatal("format xml accepted")
	}
}
