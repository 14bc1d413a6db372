package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/weir-dev/weir/bench"
)

// pipectl bench processor runs (small) and prints one JSON result per line, each against
// the do-nothing baseline of the same run.
func TestBenchProcessorJSON(t *testing.T) {
	out, errOut, err := runCLI(t, "bench", "processor", "--points", "20000", "--rounds", "1", "--only", "filter-predicate,aggregate", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var got []bench.Result
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r bench.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, r)
	}
	if len(got) != 6 {
		t.Fatalf("%d results, want 3 pipe and 3 alone:\n%s", len(got), out)
	}
	for _, r := range got {
		if r.Value <= 0 || r.BaselineValue <= 0 || r.Ratio <= 0 || !strings.HasPrefix(r.Baseline, "do-nothing") {
			t.Errorf("result %+v", r)
		}
	}
	if _, _, err := runCLI(t, "bench", "processor", "--only", "median"); err == nil || !strings.Contains(err.Error(), `unknown case "median"`) {
		t.Errorf("--only median: %v", err)
	}
}
