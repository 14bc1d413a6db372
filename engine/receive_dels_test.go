package engine

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/tsfile"
)

// A received file's deletions are recorded with it, in the manifest update that lists the
// file: they hide what the region held before (flushed, sealed or only in the WAL), not the
// file's rows nor later writes, advance the progress, take no WAL index (Deletions does not
// list them, FileDeletions does), and are all there, once, after a reopen.
func TestLoadFileWithDeletions(t *testing.T) {
	path, f := sealedFileOf(t, "root.db.f") // rows at 1 and 2
	dir := t.TempDir()
	r := openTest(t, dir)
	mustWrite(t, r, tab(t, "root.db.f", tempCol, []any{int64(7), 7.0}))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, r, tab(t, "root.db.d", tempCol, []any{int64(5), 5.0}, []any{int64(50), 50.0}))
	dels := []IndexedDeletion{
		{Deletion: Deletion{Pattern: tsfile.MustPattern("root.db.f"), MinTime: 0, MaxTime: 10}, Origin: 9, OriginIndex: 40},
		{Deletion: Deletion{Pattern: tsfile.MustPattern("root.db.d"), MinTime: 0, MaxTime: 10}, Origin: 9, OriginIndex: 41},
	}
	progress := map[uint32]uint64{9: 41}
	info, err := r.LoadFileWith(path, progress, dels)
	if err != nil {
		t.Fatal(err)
	}
	after := mustWrite(t, r, tab(t, "root.db.d", tempCol, []any{int64(6), 6.0}))
	check := func(when string) {
		t.Helper()
		got := points(t, r, Query{})
		if len(got["root.db.f"]) != 2 || got["root.db.f"][1] == nil || got["root.db.f"][2] == nil {
			t.Errorf("%s: root.db.f %v, want the file's rows 1 and 2 (7 deleted)", when, got["root.db.f"])
		}
		if len(got["root.db.d"]) != 2 || got["root.db.d"][6] == nil || got["root.db.d"][50] == nil {
			t.Errorf("%s: root.db.d %v, want 6 and 50 (5 deleted)", when, got["root.db.d"])
		}
		if p := r.Progress(); p[9] != 41 {
			t.Errorf("%s: progress %v", when, p)
		}
		if d := r.Deletions(0, after); len(d) != 0 {
			t.Errorf("%s: Deletions lists %+v", when, d)
		}
		fd := r.FileDeletions(info.Name)
		if len(fd) != 2 || fd[0].OriginIndex != 40 || fd[1].OriginIndex != 41 || fd[0].Pattern.String() != "root.db.f" || fd[0].Index != 0 {
			t.Errorf("%s: FileDeletions %+v", when, fd)
		}
		m, err := loadManifest(vfs.Default, dir)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, tb := range m.Tombstones {
			if tb.File == info.Name {
				n++
				if tb.Version != info.Version || tb.Index != 0 {
					t.Errorf("%s: tombstone %+v, file %+v", when, tb, info)
				}
			}
		}
		if n != 2 {
			t.Errorf("%s: manifest on disk holds %d of the file's deletions: %+v", when, n, m.Tombstones)
		}
	}
	check("loaded")
	r.Close() // the local writes around the file are only in the WAL
	r = openTest(t, dir)
	check("reopened")
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	check("flushed")
	r.Close()
	r = openTest(t, dir)
	defer r.Close()
	check("reopened after the flush")
	if fi := r.FileDeletions(f.Name); len(fi) != 0 && f.Name != info.Name {
		t.Errorf("deletions listed for another file: %+v", fi)
	}
}

// A load whose manifest update fails records neither the file nor its deletions, then or
// after a reopen; the progress does not cover them.
func TestLoadFileWithDeletionsFailedSave(t *testing.T) {
	path, f := sealedFileOf(t, "root.db.f")
	dir := t.TempDir()
	fs := vfs.NewFaulty(nil)
	r := openTest(t, dir, func(o *Options) { o.FS = fs })
	mustWrite(t, r, tab(t, "root.db.d", tempCol, []any{int64(5), 5.0}))
	fs.SetHook(func(op vfs.Op, name string) error {
		if op == vfs.OpOpen && strings.HasPrefix(filepath.Base(name), ManifestName+".tmp") {
			return vfs.ErrInjected
		}
		return nil
	})
	dels := []IndexedDeletion{{Deletion: Deletion{Pattern: tsfile.MustPattern("root.db.d"), MinTime: 0, MaxTime: 10}, Origin: 9, OriginIndex: 41}}
	if _, err := r.LoadFileWith(path, map[uint32]uint64{9: 41}, dels); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("load: %v", err)
	}
	fs.SetHook(nil)
	check := func(when string) {
		t.Helper()
		if p := r.Progress(); p[9] != 0 {
			t.Errorf("%s: progress %v", when, p)
		}
		got := points(t, r, Query{})
		if len(got["root.db.d"]) != 1 || len(got["root.db.f"]) != 0 {
			t.Errorf("%s: points %v", when, got)
		}
		r.mu.Lock()
		n := len(r.man.Tombstones)
		r.mu.Unlock()
		if n != 0 {
			t.Errorf("%s: %d tombstones", when, n)
		}
	}
	check("failed")
	r.Close()
	r = openTest(t, dir)
	defer r.Close()
	check("reopened")
	// sent again, it loads
	if _, err := r.LoadFileWith(path, f.Progress, dels); err != nil {
		t.Fatal(err)
	}
	if got := points(t, r, Query{}); len(got["root.db.d"]) != 0 || len(got["root.db.f"]) != 2 {
		t.Errorf("loaded again: %v", got)
	}
}
