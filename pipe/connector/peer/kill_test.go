package peer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/pipe/receiver"
)

const (
	childEnv     = "WEIR_PEER_CHILD_DIR"
	childAddrEnv = "WEIR_PEER_CHILD_ADDR"
)

// childReceiver runs a receiver of the region in dir (a separate process, killed by the
// parent) until its stdin closes; it prints "listening ADDR" once it serves.
func childReceiver(dir string) {
	r, err := engine.Open(engine.Options{Dir: dir, Name: regionName, Origin: 2, Durability: wal.Sync, FlushAge: -1, Logger: quiet()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	addr := os.Getenv(childAddrEnv)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	bound, stop, err := receiver.Serve(context.Background(), addr,
		receiver.ByDatabase(func(string) (*engine.Region, error) { return r, nil }), quiet())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	fmt.Printf("listening %s\n", bound)
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	r.Close()
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

// startChild starts a receiver process on addr ("" picks a port) and waits until it serves.
func startChild(t *testing.T, dir, addr string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, childAddrEnv+"="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if d := os.Getenv("WEIR_PEER_DEBUG"); d != "" { // keep the receivers' logs
		f, err := os.OpenFile(filepath.Join(d, "child.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			defer f.Close()
			cmd.Stderr = f
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				line <- a
			}
		}
		close(line)
	}()
	select {
	case a, ok := <-line:
		if !ok {
			cmd.Wait()
			t.Fatalf("receiver process ended: %s", stderr.String())
		}
		return &child{cmd: cmd, stdin: stdin, addr: a}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("receiver process did not start: %s", stderr.String())
	}
	return nil
}

func (c *child) kill() {
	c.cmd.Process.Kill() // SIGKILL
	c.cmd.Wait()
	c.stdin.Close()
}

// TestKilledReceiverProcess: the receiver runs in its own process and is killed with
// SIGKILL while the source writes (tablets and files, hybrid); each time it restarts on
// the same address the pipe resumes, and at the end the receiver's region (reopened from
// its WAL and files) equals the source. For stress runs: WEIR_PEER_KILLS=n kills n times;
// WEIR_PEER_DEBUG=dir keeps the receivers' logs there, and both regions on a failure.
func TestKilledReceiverProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	srcDir, dstDir, pipesDir := tempDirs(t)
	src := openRegion(t, srcDir, 1, 32<<10)
	defer src.Close()
	c := startChild(t, dstDir, "")
	addr := c.addr
	m := newManager(t, pipesDir, src)
	defer m.Close()
	createPipe(t, m, fmt.Sprintf("name: rep\nsource: {plugin: hybrid, selector.max-pending-events: 16}\nsink: {plugin: peer, node-urls: %q, batch.max-events: 8, chunk-size: 8KiB}\n", addr))
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	runs := 3
	if n, err := strconv.Atoi(os.Getenv("WEIR_PEER_KILLS")); err == nil && n > 0 {
		runs = n // more kills, for stress runs
	}
	for run := 0; run < runs; run++ {
		st, _ := m.Describe("rep")
		target := st.CommittedEvents + int64(10+rng.Intn(40))
		for i := 0; ; i++ { // write until the receiver applied some more, then kill it mid-stream
			randomOps(t, src, rng, 5)
			if st, _ = m.Describe("rep"); st.CommittedEvents >= target {
				break
			}
			if i > 10000 {
				t.Fatalf("run %d: the pipe does not move: %+v", run, st)
			}
		}
		c.kill()
		randomOps(t, src, rng, 30) // writes go on while the receiver is down
		c = startChild(t, dstDir, addr)
	}
	randomOps(t, src, rng, 30)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the pipe to catch up", func() bool { return caughtUp(m, "rep") })
	c.kill() // acked means durable: a last SIGKILL loses nothing
	dst := openRegion(t, dstDir, 2, 64<<20)
	defer dst.Close()
	if ds, dd := pipetest.Digest(t, src), pipetest.Digest(t, dst); ds != dd {
		st, _ := m.Describe("rep")
		diffPoints(t, src, dst)
		if d := os.Getenv("WEIR_PEER_DEBUG"); d != "" {
			_ = os.CopyFS(filepath.Join(d, "dst"), os.DirFS(dstDir))
			_ = os.CopyFS(filepath.Join(d, "src"), os.DirFS(srcDir))
		}
		man, _ := os.ReadFile(filepath.Join(dstDir, "MANIFEST"))
		t.Logf("receiver manifest: %s", man)
		t.Fatalf("src %v, receiver %v; status %+v", ds, dd, st)
	}
	st, _ := m.Describe("rep")
	t.Logf("committed %d events, %d retries, %d carrier switches", st.CommittedEvents, st.Retries, st.Switches)
}

// diffPoints logs the points one region has and the other lacks (for a failure's report).
func diffPoints(t *testing.T, a, b *engine.Region) {
	points := func(r *engine.Region) map[string]string {
		out := map[string]string{}
		_ = r.Scan(engine.Query{}, func(dev string, rec arrow.Record) error {
			ts := rec.Column(0).(*array.Int64).Int64Values()
			for c := 1; c < int(rec.NumCols()); c++ {
				col := rec.Column(c)
				for i, tm := range ts {
					if col.IsValid(i) {
						out[fmt.Sprintf("%s.%s@%d", dev, rec.ColumnName(c), tm)] = col.ValueStr(i)
					}
				}
			}
			return nil
		})
		return out
	}
	pa, pb := points(a), points(b)
	n := 0
	for k, v := range pa {
		if w, ok := pb[k]; !ok || w != v {
			if n < 40 {
				t.Logf("source %s=%s, receiver %q (present %v)", k, v, w, ok)
			}
			n++
		}
	}
	for k, v := range pb {
		if _, ok := pa[k]; !ok {
			if n < 80 {
				t.Logf("receiver only %s=%s", k, v)
			}
			n++
		}
	}
	t.Logf("%d points differ", n)
}
