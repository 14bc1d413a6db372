package vfs_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/weir-dev/weir/engine/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDefaultFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.Default
	if err := fs.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "a", "b", "f")
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello world")); err != nil {
		t.Fatal(err)
	}
	if err := vfs.SyncData(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "hello" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir(filepath.Dir(name)); err != nil {
		t.Fatal(err)
	}
	ents, err := fs.ReadDir(filepath.Dir(name))
	if err != nil || len(ents) != 1 || ents[0].Name() != "f" {
		t.Fatalf("ReadDir = %v, %v", ents, err)
	}
	if _, err := fs.Open(name + "x"); !vfs.IsNotExist(err) {
		t.Fatalf("Open missing: %v", err)
	}
	if err := fs.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "manifest")
	for _, data := range [][]byte{[]byte("one"), []byte("two, longer"), {}} {
		if err := vfs.WriteFileAtomic(vfs.Default, name, data); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, name); !bytes.Equal(got, data) {
			t.Fatalf("content = %q, want %q", got, data)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("leftover files: %v", ents)
	}
}

func TestWriteFileAtomicFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "manifest")
	if err := vfs.WriteFileAtomic(vfs.Default, name, []byte("old")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(*vfs.Faulty)
	}{
		{"sync", func(f *vfs.Faulty) { f.FailSyncAfter(0) }},
		{"enospc", func(f *vfs.Faulty) { f.FailWritesAfter(2) }},
		{"rename", func(f *vfs.Faulty) {
			f.SetHook(func(op vfs.Op, _ string) error {
				if op == vfs.OpRename {
					return vfs.ErrInjected
				}
				return nil
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ffs := vfs.NewFaulty(vfs.Default)
			tc.setup(ffs)
			err := vfs.WriteFileAtomic(ffs, name, []byte("new content"))
			if !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("err = %v, want injected", err)
			}
			if got := readFile(t, name); string(got) != "old" {
				t.Fatalf("content = %q, want old", got)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("leftover files: %v", ents)
			}
		})
	}
}

func TestFaultySync(t *testing.T) {
	ffs := vfs.NewFaulty(nil)
	f, err := ffs.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ffs.FailSyncAfter(2)
	for i := 0; i < 2; i++ {
		if err := vfs.SyncData(f); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	for i := 0; i < 3; i++ {
		err := f.Sync()
		if !errors.Is(err, vfs.ErrInjected) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("sync after budget: %v", err)
		}
	}
	if got := ffs.Syncs(); got != 2 {
		t.Fatalf("Syncs = %d", got)
	}
	ffs.Reset()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestFaultyENOSPC(t *testing.T) {
	ffs := vfs.NewFaulty(nil)
	name := filepath.Join(t.TempDir(), "f")
	f, err := ffs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	ffs.FailWritesAfter(10)
	if n, err := f.Write([]byte("0123456")); n != 7 || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	n, err := f.Write([]byte("789abc"))
	if n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("crossing write = %d, %v", n, err)
	}
	if n, err := f.Write([]byte("x")); n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("later write = %d, %v", n, err)
	}
	f.Close()
	if got := readFile(t, name); string(got) != "0123456789" {
		t.Fatalf("content = %q", got)
	}
	if ffs.BytesWritten() != 10 {
		t.Fatalf("BytesWritten = %d", ffs.BytesWritten())
	}
}

func TestFaultyTornWrite(t *testing.T) {
	ffs := vfs.NewFaulty(nil)
	name := filepath.Join(t.TempDir(), "f")
	f, err := ffs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	ffs.TornWritesAfter(4)
	for _, s := range []string{"ab", "cdef", "gh"} {
		if n, err := f.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("torn write reports %d, %v", n, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := readFile(t, name); string(got) != "abcd" {
		t.Fatalf("content = %q", got)
	}
}

func TestFaultyHookAndRead(t *testing.T) {
	ffs := vfs.NewFaulty(nil)
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	var seen []vfs.Op
	ffs.SetHook(func(op vfs.Op, _ string) error {
		seen = append(seen, op)
		if op == vfs.OpRead {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	f, err := ffs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 4)); err != io.ErrUnexpectedEOF {
		t.Fatalf("read: %v", err)
	}
	f.Close()
	if len(seen) != 3 || seen[0] != vfs.OpOpen || seen[2] != vfs.OpClose || vfs.OpSyncDir.String() != "syncdir" {
		t.Fatalf("ops = %v", seen)
	}
}
