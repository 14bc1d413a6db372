// Package exampletest runs the examples' scripts as tests: it builds pipectl and runs a
// script with it, showing the nodes' logs when the script fails.
package exampletest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RunScript builds pipectl into a temporary directory, then runs `bash script` in the
// test's directory with PIPECTL (the binary), DIR (a scratch directory) and env set, within
// timeout. It returns the script's output (stdout and stderr). A script that fails fails
// the test, with its output and the files matching logGlob under DIR (the nodes' logs).
func RunScript(t *testing.T, script string, env []string, logGlob string, timeout time.Duration) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds pipectl and runs node processes")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	bin := filepath.Join(dir, "pipectl")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pipectl")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := filepath.Join(dir, "run")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(append(os.Environ(), "PIPECTL="+bin, "DIR="+run), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		logs, _ := filepath.Glob(filepath.Join(run, logGlob))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatalf("%s: %v\n%s", script, err, out.String())
	}
	return out.String()
}
