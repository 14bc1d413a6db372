package engine

import (
	"testing"

	"github.com/weir-dev/weir/tsfile"
)

func TestDeleteOnlyEpochFlushes(t *testing.T) {
	r := openTest(t, t.TempDir())
	defer r.Close()
	if _, err := r.Delete(tsfile.MustPattern("root.db.**"), 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	fs := r.Files()
	if len(fs) != 1 || fs[0].MinIndex != 1 || fs[0].MaxIndex != 1 {
		t.Fatalf("files %+v", fs)
	}
}

func TestLoadFileVersioning(t *testing.T) {
	src := openTest(t, t.TempDir())
	defer src.Close()
	mustWrite(t, src, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}, []any{int64(2), 2.0}))
	mustWrite(t, src, tab(t, "root.db.d1", tempCol, []any{int64(2), 22.0}))
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	f := src.Files()[0]

	dir := t.TempDir()
	dst := openTest(t, dir)
	// the receiver already got the first tablet of the epoch, and an older value at t=1
	if _, err := dst.WriteReplicated(1, 1, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}, []any{int64(2), 2.0})); err != nil {
		t.Fatal(err)
	}
	info, err := dst.LoadFile(src.FilePath(f.Name), f.Progress)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Progress()[1] != 2 {
		t.Fatalf("progress %v", dst.Progress())
	}
	// a write after the file wins over it
	mustWrite(t, dst, tab(t, "root.db.d1", tempCol, []any{int64(1), 100.0}))
	check := func() {
		got := points(t, dst, Query{})["root.db.d1"]
		if got[1]["temp"] != 100.0 || got[2]["temp"] != 22.0 {
			t.Fatalf("after load: %v (file %+v)", got, info)
		}
	}
	check()
	dst.Close()
	dst = openTest(t, dir)
	defer dst.Close()
	check()
	if dst.Progress()[1] != 2 {
		t.Fatalf("progress after reopen %v", dst.Progress())
	}
	if err := dst.Flush(); err != nil {
		t.Fatal(err)
	}
	check()
}
