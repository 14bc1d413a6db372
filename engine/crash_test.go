package engine

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/tsfile"
)

const crashChildEnv = "WEIR_CRASH_CHILD_DIR"

// crashChild writes tablets in sync mode forever and reports each acked write on stdout:
// "ack INDEX DEVICE FIRST_TIME ROWS". The parent kills it with SIGKILL.
func crashChild() {
	dir := os.Getenv(crashChildEnv)
	base, _ := strconv.ParseInt(os.Getenv("WEIR_CRASH_BASE"), 10, 64)
	r, err := Open(Options{Dir: dir, Durability: wal.Sync, MemtableSize: 256 << 10, WALSegmentSize: 128 << 10, FlushAge: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	out := bufio.NewWriterSize(os.Stdout, 0)
	cols := []tsfile.Column{{Name: "v", Type: tsfile.Int64}, {Name: "s", Type: tsfile.Text}}
	for i := int64(0); ; i++ {
		dev := fmt.Sprintf("root.crash.d%d", i%4)
		t0 := base + (i/4)*50
		b := tsfile.NewTabletBuilder(nil, dev, cols)
		for k := int64(0); k < 50; k++ {
			_ = b.AppendRow(t0+k, t0+k, strconv.FormatInt(t0+k, 36))
		}
		tb, err := b.Build()
		b.Release()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child build:", err)
			os.Exit(4)
		}
		idx, err := r.Write(tb)
		tb.Release()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child write:", err)
			os.Exit(5)
		}
		fmt.Fprintf(os.Stdout, "ack %d %s %d 50\n", idx, dev, t0)
		_ = out
	}
}

type ack struct {
	idx  uint64
	dev  string
	t0   int64
	rows int
}

// TestCrashSyncAckedWritesSurvive runs a writer subprocess in sync mode, kills it with SIGKILL
// at a random moment, reopens the region and checks that every acknowledged write is there.
// It repeats 20 times on the same directory (WEIR_CRASH_RUNS overrides).
func TestCrashSyncAckedWritesSurvive(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs subprocesses")
	}
	runs := 20
	if v := os.Getenv("WEIR_CRASH_RUNS"); v != "" {
		runs, _ = strconv.Atoi(v)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var all []ack
	for run := 0; run < runs; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("WEIR_CRASH_BASE=%d", int64(run+1)*1_000_000_000))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acks := make(chan []ack, 1)
		killAt := 1 + rng.Intn(400) // kill after this many acks, plus whatever is in flight
		reached := make(chan struct{})
		go func() {
			var got []ack
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 5 || f[0] != "ack" {
					continue // a line cut by the kill
				}
				idx, _ := strconv.ParseUint(f[1], 10, 64)
				t0, _ := strconv.ParseInt(f[3], 10, 64)
				got = append(got, ack{idx: idx, dev: f[2], t0: t0, rows: 50})
				if len(got) == killAt {
					close(reached)
				}
			}
			acks <- got
		}()
		select {
		case <-reached:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("run %d: child made fewer than %d acks in 60s: %s", run, killAt, stderr.String())
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		var got []ack
		select {
		case got = <-acks:
		case <-time.After(30 * time.Second):
			t.Fatal("child output not closed")
		}
		if strings.Contains(stderr.String(), "child ") {
			t.Fatalf("run %d: child failed: %s", run, stderr.String())
		}
		all = append(all, got...)
		r, err := Open(Options{Dir: dir, FlushAge: -1})
		if err != nil {
			t.Fatalf("run %d: reopen after kill: %v", run, err)
		}
		missing := checkAcks(t, r, all)
		last := r.LastIndex()
		r.Close()
		if missing != "" {
			t.Fatalf("run %d (killed after ack %d, %d acks read): %s", run, killAt, len(got), missing)
		}
		if len(got) > 0 && last < got[len(got)-1].idx {
			t.Fatalf("run %d: last index %d < acked %d", run, last, got[len(got)-1].idx)
		}
	}
	t.Logf("%d runs, %d acked writes verified", runs, len(all))
}

func checkAcks(t *testing.T, r *Region, acks []ack) string {
	have := map[string]map[int64]int64{}
	err := r.Scan(Query{Measurements: []string{"v"}}, func(dev string, rec arrow.Record) error {
		ts := rec.Column(0).(*array.Int64).Int64Values()
		vs := rec.Column(1).(*array.Int64)
		m := have[dev]
		if m == nil {
			m = map[int64]int64{}
			have[dev] = m
		}
		for i, tm := range ts {
			if vs.IsValid(i) {
				m[tm] = vs.Value(i)
			}
		}
		return nil
	})
	if err != nil {
		return "scan: " + err.Error()
	}
	for _, a := range acks {
		for k := int64(0); k < int64(a.rows); k++ {
			if v, ok := have[a.dev][a.t0+k]; !ok || v != a.t0+k {
				return fmt.Sprintf("acked write %d (%s t=%d) missing or wrong (%v)", a.idx, a.dev, a.t0+k, v)
			}
		}
	}
	return ""
}
