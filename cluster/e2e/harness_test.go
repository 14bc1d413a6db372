// Package e2e_test runs clusters of real node processes on 127.0.0.1 and breaks them:
// followers and leaders killed with SIGKILL and restarted under a load of writes and
// deletions, a follower down until an iot leader's backlog limit rejects writes. The node
// processes are this test binary running pipectl (see TestMain).
package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-dev/weir/cli"
	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/node/client"
)

// pipectlEnv makes this test binary run pipectl with its arguments (a node process).
const pipectlEnv = "WEIR_E2E_RUN_PIPECTL"

func TestMain(m *testing.M) {
	if os.Getenv(pipectlEnv) == "1" {
		os.Exit(cli.Main(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// pipectl returns a command running pipectl (this binary) with args.
func pipectl(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), pipectlEnv+"=1")
	return cmd
}

// testCluster is a cluster of node processes started by a test.
type testCluster struct {
	t     *testing.T
	dir   string
	file  string
	c     *cluster.Cluster
	procs map[uint32]*nodeProc
	hc    *http.Client
	extra string // more node.yaml keys
}

// nodeProc is a running node process.
type nodeProc struct {
	id   uint32
	cmd  *exec.Cmd
	done chan struct{} // closed once it exited
}

// newCluster writes a cluster file for n nodes on free ports with database db (a
// cluster.DatabaseFile) and starts no node yet.
func newCluster(t *testing.T, n int, db cluster.DatabaseFile, extra string) *testCluster {
	t.Helper()
	dir := t.TempDir()
	var lns []net.Listener
	var f cluster.File
	for i := 0; i < n; i++ {
		var addrs [2]string
		for k := range addrs {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lns = append(lns, ln)
			addrs[k] = ln.Addr().String()
		}
		f.Nodes = append(f.Nodes, cluster.NodeFile{ID: uint32(i + 1), HTTP: addrs[0], Flight: addrs[1]})
	}
	for _, ln := range lns {
		ln.Close()
	}
	f.Databases = []cluster.DatabaseFile{db}
	c, err := f.Check()
	if err != nil {
		t.Fatal(err)
	}
	data, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tc := &testCluster{t: t, dir: dir, file: file, c: c, procs: map[uint32]*nodeProc{}, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}, extra: extra}
	t.Cleanup(func() {
		for _, p := range tc.procs {
			p.kill()
		}
		tr.CloseIdleConnections()
	})
	return tc
}

// start starts node id (again) and waits until it listens.
func (tc *testCluster) start(id uint32) {
	t := tc.t
	t.Helper()
	cfg := filepath.Join(tc.dir, fmt.Sprintf("n%d.yaml", id))
	y := fmt.Sprintf("id: %d\ndata: %s\ncluster: %s\ndurability: sync\n%s", id, filepath.Join(tc.dir, fmt.Sprintf("n%d", id)), tc.file, tc.extra)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(tc.dir, fmt.Sprintf("n%d.log", id)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := pipectl("node", "run", "--config", cfg)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{id: id, cmd: cmd, done: make(chan struct{})}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			if first {
				ready <- strings.HasPrefix(sc.Text(), fmt.Sprintf("weir node %d: http", id))
				first = false
			}
		}
		if first {
			ready <- false
		}
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	tc.procs[id] = p
	select {
	case ok := <-ready:
		if !ok {
			<-p.done
			t.Fatalf("node %d did not start:\n%s", id, tc.logTail(id))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("node %d did not start within 60s:\n%s", id, tc.logTail(id))
	}
}

// logTail returns the end of node id's log.
func (tc *testCluster) logTail(id uint32) string {
	b, _ := os.ReadFile(filepath.Join(tc.dir, fmt.Sprintf("n%d.log", id)))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill ends the process with SIGKILL and waits for it.
func (p *nodeProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM and waits for a clean exit.
func (tc *testCluster) stop(id uint32) {
	tc.t.Helper()
	p := tc.procs[id]
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.kill()
		tc.t.Fatalf("node %d did not stop on SIGTERM:\n%s", id, tc.logTail(id))
	}
	if !p.cmd.ProcessState.Success() {
		tc.t.Errorf("node %d exited with %v:\n%s", id, p.cmd.ProcessState, tc.logTail(id))
	}
}

// kill kills node id with SIGKILL.
func (tc *testCluster) kill(id uint32) { tc.procs[id].kill() }

// slow makes node id a slow receiver until done is closed: the process is frozen
// (SIGSTOP) for stopped, runs (SIGCONT) for running, and so on; it runs again at the end.
// The returned channel is closed once it does.
func (tc *testCluster) slow(id uint32, stopped, running time.Duration, done <-chan struct{}) <-chan struct{} {
	p := tc.procs[id]
	out := make(chan struct{})
	go func() {
		defer close(out)
		defer p.cmd.Process.Signal(syscall.SIGCONT)
		for i := 0; i < 10_000; i++ {
			_ = p.cmd.Process.Signal(syscall.SIGSTOP)
			select {
			case <-done:
				return
			case <-time.After(stopped):
			}
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			select {
			case <-done:
				return
			case <-time.After(running):
			}
		}
	}()
	return out
}

// up reports whether node id runs.
func (tc *testCluster) up(id uint32) bool {
	p, ok := tc.procs[id]
	if !ok {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// client returns a client of node id.
func (tc *testCluster) client(id uint32) *client.Client {
	n, _ := tc.c.Node(id)
	return client.New(n.URL(), client.WithHTTPClient(tc.hc))
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
