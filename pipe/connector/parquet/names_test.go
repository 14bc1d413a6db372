package parquet

import (
	"sort"
	"strings"
	"testing"
)

func TestFileNames(t *testing.T) {
	for _, f := range []FileName{
		{Region: "r1", First: 1, Last: Position{Index: 9}},
		{Region: "root.demo-0", First: 12, Last: Position{Index: 12, Ord: 3}},
		{Region: "a_b-c", First: 0, Last: Position{Index: 1<<64 - 1, Ord: 1<<64 - 1}},
		{Region: ".hidden/x y%", First: 5, Last: Position{Index: 7}},
		{Region: "_1", First: 5, Last: Position{Index: 7, Ord: 1}},
		{Region: "r1", First: 0, Last: Position{Index: 0, Received: 3}},
		{Region: "a_b~c", First: 4, Last: Position{Index: 7, Received: 12, Ord: 2}},
		{Region: "r_1", First: 4, Last: Position{Index: 7, Received: 1<<64 - 1}},
	} {
		name := f.String()
		if strings.ContainsAny(name, "/ ") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			t.Errorf("%+v: unsafe name %q", f, name)
		}
		got, ok := ParseFileName(name)
		if !ok || got != f {
			t.Errorf("%+v: %q parses to %+v, %v", f, name, got, ok)
		}
		if _, ok := parseTempName(name); ok {
			t.Errorf("%q parses as a temporary name", name)
		}
		tmp := tempName(f.Region, f.First)
		if r, ok := parseTempName(tmp); !ok || r != f.Region {
			t.Errorf("temp %q parses to %q, %v", tmp, r, ok)
		}
		if _, ok := ParseFileName(tmp); ok {
			t.Errorf("temp %q parses as a final name", tmp)
		}
	}
	if got := (FileName{Region: "r", First: 1, Last: Position{Index: 2}}).String(); got != "r-00000000000000000001-00000000000000000002.parquet" {
		t.Errorf("name %q", got)
	}
	if got := (FileName{Region: "r", First: 1, Last: Position{Index: 2, Received: 5, Ord: 1}}).String(); got != "r-00000000000000000001-00000000000000000002~00000000000000000005_1.parquet" {
		t.Errorf("name %q", got)
	}
	// names sort in export order: the outputs of a local write, then the files received
	// after it, by version
	var names []string
	for _, p := range []Position{{Index: 2}, {Index: 2, Ord: 1}, {Index: 2, Received: 5}, {Index: 2, Received: 5, Ord: 1}, {Index: 2, Received: 6}, {Index: 3}} {
		names = append(names, FileName{Region: "r", First: 2, Last: p}.String())
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("names out of order: %q", names)
	}
	for _, bad := range []string{
		"", "x.parquet", "r-1-2.parquet", "-00000000000000000001-00000000000000000002.parquet",
		"r-00000000000000000001-00000000000000000002_0.parquet",
		"r-00000000000000000001-00000000000000000002_01.parquet",
		"r-0000000000000000000x-00000000000000000002.parquet",
		"r-00000000000000000001-00000000000000000002.parquet.tmp",
		"r%zz-00000000000000000001-00000000000000000002.parquet",
		"r%4-00000000000000000001-00000000000000000002.parquet",
		"r-00000000000000000001-00000000000000000002~00000000000000000000.parquet",
		"r-00000000000000000001-00000000000000000002~5.parquet",
		"r-00000000000000000001-00000000000000000002~0000000000000000000x.parquet",
		"r-00000000000000000001-00000000000000000002~.parquet",
		"r-00000000000000000001~00000000000000000005-00000000000000000002.parquet",
	} {
		if f, ok := ParseFileName(bad); ok {
			t.Errorf("%q parses to %+v", bad, f)
		}
	}
	for _, c := range []struct{ p, q Position }{
		{Position{Index: 1, Ord: 5}, Position{Index: 2}},
		{Position{Index: 2}, Position{Index: 2, Ord: 1}},
		{Position{Index: 2, Ord: 9}, Position{Index: 2, Received: 1}},
		{Position{Index: 2, Received: 1, Ord: 9}, Position{Index: 2, Received: 2}},
		{Position{Index: 2, Received: 1}, Position{Index: 2, Received: 1, Ord: 1}},
		{Position{Index: 2, Received: 9, Ord: 9}, Position{Index: 3}},
	} {
		if !c.p.Less(c.q) || c.q.Less(c.p) || c.p.Less(c.p) {
			t.Errorf("Position.Less(%+v, %+v)", c.p, c.q)
		}
	}
}
