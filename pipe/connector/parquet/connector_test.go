package parquet

import (
	"context"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, by := range []string{"none", "device", "day"} {
		t.Run(by, func(t *testing.T) {
			dir := t.TempDir()
			evs, want := workload(t, 40, 4, 50, testCols)
			c := openConn(t, New(Options{}), params(dir, ParamPartitionBy, by, ParamRowGroupSize, "64"))
			defer c.Close()
			for i := 0; i < len(evs); i += 7 {
				if err := c.Send(context.Background(), evs[i:min(i+7, len(evs))]); err != nil {
					t.Fatal(err)
				}
			}
			sameRows(t, readRows(t, dir), want)
			if tmp := tempFiles(t, dir); len(tmp) > 0 {
				t.Fatalf("temporary files left: %v", tmp)
			}
			t.Logf("%d files", len(finalFiles(t, dir)))
		})
	}
}
