package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/weir-dev/weir/bench"
)

func TestBenchParquet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a benchmark")
	}
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs([]string{"bench", "parquet", "--points", "20000", "--rounds", "1", "--json", "--dir", t.TempDir()})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r bench.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.Value <= 0 || r.BaselineValue <= 0 || r.Ratio <= 0 || !strings.HasPrefix(r.Baseline, "raw parquet-go") {
			t.Errorf("result %+v", r)
		}
		seen[r.Bench+" "+r.Metric] = true
	}
	for _, want := range []string{"parquet-sink points_per_second", "parquet-sink mb_per_second", "parquet-sink bytes_per_point",
		"parquet-pipe points_per_second", "parquet-pipe mb_per_second", "parquet-pipe bytes_per_point"} {
		if !seen[want] {
			t.Errorf("no %s in\n%s", want, out.String())
		}
	}
}

func TestBenchParquetBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--points", "0"}, {"--compression", "lz4"}, {"--rounds", "0"}} {
		var out, errOut bytes.Buffer
		root := NewRoot(&out, &errOut)
		root.SetArgs(append([]string{"bench", "parquet"}, args...))
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "")) {
			t.Errorf("%v: %v", args, err)
		}
	}
}
