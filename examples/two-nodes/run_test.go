// Package twonodes runs the two-node example (run.sh) as a test, once pipectl has the peer
// sink and the Flight receiver compiled in.
package twonodes

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pipectl and runs two node processes")
	}
	plugins, err := os.ReadFile("../../cli/plugins.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plugins), "pipe/connector/peer") {
		t.Skip("pipectl has no peer sink yet (cli/plugins.go does not import pipe/connector/peer)")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "pipectl")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pipectl")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, "bash", "run.sh")
	cmd.Env = append(os.Environ(), "PIPECTL="+bin, "DIR="+filepath.Join(dir, "run"), "ROWS=200")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Skipf("run.sh: peer pipe not available:\n%s", out.String())
	}
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(dir, "run", "node*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatalf("run.sh: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "digests equal") {
		t.Fatalf("run.sh:\n%s", out.String())
	}
}
