package parquet

import (
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
	for _, bad := range []string{
		"", "x.parquet", "r-1-2.parquet", "-00000000000000000001-00000000000000000002.parquet",
		"r-00000000000000000001-00000000000000000002_0.parquet",
		"r-00000000000000000001-00000000000000000002_01.parquet",
		"r-0000000000000000000x-00000000000000000002.parquet",
		"r-00000000000000000001-00000000000000000002.parquet.tmp",
		"r%zz-00000000000000000001-00000000000000000002.parquet",
		"r%4-00000000000000000001-00000000000000000002.parquet",
	} {
		if f, ok := ParseFileName(bad); ok {
			t.Errorf("%q parses to %+v", bad, f)
		}
	}
	if !(Position{1, 5}).Less(Position{2, 0}) || !(Position{2, 0}).Less(Position{2, 1}) || (Position{2, 1}).Less(Position{2, 1}) {
		t.Error("Position.Less")
	}
}
