package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/weir-dev/weir/bench"
)

func TestBenchPeerJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a benchmark")
	}
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs([]string{"bench", "peer", "--points", "50000", "--rounds", "1", "--lag-duration", "100ms", "--quiet", "--json", "--dir", t.TempDir()})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r bench.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.Value <= 0 || r.BaselineValue <= 0 || r.Baseline == "" {
			t.Errorf("result %+v", r)
		}
		seen[r.Bench+" "+r.Metric]++
	}
	for want, n := range map[string]int{"peer-tablet points_per_second_delivered": 3, "peer-file points_per_second_delivered": 3,
		"peer-tablet lag_p50_ms": 2, "peer-tablet lag_p99_ms": 2} {
		if seen[want] != n {
			t.Errorf("%d × %s, want %d, in\n%s", seen[want], want, n, out.String())
		}
	}
}

func TestBenchPeerBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--points", "0"}, {"--compressor", "gzip"}, {"--rounds", "0"}, {"--lag-duration", "1ms"}} {
		var out, errOut bytes.Buffer
		root := NewRoot(&out, &errOut)
		root.SetArgs(append([]string{"bench", "peer"}, args...))
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v", args, err)
		}
	}
}
