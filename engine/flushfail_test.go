package engine

import (
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine/vfs"
)

// A flush whose manifest save failed must not leave the in-memory manifest claiming the
// epoch is in a file: a later manifest save (here: a received file) would persist that claim
// without the file, and the epoch's writes would be skipped by the next replay.
func TestFailedFlushManifestSaveKeepsWrites(t *testing.T) {
	path, f := sealedFile(t)
	dir := t.TempDir()
	fs := vfs.NewFaulty(nil)
	r := openTest(t, dir, func(o *Options) { o.FS = fs })
	mustWrite(t, r, tab(t, "root.db.d2", tempCol, []any{int64(1), 1.0}, []any{int64(2), 2.0}))
	var failed atomic.Bool
	fs.SetHook(func(op vfs.Op, name string) error {
		if op == vfs.OpOpen && strings.HasPrefix(filepath.Base(name), ManifestName+".tmp") && failed.CompareAndSwap(false, true) {
			return vfs.ErrInjected
		}
		return nil
	})
	if err := r.Flush(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("flush: %v", err)
	}
	if _, err := r.LoadFile(path, f.Progress); err != nil {
		t.Logf("load after failed flush: %v", err)
	}
	r.Close()

	r = openTest(t, dir)
	defer r.Close()
	if got := points(t, r, Query{})["root.db.d2"]; len(got) != 2 {
		t.Fatalf("after reopen root.db.d2 holds %v, want the 2 written points", got)
	}
}

func sealedFileOf(t *testing.T, dev string) (string, FileInfo) {
	t.Helper()
	src := openTest(t, t.TempDir())
	t.Cleanup(func() { src.Close() })
	mustWrite(t, src, tab(t, dev, tempCol, []any{int64(1), 1.0}, []any{int64(2), 2.0}))
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	f := src.Files()[0]
	return src.FilePath(f.Name), f
}

// When the flushed epoch's version is below a received file's, the manifest's file list is
// sorted with the flushed file before the received one; a failed save must take the flushed
// file back out, not the received one.
func TestFailedFlushManifestSaveKeepsReceivedFile(t *testing.T) {
	pathA, fA := sealedFileOf(t, "root.db.a")
	pathB, fB := sealedFileOf(t, "root.db.b")
	dir := t.TempDir()
	fs := vfs.NewFaulty(nil)
	r := openTest(t, dir, func(o *Options) { o.FS = fs })
	mustWrite(t, r, tab(t, "root.db.d2", tempCol, []any{int64(1), 1.0}, []any{int64(2), 2.0}))

	// the flush of epoch 1 (sealed by the load) waits until the load is recorded, then
	// its manifest save fails
	loaded := make(chan struct{})
	var flushing, afterLoad, failed atomic.Bool
	fs.SetHook(func(op vfs.Op, name string) error {
		if op != vfs.OpOpen {
			return nil
		}
		base := filepath.Base(name)
		if base == fileName(1)+".tmp" && flushing.CompareAndSwap(false, true) {
			select {
			case <-loaded:
			case <-time.After(10 * time.Second):
			}
		}
		if afterLoad.Load() && strings.HasPrefix(base, ManifestName+".tmp") && failed.CompareAndSwap(false, true) {
			return vfs.ErrInjected
		}
		return nil
	})
	if _, err := r.LoadFile(pathA, fA.Progress); err != nil {
		t.Fatal(err)
	}
	afterLoad.Store(true)
	close(loaded)
	if err := r.Flush(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("flush: %v", err)
	}
	fs.SetHook(nil)
	if _, err := r.LoadFile(pathB, fB.Progress); err != nil {
		t.Logf("load after failed flush: %v", err)
	}
	r.Close()

	r = openTest(t, dir)
	defer r.Close()
	got := points(t, r, Query{})
	for _, dev := range []string{"root.db.a", "root.db.d2"} {
		if len(got[dev]) != 2 {
			t.Errorf("after reopen %s holds %v, want 2 points", dev, got[dev])
		}
	}
}

// A received file must not take the version of a live memtable that holds writes (which
// happens when sealing it fails): the WAL replays those writes into that version at the next
// open, and their flush overwrites the received file.
func TestLoadFileAfterFailedSealRefused(t *testing.T) {
	pathA, fA := sealedFileOf(t, "root.db.a")
	dir := t.TempDir()
	fs := vfs.NewFaulty(nil)
	r := openTest(t, dir, func(o *Options) { o.FS = fs })
	mustWrite(t, r, tab(t, "root.db.d2", tempCol, []any{int64(1), 1.0}, []any{int64(2), 2.0}))
	fs.SetHook(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && strings.HasPrefix(filepath.Base(name), "wal-") {
			return vfs.ErrInjected
		}
		return nil
	})
	_, loadErr := r.LoadFile(pathA, fA.Progress)
	r.Close()
	fs.SetHook(nil)

	for i := 0; i < 2; i++ {
		r, err := Open(Options{Dir: dir, FlushAge: -1})
		if err != nil {
			t.Fatalf("reopen %d (load: %v): %v", i, loadErr, err)
		}
		if err := r.Flush(); err != nil {
			r.Close()
			t.Fatal(err)
		}
		got := points(t, r, Query{})
		r.Close()
		if len(got["root.db.d2"]) != 2 {
			t.Fatalf("reopen %d: root.db.d2 holds %v", i, got["root.db.d2"])
		}
		if loadErr == nil && len(got["root.db.a"]) != 2 {
			t.Fatalf("reopen %d: the received file's points are gone: %v", i, got["root.db.a"])
		}
	}
}
