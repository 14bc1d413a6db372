package e2e_test

import (
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/pipe/pipetest"
)

const childEnv = "WEIR_E2E_CHILD_DIR"

// child runs the source, the copy and the pipe, writing forever; it prints "ready" once
// the pipe runs and "op N" as it goes. The parent kills it with SIGKILL.
func child() {
	dir := os.Getenv(childEnv)
	c := open(pipetest.FatalT{}, dir, 16<<10)
	createPipe(pipetest.FatalT{}, c.mgr)
	fmt.Println("ready")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; ; i++ {
		randomOps(pipetest.FatalT{}, c.src, rng, 10)
		fmt.Printf("op %d\n", i)
	}
}

// TestKilledProcessResumes kills a process running a pipe at random moments; after each
// kill the pipe resumes from its durable progress and the copy converges to the source.
func TestKilledProcessResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for run := 0; run < 3; run++ {
		stderr, _ := pipetest.KillAtOp(t, 1+rng.Intn(30), 60*time.Second, childEnv+"="+dir)
		if strings.Contains(stderr, "panic") {
			t.Fatalf("child panicked: %s", stderr)
		}
		c := open(t, dir, 16<<10)
		waitEqual(t, c)
		c.close()
	}
}
