package parquet

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// Whole pipes: a region, the pipe manager, a source and this sink.

// faultyFS is the filesystem of the test-parquet-faulty sink.
var faultyFS atomic.Pointer[vfs.Faulty]

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{Name: "test-parquet-faulty", Doc: "parquet sink on a fault-injecting filesystem", Params: Params},
		func() pipe.Connector { return New(Options{FS: faultyFS.Load()}) })
}

type env struct {
	src *engine.Region
	mgr *pipe.Manager
	out string
}

func openEnv(t testing.TB, dir string) *env {
	src := pipetest.OpenRegion(t, engine.Options{Dir: filepath.Join(dir, "src"), Name: "src", Durability: wal.Sync, FlushAge: -1, MemtableSize: 32 << 10})
	mgr, err := pipe.NewManager(pipetest.ManagerOptions(filepath.Join(dir, "pipes"), src))
	if err != nil {
		src.Close()
		t.Fatal(err)
	}
	return &env{src: src, mgr: mgr, out: filepath.Join(dir, "out")}
}

func (e *env) close() {
	e.mgr.Close()
	e.src.Close()
}

func (e *env) createPipe(t testing.TB, source, sink string, kv ...string) {
	t.Helper()
	src := source
	if source == "hybrid" { // switch carriers often
		src += ", selector.max-pending-events: 3, selector.resume-ratio: 0.3"
	}
	spec := fmt.Sprintf("name: export\nsource: {plugin: %s}\nsink: {plugin: %s, path: %q, batch.max-events: 4", src, sink, e.out)
	for i := 0; i+1 < len(kv); i += 2 {
		spec += fmt.Sprintf(", %s: %q", kv[i], kv[i+1])
	}
	pipetest.CreatePipe(t, e.mgr, spec+"}\n", true)
}

// writeRandom writes n tablets of random devices, measurement subsets and nulls; every
// (device, time) is written once.
func writeRandom(t testing.TB, r *engine.Region, rng *rand.Rand, next map[string]int64, n int) {
	for i := 0; i < n; i++ {
		dev := fmt.Sprintf("root.src.d%d", rng.Intn(4))
		var cols []tsfile.Column
		for _, c := range testCols {
			if rng.Intn(3) > 0 {
				cols = append(cols, c)
			}
		}
		if len(cols) == 0 {
			cols = testCols[:1]
		}
		t0 := next[dev] + int64(rng.Intn(3))*86_400_000/4 // now and then across a day
		tb, _ := makeTablet(t, dev, cols, t0, 1000, 1+rng.Intn(30))
		next[dev] = t0 + int64(tb.Rows())*1000
		if _, err := r.Write(tb); err != nil {
			t.Fatal(err)
		}
		tb.Release()
	}
}

// regionRows lists the region's live rows in the test's form.
func regionRows(t testing.TB, r *engine.Region) []row {
	var out []row
	err := r.Scan(engine.Query{}, func(device string, rec arrow.Record) error {
		ts := rec.Column(0)
		for i := 0; i < int(rec.NumRows()); i++ {
			m := map[string]any{}
			for k := 1; k < int(rec.NumCols()); k++ {
				if v := tsfile.Value(rec.Column(k), i); v != nil {
					m[rec.Schema().Field(k).Name] = v
				}
			}
			if len(m) > 0 {
				out = append(out, row{Device: device, Time: tsfile.Value(ts, i).(int64), Vals: formatVals(m)})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitCommitted waits (bounded) until the pipe has committed everything the region holds.
func (e *env) waitCommitted(t testing.TB) pipe.Status {
	t.Helper()
	return pipetest.WaitCommitted(t, e.mgr, "export")
}

func TestPipeExport(t *testing.T) {
	for _, tc := range []struct{ source, by string }{{"wal", "none"}, {"wal", "day"}, {"tsfile", "device"}, {"hybrid", "none"}, {"hybrid", "device"}} {
		t.Run(tc.source+"-"+tc.by, func(t *testing.T) {
			e := openEnv(t, t.TempDir())
			defer e.close()
			e.createPipe(t, tc.source, Name, ParamPartitionBy, tc.by, ParamRollSize, "16KiB", ParamRollInterval, "20ms")
			rng := rand.New(rand.NewSource(time.Now().UnixNano()))
			next := map[string]int64{}
			for round := 0; round < 5; round++ {
				writeRandom(t, e.src, rng, next, 40)
				if tc.source != "wal" {
					if err := e.src.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			st := e.waitCommitted(t)
			sameRows(t, readRows(t, e.out), regionRows(t, e.src))
			t.Logf("%d events, %d carrier switches, %d files", st.CommittedEvents, st.Switches, len(finalFiles(t, e.out)))
			if tmp := tempFiles(t, e.out); len(tmp) > 0 {
				t.Fatalf("temporary files left: %v", tmp)
			}
		})
	}
}

// A full disk fails the pipe visibly (its status shows the error while it retries); no
// partial file is left under a final name; once space is back the pipe resumes and the
// files hold exactly the source rows.
func TestPipeDiskFull(t *testing.T) {
	fs := vfs.NewFaulty(nil)
	faultyFS.Store(fs)
	e := openEnv(t, t.TempDir())
	defer e.close()
	e.createPipe(t, "wal", "test-parquet-faulty", ParamPartitionBy, "device", ParamRollSize, "8KiB", ParamRollInterval, "10ms")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	next := map[string]int64{}
	writeRandom(t, e.src, rng, next, 30)
	e.waitCommitted(t)
	fs.FailWritesAfter(int64(rng.Intn(8_000)))
	// write until the disk is full (the limit may hold several files' worth)
	deadline := time.Now().Add(30 * time.Second)
	var st pipe.Status
	for time.Now().Before(deadline) {
		writeRandom(t, e.src, rng, next, 10)
		st, _ = e.mgr.Describe("export")
		if strings.Contains(st.LastError, "no space left on device") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(st.LastError, "no space left on device") {
		t.Fatalf("the pipe shows no disk-full error: %+v", st)
	}
	for _, f := range finalFiles(t, e.out) {
		readFile(t, filepath.Join(e.out, f)) // complete and readable
	}
	fs.Reset()
	e.waitCommitted(t)
	sameRows(t, readRows(t, e.out), regionRows(t, e.src))
}

const childEnv = "WEIR_PARQUET_CHILD_DIR"

// TestMain runs the child of TestPipeKilled when asked to.
func init() {
	if dir := os.Getenv(childEnv); dir != "" {
		child(dir)
	}
}

// child writes forever into a region exported by a parquet pipe, printing "op N" after
// each write; its parent kills it.
func child(dir string) {
	e := openEnv(pipetest.FatalT{}, dir)
	e.createPipe(pipetest.FatalT{}, "wal", Name, ParamPartitionBy, "day", ParamRollSize, "16KiB", ParamRollInterval, "5ms")
	fmt.Println("ready")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	next := map[string]int64{}
	// continue each device's time line after the previous runs' rows
	for _, r := range regionRows(pipetest.FatalT{}, e.src) {
		if r.Time+1 > next[r.Device] {
			next[r.Device] = r.Time + 1
		}
	}
	for i := 0; ; i++ {
		writeRandom(pipetest.FatalT{}, e.src, rng, next, 3)
		fmt.Printf("op %d\n", i)
	}
}

// TestPipeKilled kills a process exporting to Parquet at random moments (SIGKILL, mid-file
// or mid-rename); after each kill the next run resumes; in the end the files hold exactly
// the source rows: nothing lost, nothing twice, no partial file under a final name.
func TestPipeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for run := 0; run < 4; run++ {
		stderr, err := pipetest.KillAtOp(t, 5+rng.Intn(60), 60*time.Second, childEnv+"="+dir)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("run %d: child ended with %v: %s", run, err, stderr)
		}
		for _, f := range finalFiles(t, filepath.Join(dir, "out")) {
			readFile(t, filepath.Join(dir, "out", f))
		}
	}
	e := openEnv(t, dir)
	defer e.close()
	if err := e.mgr.Start("export"); err != nil && !strings.Contains(err.Error(), "running") {
		t.Fatal(err)
	}
	e.waitCommitted(t)
	want := regionRows(t, e.src)
	if len(want) == 0 {
		t.Fatal("no rows written")
	}
	sameRows(t, readRows(t, e.out), want)
	t.Logf("%d rows in %d files after 4 kills", len(want), len(finalFiles(t, e.out)))
}
