package writeback

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openRegion(t *testing.T, origin uint32) *engine.Region {
	r, err := engine.Open(engine.Options{Dir: t.TempDir(), Origin: origin, Durability: wal.Batch, FlushAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A file event's deletions must not make the file look covered if its load fails (a kill
// between the two): the redelivered event loads the file.
func TestFileDeletionsDoNotCoverTheFile(t *testing.T) {
	src := openRegion(t, 1)
	b := tsfile.NewTabletBuilder(nil, "root.db.d1", []tsfile.Column{{Name: "v", Type: tsfile.Int64}})
	for i := int64(0); i < 10; i++ {
		_ = b.AppendRow(i, i)
	}
	tb, _ := b.Build()
	b.Release()
	if _, err := src.Write(tb); err != nil {
		t.Fatal(err)
	}
	tb.Release()
	// the epoch's last entry is a deletion
	if _, err := src.Delete(tsfile.MustPattern("root.db.d1"), 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	f := src.Files()[0]
	ev := func(path string) *pipe.Event {
		return &pipe.Event{Kind: pipe.KindTsFile, Progress: pipe.ProgressIndex(f.Progress), MinIndex: f.MinIndex, MaxIndex: f.MaxIndex,
			File: &pipe.FileRef{Path: path, Info: f, MinTime: math.MinInt64, MaxTime: math.MaxInt64, Deletions: src.Deletions(0, f.MaxIndex)}}
	}
	dst := openRegion(t, 2)
	a, err := NewApplier(dst)
	if err != nil {
		t.Fatal(err)
	}
	// the load fails after the deletions were applied
	if err := a.Apply(ev(filepath.Join(t.TempDir(), "missing.tsfile"))); err == nil {
		t.Fatal("loading a missing file succeeded")
	}
	if pipe.ProgressIndex(dst.Progress()).Covers(pipe.ProgressIndex(f.Progress)) {
		t.Fatalf("the deletions alone made the file look covered: %v", dst.Progress())
	}
	if _, err := os.Stat(src.FilePath(f.Name)); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ev(src.FilePath(f.Name))); err != nil {
		t.Fatal(err)
	}
	ds, _ := src.Digest()
	dd, _ := dst.Digest()
	if ds != dd || dd.Points != 7 {
		t.Fatalf("digests src %v dst %v", ds, dd)
	}
	// on one filesystem the file was linked, not copied: one inode, two names
	a1, err := os.Stat(src.FilePath(f.Name))
	if err != nil {
		t.Fatal(err)
	}
	linked := false
	for _, df := range dst.Files() {
		a2, err := os.Stat(dst.FilePath(df.Name))
		linked = linked || err == nil && os.SameFile(a1, a2)
	}
	if !linked {
		t.Errorf("the loaded file is not a link of the shipped one: %+v", dst.Files())
	}
}
