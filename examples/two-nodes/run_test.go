// Package twonodes runs the two-node example (run.sh) as a test.
package twonodes

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/examples/exampletest"
)

func TestTwoNodes(t *testing.T) {
	// free ports, never the defaults (7070/7071/7080/7081)
	ports := []string{"HTTP1", "FLIGHT1", "HTTP2", "FLIGHT2"}
	out := exampletest.RunScript(t, "run.sh", []string{"ROWS=200"}, ports, "node*.log", 8*time.Minute)
	if !strings.Contains(out, "digests equal") {
		t.Fatalf("run.sh:\n%s", out)
	}
}
