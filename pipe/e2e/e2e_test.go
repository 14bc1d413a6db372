// Package e2e_test runs whole pipes (manager, task, extractor, write-back) against real
// regions: exactly the written data must arrive, across faults, restarts and kills.
package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/connector/builtin"
	"github.com/weir-dev/weir/pipe/connector/writeback"
	_ "github.com/weir-dev/weir/pipe/extractor"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		child()
		return
	}
	goleak.VerifyTestMain(m)
}

// flaky wraps write-back with latency spikes and errors, controlled by the test.
type flaky struct {
	writeback.Connector
	sends atomic.Int64
}

var (
	flakyErrEvery atomic.Int64 // fail every n-th send (0: never)
	flakyDelay    atomic.Int64 // delay of every send, in µs
	flakySpike    atomic.Int64 // a 20 ms spike every n-th send (0: never)
)

func (f *flaky) Send(ctx context.Context, batch []*pipe.Event) error {
	n := f.sends.Add(1)
	if d := flakyDelay.Load(); d > 0 {
		time.Sleep(time.Duration(d) * time.Microsecond)
	}
	if k := flakySpike.Load(); k > 0 && n%k == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if k := flakyErrEvery.Load(); k > 0 && n%k == 0 {
		return errors.New("injected send failure")
	}
	return f.Connector.Send(ctx, batch)
}

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{Name: "test-flaky", Doc: "write-back with injected faults",
		Params: append([]pipe.ParamSpec{{Key: "database", Type: pipe.String, Required: true}}, pipe.SinkRuntimeParams...)},
		func() pipe.Connector { return &flaky{} })
}

type cluster struct {
	dir      string
	src, dst *engine.Region
	mgr      *pipe.Manager
}

func open(t testing.TB, dir string, memsize int64) *cluster {
	src, dst, mgr := pipetest.OpenCopy(t, dir, wal.Sync, memsize)
	return &cluster{dir: dir, src: src, dst: dst, mgr: mgr}
}

func (c *cluster) close() {
	c.mgr.Close()
	c.src.Close()
	c.dst.Close()
}

const spec = `
name: copy
source: {plugin: hybrid, pattern: root.src.**, selector.max-pending-events: 20, selector.resume-ratio: 0.2}
sink: {plugin: test-flaky, database: root.dst, batch.max-events: 8}
`

func createPipe(t testing.TB, m *pipe.Manager) {
	pipetest.CreatePipe(t, m, spec, true)
}

var cols = []tsfile.Column{{Name: "a", Type: tsfile.Int64}, {Name: "b", Type: tsfile.Text}}

// randomOps writes, overwrites and deletes at random, with flushes.
func randomOps(t testing.TB, r *engine.Region, rng *rand.Rand, n int) {
	for i := 0; i < n; i++ {
		switch k := rng.Intn(20); {
		case k < 17:
			dev := fmt.Sprintf("root.src.d%d", rng.Intn(4))
			b := tsfile.NewTabletBuilder(nil, dev, cols)
			for j, rows := 0, 1+rng.Intn(20); j < rows; j++ {
				var bv any
				if rng.Intn(3) > 0 {
					bv = fmt.Sprint(rng.Intn(100))
				}
				_ = b.AppendRow(int64(rng.Intn(500)), int64(rng.Intn(1000)), bv)
			}
			pipetest.WriteTablet(t, r, b)
		case k < 19:
			pat := []string{"root.src.d1", "root.src.**", "root.src.*.a", "root.src.d2.b"}[rng.Intn(4)]
			lo := int64(rng.Intn(500))
			if _, err := r.Delete(tsfile.MustPattern(pat), lo, lo+int64(rng.Intn(50))); err != nil {
				t.Fatal(err)
			}
		default:
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// waitEqual waits (bounded) until the pipe has committed everything and the digests are equal.
func waitEqual(t testing.TB, c *cluster) pipe.Status {
	t.Helper()
	return pipetest.WaitEqual(t, c.mgr, "copy", c.src, c.dst)
}

func TestExactlyTheWrittenDataArrives(t *testing.T) {
	flakyErrEvery.Store(7)
	flakySpike.Store(5)
	defer func() { flakyErrEvery.Store(0); flakySpike.Store(0) }()
	c := open(t, t.TempDir(), 16<<10)
	defer c.close()
	createPipe(t, c.mgr)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	randomOps(t, c.src, rng, 300)
	flakyErrEvery.Store(0)
	st := waitEqual(t, c)
	if st.Retries == 0 {
		t.Errorf("injected failures were not retried: %+v", st)
	}
	t.Logf("switches %d, retries %d, committed %d", st.Switches, st.Retries, st.CommittedEvents)
}

func TestRestartMidwayResumes(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 16<<10)
	createPipe(t, c.mgr)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	randomOps(t, c.src, rng, 150)
	if err := c.mgr.Stop("copy"); err != nil {
		t.Fatal(err)
	}
	randomOps(t, c.src, rng, 100)
	if err := c.mgr.Start("copy"); err != nil {
		t.Fatal(err)
	}
	randomOps(t, c.src, rng, 50)
	c.close()
	// a whole restart: regions and the manager reopen; the RUNNING pipe resumes
	c = open(t, dir, 16<<10)
	defer c.close()
	randomOps(t, c.src, rng, 100)
	waitEqual(t, c)
}

// TestSlowSinkDegradesThenReturns: with a slow sink the pipe switches to files while writes
// go on, and the WAL it holds back stays bounded; when the sink speeds up it returns to tablets.
func TestSlowSinkDegradesThenReturns(t *testing.T) {
	c := open(t, t.TempDir(), 32<<10)
	defer c.close()
	flakyDelay.Store(3000) // 3 ms a batch
	defer flakyDelay.Store(0)
	createPipe(t, c.mgr)
	rng := rand.New(rand.NewSource(1))
	var st pipe.Status
	maxPinned := int64(0)
	for i := 0; i < 400; i++ {
		randomOps(t, c.src, rng, 5)
		st, _ = c.mgr.Describe("copy")
		maxPinned = max(maxPinned, st.PinnedWALBytes)
		if st.Switches >= 1 && len(st.Regions) > 0 && st.Regions[0].Carrier == "tsfile" {
			break
		}
	}
	if st.Switches < 1 {
		t.Fatalf("slow sink never degraded to files: %+v", st)
	}
	// in file mode the pipe holds no WAL while writes go on
	randomOps(t, c.src, rng, 20)
	if st, _ = c.mgr.Describe("copy"); st.Regions[0].Carrier == "tsfile" && st.PinnedWALBytes != 0 {
		t.Fatalf("file mode still pins %d WAL bytes", st.PinnedWALBytes)
	}
	flakyDelay.Store(0)
	if err := c.src.Flush(); err != nil {
		t.Fatal(err)
	}
	st = waitEqual(t, c)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !(len(st.Regions) > 0 && st.Regions[0].Carrier == "tablet") {
		randomOps(t, c.src, rng, 1)
		time.Sleep(5 * time.Millisecond)
		st, _ = c.mgr.Describe("copy")
	}
	if st.Regions[0].Carrier != "tablet" || st.Switches < 2 {
		t.Fatalf("did not return to tablets: %+v", st.Regions[0])
	}
	t.Logf("switches %d, max WAL held %d bytes, last: %s", st.Switches, maxPinned, st.Regions[0].LastSwitch)
	waitEqual(t, c)
}

// TestWALKeptWhileSinkDown: a wal source keeps the WAL from its durable position while its
// sink fails and the task backs off (IoTConsensus keeps the WAL until the follower has it).
func TestWALKeptWhileSinkDown(t *testing.T) {
	c := open(t, t.TempDir(), 1<<30)
	defer c.close()
	flakyErrEvery.Store(1) // every send fails
	defer flakyErrEvery.Store(0)
	pipetest.CreatePipe(t, c.mgr, "name: copy\nsource: {plugin: wal}\nsink: {plugin: test-flaky, database: root.dst}\n", false)
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 50; i++ {
		randomOps(t, c.src, rng, 1)
	}
	if err := c.src.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := c.mgr.Describe("copy")
		if st.Retries > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w, _ := c.src.PinnedBytes(); w == 0 {
		t.Fatal("the WAL was released while the sink was down")
	}
	flakyErrEvery.Store(0)
	waitEqual(t, c)
}
