package e2e_test

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const childEnv = "WEIR_E2E_CHILD_DIR"

// child runs the source, the copy and the pipe, writing forever; it prints "ready" once
// the pipe runs and "op N" as it goes. The parent kills it with SIGKILL.
func child() {
	dir := os.Getenv(childEnv)
	c := open(fatalT{}, dir, 16<<10)
	createPipe(fatalT{}, c.mgr)
	fmt.Println("ready")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; ; i++ {
		randomOps(fatalT{}, c.src, rng, 10)
		fmt.Printf("op %d\n", i)
	}
}

type fatalT struct{ testing.TB }

func (fatalT) Fatal(args ...any) { fmt.Fprintln(os.Stderr, args...); os.Exit(3) }
func (fatalT) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(3)
}
func (fatalT) Helper() {}

// TestKilledProcessResumes kills a process running a pipe at random moments; after each
// kill the pipe resumes from its durable progress and the copy converges to the source.
func TestKilledProcessResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for run := 0; run < 3; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 1 + rng.Intn(30)
		reached := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			n := 0
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "op ") {
					n++
					if n == killAt {
						close(reached)
					}
				}
			}
		}()
		select {
		case <-reached:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d: child too slow: %s", run, stderr.String())
		}
		cmd.Process.Kill()
		cmd.Wait()
		if strings.Contains(stderr.String(), "panic") {
			t.Fatalf("child panicked: %s", stderr.String())
		}
		c := open(t, dir, 16<<10)
		waitEqual(t, c)
		c.close()
	}
}
