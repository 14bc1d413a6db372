package processor_test

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/connector/writeback"
	_ "github.com/weir-dev/weir/pipe/extractor"
	"github.com/weir-dev/weir/pipe/pipetest"
	_ "github.com/weir-dev/weir/pipe/processor"
	"github.com/weir-dev/weir/tsfile"
)

// slowWriteBack is write-back with a little latency per batch, so that a backlog builds up
// and the hybrid source switches to files and back.
type slowWriteBack struct{ writeback.Connector }

func (s *slowWriteBack) Send(ctx context.Context, batch []*pipe.Event) error {
	time.Sleep(300 * time.Microsecond) // load, not synchronisation
	return s.Connector.Send(ctx, batch)
}

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{Name: "test-slow-write-back", Doc: "write-back with latency",
		Params: append([]pipe.ParamSpec{{Key: "database", Type: pipe.String, Required: true}}, pipe.SinkRuntimeParams...)},
		func() pipe.Connector { return &slowWriteBack{} })
}

type cluster struct {
	src, dst *engine.Region
	mgr      *pipe.Manager
}

func openCluster(t *testing.T, dir string) *cluster {
	t.Helper()
	src, dst, mgr := pipetest.OpenCopy(t, dir, wal.Async, 8<<10)
	return &cluster{src: src, dst: dst, mgr: mgr}
}

func (c *cluster) close() {
	c.mgr.Close()
	c.src.Close()
	c.dst.Close()
}

// scan lists a region's points as "device measurement time value" lines, sorted.
func scan(t *testing.T, r *engine.Region) []string {
	t.Helper()
	var out []string
	err := r.Scan(engine.Query{}, func(device string, rec arrow.Record) error {
		tb := tsfile.NewTablet(device, rec)
		ts := tb.Times()
		for c, col := range tb.Columns() {
			for i := range ts {
				if v := tsfile.Value(rec.Column(c+1), i); v != nil {
					out = append(out, fmt.Sprintf("%s %s %d %v", device, col.Name, ts[i], v))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// waitFor polls (bounded) until dst holds want and the pipe has nothing in flight.
func waitFor(t *testing.T, c *cluster, name string, want []string) pipe.Status {
	t.Helper()
	var got []string
	st, ok := pipetest.WaitStatus(t, c.mgr, name, time.Minute, func(st pipe.Status) bool {
		if !pipetest.CaughtUp(st) {
			return false
		}
		got = scan(t, c.dst)
		return strings.Join(got, "\n") == strings.Join(want, "\n")
	})
	if !ok {
		t.Fatalf("pipe %s did not deliver the expected data (status %+v):\n%s", name, st, diff(got, want))
	}
	return st
}

func diff(got, want []string) string {
	g, w := map[string]bool{}, map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	for _, s := range want {
		w[s] = true
	}
	var b strings.Builder
	n := 0
	for _, s := range want {
		if !g[s] && n < 20 {
			fmt.Fprintf(&b, "missing %s\n", s)
			n++
		}
	}
	for _, s := range got {
		if !w[s] && n < 40 {
			fmt.Fprintf(&b, "extra   %s\n", s)
			n++
		}
	}
	return fmt.Sprintf("%d lines, want %d\n%s", len(got), len(want), b.String())
}

var cols = []tsfile.Column{{Name: "v", Type: tsfile.Int64}}

// writer writes increasing times per device, values small integers, and remembers them.
type writer struct {
	rng  *rand.Rand
	next map[string]int64
	all  map[string][][2]int64 // device → (time, value)
}

func (w *writer) write(t *testing.T, r *engine.Region, n int) {
	for i := 0; i < n; i++ {
		dev := fmt.Sprintf("root.src.d%d", w.rng.Intn(3))
		b := tsfile.NewTabletBuilder(nil, dev, cols)
		for j, rows := 0, 1+w.rng.Intn(12); j < rows; j++ {
			w.next[dev] += int64(1 + w.rng.Intn(4))
			v := int64(w.rng.Intn(100))
			_ = b.AppendRow(w.next[dev], v)
			w.all[dev] = append(w.all[dev], [2]int64{w.next[dev], v})
		}
		pipetest.WriteTablet(t, r, b)
		if w.rng.Intn(25) == 0 {
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// closedWindows computes count, sum, min and max per 10-step window of each device,
// for the windows the device's latest point closed.
func (w *writer) closedWindows() []string {
	var out []string
	for dev, pts := range w.all {
		frontier := pts[len(pts)-1][0] / 10 * 10
		type acc struct{ n, sum, lo, hi int64 }
		wins := map[int64]*acc{}
		for _, p := range pts {
			s := p[0] / 10 * 10
			if s+10 > frontier {
				continue
			}
			a := wins[s]
			if a == nil {
				a = &acc{lo: p[1], hi: p[1]}
				wins[s] = a
			}
			a.n++
			a.sum += p[1]
			a.lo, a.hi = min(a.lo, p[1]), max(a.hi, p[1])
		}
		d := "root.dst" + strings.TrimPrefix(dev, "root.src")
		for s, a := range wins {
			out = append(out,
				fmt.Sprintf("%s v_count %d %d", d, s, a.n),
				fmt.Sprintf("%s v_sum %d %v", d, s, float64(a.sum)),
				fmt.Sprintf("%s v_min %d %d", d, s, a.lo),
				fmt.Sprintf("%s v_max %d %d", d, s, a.hi))
		}
	}
	sort.Strings(out)
	return out
}

const aggSpec = `
name: agg
source: {plugin: hybrid, pattern: root.src.**, selector.max-pending-events: 20, selector.resume-ratio: 0.2}
processors:
  - {plugin: aggregate, functions: "count,sum,min,max", interval: 10ms}
sink: {plugin: test-slow-write-back, database: root.dst, batch.max-events: 8}
`

// A real pipe (hybrid source, carrier switches, write-back) through the aggregate, stopped
// and restarted, then the whole node restarted: the target holds exactly the aggregates of
// the closed windows, none lost and none counted twice.
func TestAggregatePipeSurvivesRestarts(t *testing.T) {
	dir := t.TempDir()
	c := openCluster(t, dir)
	pipetest.CreatePipe(t, c.mgr, aggSpec, false)
	w := &writer{rng: rand.New(rand.NewSource(time.Now().UnixNano())), next: map[string]int64{}, all: map[string][][2]int64{}}
	w.write(t, c.src, 150)
	if err := c.mgr.Stop("agg"); err != nil {
		t.Fatal(err)
	}
	w.write(t, c.src, 100)
	if err := c.mgr.Start("agg"); err != nil {
		t.Fatal(err)
	}
	w.write(t, c.src, 50)
	c.close()
	c = openCluster(t, dir) // the RUNNING pipe resumes from its checkpoint
	defer c.close()
	w.write(t, c.src, 100)
	st := waitFor(t, c, "agg", w.closedWindows())
	t.Logf("switches %d, retries %d, committed %d", st.Switches, st.Retries, st.CommittedEvents)
}

// panicky panics on the first tablet it sees.
type panicky struct{}

func (panicky) Open(context.Context, *pipe.Env) error { return nil }
func (panicky) Close() error                          { return nil }
func (panicky) Process(_ context.Context, e *pipe.Event, emit func(*pipe.Event)) error {
	if e.Kind == pipe.KindTablet {
		panic("units table is empty")
	}
	emit(e)
	return nil
}

func init() {
	pipe.RegisterProcessor(pipe.PluginInfo{Name: "test-panicky"}, func() pipe.Processor { return panicky{} })
}

// A processor that panics fails its pipe with the panic's message and stack in the
// status; the process goes on.
func TestProcessorPanicFailsThePipe(t *testing.T) {
	c := openCluster(t, t.TempDir())
	defer c.close()
	pipetest.CreatePipe(t, c.mgr, "name: p\nsource: {plugin: wal, pattern: root.src.**}\nprocessors: [test-panicky]\nsink: {plugin: test-slow-write-back, database: root.dst}\n", false)
	w := &writer{rng: rand.New(rand.NewSource(1)), next: map[string]int64{}, all: map[string][][2]int64{}}
	w.write(t, c.src, 1)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := c.mgr.Describe("p")
		if e := st.LastError; e != "" {
			if !strings.Contains(e, "processor test-panicky[0] Process panicked: units table is empty") || !strings.Contains(e, "goroutine") {
				t.Fatalf("last error: %s", e)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the panic did not show in the pipe's status")
}
