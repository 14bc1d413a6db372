package engine

import (
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/tsfile"
)

// stageCopy copies src to dir/incoming/name and returns the path and the CRC32C.
func stageCopy(t *testing.T, src, dir, name string) (string, uint32) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "incoming"), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(dir, "incoming", name)
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p, h.Sum32()
}

func sealedFile(t *testing.T) (string, FileInfo) {
	t.Helper()
	src := openTest(t, t.TempDir())
	t.Cleanup(func() { src.Close() })
	mustWrite(t, src, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}, []any{int64(2), 2.0}))
	mustWrite(t, src, tab(t, "root.db.d1", tempCol, []any{int64(2), 22.0}))
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	f := src.Files()[0]
	return src.FilePath(f.Name), f
}

func TestAdoptFile(t *testing.T) {
	path, f := sealedFile(t)
	dir := t.TempDir()
	fs := vfs.NewFaulty(nil)
	var synced, renamed []string
	fs.SetHook(func(op vfs.Op, name string) error {
		switch op {
		case vfs.OpSync:
			synced = append(synced, filepath.Base(name))
		case vfs.OpRename:
			renamed = append(renamed, filepath.Base(name))
		}
		return nil
	})
	dst := openTest(t, dir, func(o *Options) { o.FS = fs })
	staged, crc := stageCopy(t, path, dir, "x.part")
	synced, renamed = nil, nil
	info, err := dst.AdoptFile(staged, crc, f.Progress)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(staged); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staged file still there: %v", err)
	}
	if info.CRC32C != f.CRC32C || info.Size != f.Size || info.Points != f.Points {
		t.Fatalf("adopted %+v, sent %+v", info, f)
	}
	// the staged file is synced before its rename into place
	if len(synced) == 0 || synced[0] != "x.part" || len(renamed) == 0 || renamed[0] != "x.part" {
		t.Fatalf("syncs %v renames %v", synced, renamed)
	}
	check := func(r *Region) {
		got := points(t, r, Query{})["root.db.d1"]
		if got[1]["temp"] != 1.0 || got[2]["temp"] != 22.0 {
			t.Fatalf("after adopt: %v", got)
		}
		if r.Progress()[1] != 2 {
			t.Fatalf("progress %v", r.Progress())
		}
	}
	check(dst)
	dst.Close()
	dst = openTest(t, dir)
	defer dst.Close()
	check(dst)
	if fi := dst.Files(); len(fi) != 1 || fi[0].CRC32C != f.CRC32C {
		t.Fatalf("files after reopen %+v", fi)
	}
}

func TestAdoptFileRefusals(t *testing.T) {
	path, f := sealedFile(t)
	dir := t.TempDir()
	fs := vfs.NewFaulty(nil)
	dst := openTest(t, dir, func(o *Options) { o.FS = fs })
	defer dst.Close()

	// outside the region's directory
	if _, err := dst.AdoptFile(path, f.CRC32C, f.Progress); err == nil || !strings.Contains(err.Error(), "not inside") {
		t.Fatalf("adopt from outside: %v", err)
	}
	// not a TsFile: a FormatError, the file stays for the caller
	bad := filepath.Join(dir, "incoming", "bad.part")
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, []byte("not a tsfile at all, not at all"), 0o644)
	var fe *tsfile.FormatError
	if _, err := dst.AdoptFile(bad, 0, f.Progress); !errors.As(err, &fe) {
		t.Fatalf("adopt garbage: %v", err)
	}
	if _, err := os.Stat(bad); err != nil {
		t.Fatalf("garbage was taken: %v", err)
	}
	// a failed sync of the staged file: not adopted, left staged
	staged, crc := stageCopy(t, path, dir, "y.part")
	fs.SetHook(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && strings.HasSuffix(name, "y.part") {
			return errors.New("injected")
		}
		return nil
	})
	if _, err := dst.AdoptFile(staged, crc, f.Progress); err == nil {
		t.Fatal("adopted a file whose sync failed")
	}
	if _, err := os.Stat(staged); err != nil {
		t.Fatalf("staged file gone after a failed adopt: %v", err)
	}
	// a failed sync of the directory after the rename: moved back
	fs.SetHook(func(op vfs.Op, name string) error {
		if op == vfs.OpSyncDir {
			return errors.New("injected")
		}
		return nil
	})
	if _, err := dst.AdoptFile(staged, crc, f.Progress); err == nil {
		t.Fatal("adopted a file whose rename was not synced")
	}
	if _, err := os.Stat(staged); err != nil {
		t.Fatalf("staged file not moved back: %v", err)
	}
	fs.SetHook(nil)
	if n := len(dst.Files()); n != 0 {
		t.Fatalf("%d files after refusals", n)
	}
	if _, err := dst.AdoptFile(staged, crc, f.Progress); err != nil {
		t.Fatal(err)
	}
}

func TestWriteReplicatedAsync(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir, func(o *Options) { o.Durability = wal.Sync })
	var waits []Durable
	for i := 1; i <= 50; i++ {
		idx, d, err := r.WriteReplicatedAsync(7, uint64(i), tab(t, "root.db.d1", tempCol, []any{int64(i), float64(i)}))
		if err != nil {
			t.Fatal(err)
		}
		if idx != uint64(i) {
			t.Fatalf("index %d, want %d", idx, i)
		}
		waits = append(waits, d)
	}
	for _, d := range waits {
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if r.Progress()[7] != 50 {
		t.Fatalf("progress %v", r.Progress())
	}
	r.Close()
	r = openTest(t, dir)
	defer r.Close()
	if got := points(t, r, Query{})["root.db.d1"]; len(got) != 50 || r.Progress()[7] != 50 {
		t.Fatalf("after reopen: %d points, progress %v", len(got), r.Progress())
	}
	// a bad tablet is refused before anything is taken
	if _, _, err := r.WriteReplicatedAsync(7, 51, nil); err == nil {
		t.Fatal("nil tablet taken")
	}
}

func TestWriteReplicatedAsyncFailedSync(t *testing.T) {
	fs := vfs.NewFaulty(nil)
	r := openTest(t, t.TempDir(), func(o *Options) { o.FS = fs; o.Durability = wal.Sync })
	defer r.Close()
	fs.FailSyncAfter(0)
	_, d, err := r.WriteReplicatedAsync(7, 1, tab(t, "root.db.d1", tempCol, []any{int64(1), 1.0}))
	if err == nil {
		err = d.Wait()
	}
	if err == nil {
		t.Fatal("a write whose sync failed was durable")
	}
	if _, err := r.WriteReplicated(7, 2, tab(t, "root.db.d1", tempCol, []any{int64(2), 2.0})); err == nil {
		t.Fatal("the region took a write after a failed sync")
	}
}
