package node_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/node/client"
)

// startChild runs a node in a child process (this test binary, see TestMain) and returns
// its client once it listens.
func startChild(t *testing.T, cfg string) (*exec.Cmd, *client.Client, *strings.Builder, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	select {
	case l, ok := <-lines:
		addr, found := strings.CutPrefix(l, "listening http=")
		if !ok || !found {
			cmd.Wait()
			t.Fatalf("child did not start: %q\n%s", l, stderr.String())
		}
		return cmd, client.New(addr), &stderr, lines
	case <-time.After(60 * time.Second):
		t.Fatalf("child did not start in time\n%s", stderr.String())
	}
	return nil, nil, nil, nil
}

// SIGTERM stops a node gracefully: it exits 0, its pipes saved their progress, and a node
// reopened on its directory has every acknowledged write and resumes the pipe.
func TestSIGTERMGraceful(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	c := ctx(t)
	dir := t.TempDir()
	cmd, cl, stderr, out := startChild(t, fmt.Sprintf("id: 3\ndata: %s\nhttp: 127.0.0.1:0\nregions: 2\nlog: {level: info, format: json}\n", dir))
	if _, err := cl.Write(c, strings.NewReader(lines(5, 20, 1000))); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreatePipe(c, []byte(copySpec), client.CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "copy caught up", 30*time.Second, func() (bool, string) {
		a, _ := cl.Digest(c, "root.demo")
		b, _ := cl.Digest(c, "root.copy")
		return a.Points > 0 && a.Digest == b.Digest, fmt.Sprint(a, b)
	})
	// acknowledged after the pipe caught up: must survive the stop
	if _, err := cl.Write(c, strings.NewReader(lines(5, 3, 900_000))); err != nil {
		t.Fatal(err)
	}
	want, err := cl.Digest(c, "root.demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", stderr.String())
	}
	var rest []string
	for l := range out {
		rest = append(rest, l)
	}
	if strings.Join(rest, "\n") != "stopped cleanly" {
		t.Errorf("stdout after start: %q", rest)
	}
	for _, msg := range []string{`"msg":"stopping"`, `"msg":"node stopped"`} {
		if !strings.Contains(stderr.String(), msg) {
			t.Errorf("log lacks %s:\n%s", msg, stderr.String())
		}
	}
	progress, _ := filepath.Glob(filepath.Join(dir, "pipes", "copy", "progress-*"))
	if len(progress) != 2 {
		t.Errorf("progress files: %v", progress)
	}

	n := startNode(t, node.Options{ID: 3, DataDir: dir})
	got, err := n.c.Digest(c, "root.demo")
	if err != nil || got.Digest != want.Digest || got.Points != want.Points {
		t.Fatalf("after restart: %+v %v, want %+v", got, err, want)
	}
	waitCaughtUp(t, n, "copy", "root.demo", "root.copy")

}
