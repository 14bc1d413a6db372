package kafka

import (
	"errors"
	"fmt"
	"math/rand"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/extractor"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// node is a source region and a pipe manager over it, reopenable on the same directory.
type node struct {
	dir string
	src *engine.Region
	mgr *pipe.Manager
}

// openNode opens the node; with flush false the memtable never fills (no automatic flush).
func openNode(t testing.TB, dir string, flush bool) *node {
	t.Helper()
	src := pipetest.OpenRegion(t, engine.Options{Dir: filepath.Join(dir, "src"), Name: "src", Origin: 1,
		Durability: wal.Batch, FlushAge: -1, MemtableSize: map[bool]int64{true: 64 << 10, false: 1 << 30}[flush]})
	mgr, err := pipe.NewManager(pipetest.ManagerOptions(filepath.Join(dir, "pipes"), src))
	if err != nil {
		src.Close()
		t.Fatal(err)
	}
	return &node{dir: dir, src: src, mgr: mgr}
}

func (n *node) close() {
	n.mgr.Close()
	n.src.Close()
}

// faults fails sends at random steps (before the transaction's records are all produced,
// after its flush, after its commit but before the ack) with the given probability.
type faults struct {
	mu   sync.Mutex
	rng  *rand.Rand
	p    float64
	hits map[string]int
}

func (f *faults) install(t testing.TB) {
	h := func(step string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.hits["calls:"+step]++
		if f.rng.Float64() < f.p {
			f.hits[step]++
			return errors.New("injected crash at " + step)
		}
		return nil
	}
	testHook.Store(&h)
	t.Cleanup(func() { testHook.Store(nil) })
}

func (f *faults) set(p float64) {
	f.mu.Lock()
	f.p = p
	f.mu.Unlock()
}

var rowCols = []tsfile.Column{{Name: "v", Type: tsfile.Double}, {Name: "n", Type: tsfile.Int64}, {Name: "s", Type: tsfile.Text}}

// writeRows writes tablets of fresh (device, time) rows: no overwrites, so every written
// point is a live point and counts compare exactly.
func writeRows(t testing.TB, r *engine.Region, rng *rand.Rand, next map[string]int64, tablets int) {
	for i := 0; i < tablets; i++ {
		dev := fmt.Sprintf("root.src.d%d", rng.Intn(5))
		b := tsfile.NewTabletBuilder(nil, dev, rowCols)
		for j, rows := 0, 1+rng.Intn(30); j < rows; j++ {
			ts := next[dev]
			next[dev]++
			var s any
			if rng.Intn(4) > 0 {
				s = fmt.Sprintf("s%d", rng.Intn(1000))
			}
			if err := b.AppendRow(ts, rng.Float64(), int64(rng.Intn(1<<20)), s); err != nil {
				t.Fatal(err)
			}
		}
		pipetest.WriteTablet(t, r, b)
	}
}

func sourceDigest(t testing.TB, r *engine.Region) digest {
	var d digest
	err := r.Scan(engine.Query{Pattern: tsfile.MustPattern("root.src.**")}, func(dev string, rec arrow.Record) error {
		d.addRecord(dev, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPipeExactlyOnceUnderCrashes runs whole pipes into the kafka sink while sends crash
// at random steps (records produced but not committed, flushed but not committed,
// committed but not acknowledged), the pipe is stopped and started, the region flushes and
// the whole node restarts; a read_committed consumer then sees every written point
// exactly once. With flushes, a wal source resuming after its WAL was flushed away ships
// the memtable's file, and a hybrid source switches carriers: files whose memtable was
// partly exported as tablets, whose repeated rows the sink drops.
func TestPipeExactlyOnceUnderCrashes(t *testing.T) {
	for _, tc := range []struct {
		name, source string
		flush        bool
	}{
		{"wal", "wal", false},
		{"wal-flushed", "wal", true},
		{"tsfile", "tsfile", true},
		{"hybrid", "hybrid", true},
	} {
		t.Run(tc.name, func(t *testing.T) { runPipeUnderCrashes(t, tc.source, ExactlyOnce, tc.flush) })
	}
}

// TestPipeAtLeastOnceUnderCrashes: the same faults with at-least-once delivery lose nothing.
func TestPipeAtLeastOnceUnderCrashes(t *testing.T) {
	runPipeUnderCrashes(t, "wal", AtLeastOnce, true)
}

// startCrashRun starts what a run under crashes needs: a broker (its address), the run's
// random source (its seed logged), faults installed with probability 0.2, a node in dir, and
// the pipe "export" from root.src.** to the topic x.root.src, started.
func startCrashRun(t *testing.T, source, delivery string, flush bool) (addr string, rng *rand.Rand, f *faults, dir string, n *node) {
	t.Helper()
	_, addr = broker(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng = rand.New(rand.NewSource(seed))
	f = &faults{rng: rand.New(rand.NewSource(seed + 1)), p: 0.2, hits: map[string]int{}}
	f.install(t)
	dir = t.TempDir()
	n = openNode(t, dir, flush)
	extra := ""
	if source == "hybrid" {
		extra = ", selector.max-pending-events: 12, selector.resume-ratio: 0.2"
	}
	pipetest.CreatePipe(t, n.mgr, fmt.Sprintf(`
name: export
source: {plugin: %s, pattern: root.src.**%s}
sink: {plugin: kafka, brokers: "%s", delivery: %s, topic: "x.{database}", batch.max-events: 4, batch.linger: 1ms, timeout: 10s, transaction.timeout: 10s}
`, source, extra, addr, delivery), true)
	return addr, rng, f, dir, n
}

func runPipeUnderCrashes(t *testing.T, source, delivery string, flush bool) {
	addr, rng, f, dir, n := startCrashRun(t, source, delivery, flush)
	exact := delivery == ExactlyOnce
	next := map[string]int64{}
	retries := int64(0)
	for round := 0; round < 8; round++ {
		writeRows(t, n.src, rng, next, 15)
		if flush {
			if err := n.src.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		switch rng.Intn(3) {
		case 0: // the pipe catches up (through the faults)
			retries += pipetest.WaitCommitted(t, n.mgr, "export").Retries
		case 1:
			if err := n.mgr.Stop("export"); err != nil {
				t.Fatal(err)
			}
			writeRows(t, n.src, rng, next, 5)
			if err := n.mgr.Start("export"); err != nil {
				t.Fatal(err)
			}
		}
		if round == 4 && flush { // the whole node restarts (a region flushes what it replays); the pipe resumes from its durable progress
			n.close()
			n = openNode(t, dir, flush)
		}
	}
	f.set(0)
	if flush {
		if err := n.src.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	st := pipetest.WaitCommitted(t, n.mgr, "export")
	retries += st.Retries
	want := sourceDigest(t, n.src)
	n.close()
	recs := consume(t, addr, "x.root.src")
	t.Logf("%s %s: %d points, %d records, %d retries, %d carrier switches, faults %v", source, delivery, want.Points, len(recs), retries, st.Switches, f.hits)
	checkConsumed(t, recs, want, exact)
}

// checkConsumed checks the records a read_committed consumer read against the source's
// digest: with exact, every point exactly once (else it logs some repeated rows); without,
// every point at least once.
func checkConsumed(t *testing.T, recs []*kgo.Record, want digest, exact bool) {
	t.Helper()
	got := digestJSON(t, recs)
	if exact {
		if got != want {
			dups := map[uint64][]string{}
			for _, r := range recs {
				var one digest
				one.addJSON(t, r.Value)
				dups[one.Sum] = append(dups[one.Sum], fmt.Sprintf("%s p%d o%d %s", r.Value, r.Partition, r.Offset, header(r, HeaderProgress)))
			}
			shown := 0
			for _, v := range dups {
				if len(v) > 1 && shown < 4 {
					shown++
					t.Logf("dup: %q", v)
				}
			}
			t.Fatalf("consumed %+v, source %+v", got, want)
		}
		return
	}
	// at-least-once: every point is there, possibly more than once
	var distinct digest
	seen := map[uint64]bool{}
	for _, r := range recs {
		var one digest
		one.addJSON(t, r.Value)
		if !seen[one.Sum] { // rows are unique by (device, time): a row's sum names it
			seen[one.Sum] = true
			distinct.add2(one)
		}
	}
	if distinct != want || got.Points < want.Points {
		t.Fatalf("consumed %+v (distinct %+v), source %+v", got, distinct, want)
	}
}

// TestPipeBrokerDownThenUp: a pipe whose broker is not there yet shows the error and
// retries with backoff, keeping its position; once the broker is up it exports everything.
func TestPipeBrokerDownThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := openNode(t, t.TempDir(), false)
	defer n.close()
	pipetest.CreatePipe(t, n.mgr, fmt.Sprintf(`
name: export
source: {plugin: wal, pattern: root.src.**}
sink: {plugin: kafka, brokers: "%s", delivery: exactly-once, timeout: 300ms}
`, addr), true)
	rng := rand.New(rand.NewSource(1))
	next := map[string]int64{}
	writeRows(t, n.src, rng, next, 20)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := n.mgr.Describe("export")
		if err != nil {
			t.Fatal(err)
		}
		if st.Retries > 0 && strings.Contains(st.LastError, "unreachable") && st.CommittedEvents == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retried error shown: %+v", st)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer c.Close()
	writeRows(t, n.src, rng, next, 20)
	pipetest.WaitCommitted(t, n.mgr, "export")
	want := sourceDigest(t, n.src)
	if got := digestJSON(t, consume(t, addr, "root.src")); got != want {
		t.Fatalf("consumed %+v, source %+v", got, want)
	}
}
