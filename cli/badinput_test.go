package cli

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A group (pipe, region, ...) given an unknown subcommand must fail, not print its help and
// exit 0.
func TestUnknownSubcommandFails(t *testing.T) {
	for _, args := range [][]string{{"pipe", "strat", "p"}, {"region", "transfer"}, {"tsfile", "nosuch"}, {"bench", "nosuch"}} {
		_, errOut, code := pipectl(t, "", args...)
		if code == 0 || !strings.Contains(errOut, `unknown command "`+args[1]+`"`) {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	if out, _, code := pipectl(t, "", "pipe"); code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("pipe alone: exit %d, %q", code, out)
	}
}

// pipe wait rejects a timeout that cannot be waited, and on timeout reports the pipe's last
// status rather than the poll the deadline cut short.
func TestPipeWaitTimeout(t *testing.T) {
	for _, to := range []string{"0", "-1s"} {
		_, errOut, code := pipectl(t, "", "pipe", "wait", "p", "--timeout", to, "--server", "http://127.0.0.1:1")
		if code == 0 || !strings.Contains(errOut, "--timeout must be > 0") {
			t.Errorf("--timeout %s: exit %d, %q", to, code, errOut)
		}
	}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 { // later polls outlast the deadline
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"p","state":"CREATED","regions":[]}`))
	}))
	defer srv.Close()
	_, errOut, code := pipectl(t, "", "pipe", "wait", "p", "--timeout", "500ms", "--server", srv.URL)
	if code == 0 || !strings.Contains(errOut, "state CREATED") {
		t.Errorf("wait: exit %d, %q", code, errOut)
	}
}

// cluster up names --consensus when it is wrong, and leaves no temporary directory behind.
func TestClusterUpBadConsensus(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, errOut, code := pipectl(t, "", "cluster", "up", "--nodes", "1", "--consensus", "bogus")
	if code == 0 || !strings.Contains(errOut, `--consensus: "bogus"`) {
		t.Errorf("exit %d, %q", code, errOut)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestPipeCreateSpecOrSQL(t *testing.T) {
	if _, errOut, code := pipectl(t, "", "pipe", "create", "-f", "x.yaml", "--sql", "CREATE PIPE p"); code != 2 || !strings.Contains(errOut, "not both") {
		t.Errorf("both: %d %q", code, errOut)
	}
	if _, errOut, code := pipectl(t, "", "pipe", "create"); code != 2 || !strings.Contains(errOut, "give -f SPEC or --sql STATEMENT") || strings.Contains(errOut, "not both") {
		t.Errorf("neither: %d %q", code, errOut)
	}
}
