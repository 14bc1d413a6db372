// Package twonodes runs the two-node example (run.sh) as a test.
package twonodes

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/examples/exampletest"
)

func TestTwoNodes(t *testing.T) {
	out := exampletest.RunScript(t, "run.sh", []string{"ROWS=200"}, "node*.log", 8*time.Minute)
	if !strings.Contains(out, "digests equal") {
		t.Fatalf("run.sh:\n%s", out)
	}
}
