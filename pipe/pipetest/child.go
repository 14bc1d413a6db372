package pipetest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// FatalT is the testing.TB of code a child process runs outside any test: Fatal and
// Fatalf print to stderr and exit with status 3, Helper does nothing; no other method may be called.
type FatalT struct{ testing.TB }

// Fatal prints args to stderr and exits with status 3.
func (FatalT) Fatal(args ...any) { fmt.Fprintln(os.Stderr, args...); os.Exit(3) }

// Fatalf prints the formatted message to stderr and exits with status 3.
func (FatalT) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(3)
}

// Helper does nothing.
func (FatalT) Helper() {}

// KillAtOp runs the test binary again as a child process, running no test, with env
// ("KEY=value") added to its environment; once the child has printed n lines starting
// with "op " it kills it with SIGKILL and waits for it. The test fails if the child has
// not printed them within timeout. It returns what the child wrote to stderr and the
// error of waiting for it (an *exec.ExitError with exit code -1 after the kill).
func KillAtOp(t testing.TB, n int, timeout time.Duration, env ...string) (stderr string, waitErr error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reached := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		ops := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "op ") {
				if ops++; ops == n {
					close(reached)
				}
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-reached:
	case <-timer.C:
		cmd.Process.Kill()
		cmd.Wait()
		<-scanned
		t.Fatalf("child did not print %d op lines within %s: %s", n, timeout, errBuf.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitErr = cmd.Wait()
	<-scanned
	return errBuf.String(), waitErr
}
