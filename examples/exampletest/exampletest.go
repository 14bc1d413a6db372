// Package exampletest runs the examples' scripts as tests: it builds pipectl and runs a
// script with it, showing the nodes' logs when the script fails.
package exampletest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// RunScript builds pipectl into a temporary directory, then runs `bash script` in the
// test's directory with PIPECTL (the binary), DIR (a scratch directory), env (NAME=VALUE)
// and, for each name in ports, NAME=a port free on 127.0.0.1 (picked after the build, each
// different) set, within timeout: a script's nodes then never take the examples' default
// ports, which a developer's nodes or another test run may hold. It returns the script's
// output (stdout and stderr). A script that fails fails the test, with its output and the
// files matching logGlob under DIR (the nodes' logs).
func RunScript(t *testing.T, script string, env, ports []string, logGlob string, timeout time.Duration) string {
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
	free, err := freePorts(len(ports))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(append(os.Environ(), "PIPECTL="+bin, "DIR="+run), env...)
	for i, name := range ports {
		cmd.Env = append(cmd.Env, name+"="+strconv.Itoa(free[i]))
	}
	if len(ports) > 0 {
		t.Logf("%s on ports %v", script, cmd.Env[len(cmd.Env)-len(ports):])
	}
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

// freePorts returns n distinct ports free on 127.0.0.1: listened on together (so that they
// differ), then closed. Another process may still take one before a node binds it; the
// scripts then refuse it, or their node fails to start.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
