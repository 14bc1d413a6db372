package kafka

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// The child process of TestPipeKilled: its node's directory and the parent's broker.
const (
	childDirEnv    = "WEIR_KAFKA_CHILD_DIR"
	childBrokerEnv = "WEIR_KAFKA_CHILD_BROKER"
)

func init() {
	if dir := os.Getenv(childDirEnv); dir != "" {
		killedChild(dir, os.Getenv(childBrokerEnv))
	}
}

// openSyncedNode opens the node of TestPipeKilled: every write is synced before it is
// acknowledged (what a SIGKILL keeps is then what the pipe may have read), and memtables
// are small, so that they flush as the child writes.
func openSyncedNode(t testing.TB, dir string) *node {
	t.Helper()
	src := pipetest.OpenRegion(t, engine.Options{Dir: filepath.Join(dir, "src"), Name: "src", Origin: 1,
		Durability: wal.Sync, FlushAge: -1, MemtableSize: 64 << 10})
	mgr, err := pipe.NewManager(pipetest.ManagerOptions(filepath.Join(dir, "pipes"), src))
	if err != nil {
		src.Close()
		t.Fatal(err)
	}
	return &node{dir: dir, src: src, mgr: mgr}
}

// killedChild writes forever into a region exported exactly once to the broker at addr by
// a hybrid pipe (tablets, degrading to files and back), printing "op N" after each write;
// its parent kills it.
func killedChild(dir, addr string) {
	t := pipetest.FatalT{}
	n := openSyncedNode(t, dir)
	pipetest.CreatePipe(t, n.mgr, fmt.Sprintf(`
name: export
source: {plugin: hybrid, pattern: root.src.**, selector.max-pending-events: 12, selector.resume-ratio: 0.2}
sink: {plugin: kafka, brokers: "%s", delivery: exactly-once, topic: "x.{database}", batch.max-events: 4, batch.linger: 1ms, timeout: 10s, transaction.timeout: 10s}
`, addr), true)
	next := nextTimes(t, n.src) // each device's time line goes on after the previous runs' rows
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; ; i++ {
		writeRows(t, n.src, rng, next, 3)
		fmt.Printf("op %d\n", i)
	}
}

// nextTimes returns, for each device of r, the time after its last row.
func nextTimes(t testing.TB, r *engine.Region) map[string]int64 {
	next := map[string]int64{}
	err := r.Scan(engine.Query{Pattern: tsfile.MustPattern("root.src.**")}, func(dev string, rec arrow.Record) error {
		times := rec.Column(0).(*array.Int64)
		for i := 0; i < times.Len(); i++ {
			next[dev] = max(next[dev], times.Value(i)+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// TestPipeKilled kills a process exporting exactly once to Kafka with SIGKILL at random
// moments (mid-transaction, mid-flush, mid-carrier-switch), four times, each next run
// resuming the pipe from its durable progress and fencing the killed run's transaction;
// in the end a read_committed consumer sees every point of the source exactly once.
func TestPipeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	_, addr := broker(t)
	dir := t.TempDir()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	for run := 0; run < 4; run++ {
		stderr, err := pipetest.KillAtOp(t, 5+rng.Intn(60), 60*time.Second, childDirEnv+"="+dir, childBrokerEnv+"="+addr)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("run %d: child ended with %v: %s", run, err, stderr)
		}
	}
	n := openSyncedNode(t, dir)
	defer n.close()
	if err := n.mgr.Start("export"); err != nil && !strings.Contains(err.Error(), "running") {
		t.Fatal(err)
	}
	st := pipetest.WaitCommitted(t, n.mgr, "export")
	want := sourceDigest(t, n.src)
	if want.Points == 0 {
		t.Fatal("no points written")
	}
	recs := consume(t, addr, "x.root.src")
	if got := digestJSON(t, recs); got != want {
		t.Fatalf("after 4 kills: consumed %+v, source %+v", got, want)
	}
	t.Logf("%d points in %d records after 4 kills, %d carrier switches in the last run", want.Points, len(recs), st.Switches)
}
