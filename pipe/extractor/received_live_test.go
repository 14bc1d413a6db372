package extractor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// A running forwarding source ships a file its region received after the task opened,
// without a restart, at the place the region listed it: after the local write that came
// before it (MaxIndex) and before the next one; MinIndex 0 and Epoch the file's version.
// Also on the file carrier, and for a task that does not ship history. The deletions that
// came with a received file go inside its event, not as events of their own.
func TestRunningSourceShipsFileReceivedMeanwhile(t *testing.T) {
	for _, c := range []struct {
		kind   string
		params map[string]string
		adopt  bool
	}{
		{"wal", nil, false},
		{"hybrid", nil, true},
		{"tsfile", nil, false},
		{"wal", map[string]string{"history.enable": "false"}, true},
	} {
		t.Run(fmt.Sprintf("%s-%v-adopt=%v", c.kind, c.params, c.adopt), func(t *testing.T) {
			p := openPair(t, 0)
			defer p.close()
			other := otherRegion(t)
			write := func(r *engine.Region, dev string, ts int64) {
				b := tsfile.NewTabletBuilder(nil, dev, []tsfile.Column{{Name: "a", Type: tsfile.Int64}})
				_ = b.AppendRow(ts, ts)
				pipetest.WriteTablet(t, r, b)
				if c.kind == "tsfile" {
					if err := r.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			receive := func(ts int64, dels []engine.IndexedDeletion) engine.FileInfo {
				write(other, "root.src.r", ts)
				if err := other.Flush(); err != nil {
					t.Fatal(err)
				}
				fs := other.Files()
				f := fs[len(fs)-1]
				if !c.adopt {
					info, err := p.src.LoadFileWith(other.FilePath(f.Name), f.Progress, dels)
					if err != nil {
						t.Fatal(err)
					}
					return info
				}
				staged := filepath.Join(p.src.Dir(), "staged.tsfile")
				if err := copyFile(other.FilePath(f.Name), staged); err != nil {
					t.Fatal(err)
				}
				info, err := p.src.AdoptFileWith(staged, f.CRC32C, f.Progress, dels)
				if err != nil {
					t.Fatal(err)
				}
				return info
			}
			if c.params == nil {
				write(p.src, "root.src.l", 1) // history
			}
			x := &Extractor{kind: c.kind}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := x.Open(ctx, newEnv(p, c.params, nil)); err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			var got []*pipe.Event
			defer func() {
				for _, e := range got {
					e.Release()
				}
			}()
			// next returns the next event that is not a heartbeat (bounded)
			next := func() *pipe.Event {
				for i := 0; i < 10000; i++ {
					nctx, ncancel := context.WithTimeout(ctx, 10*time.Second)
					e, err := x.Next(nctx)
					ncancel()
					if err != nil {
						t.Fatalf("after %d events: %v", len(got), err)
					}
					if e == nil || e.Kind == pipe.KindHeartbeat {
						if e != nil {
							e.Release()
						}
						continue
					}
					got = append(got, e)
					return e
				}
				t.Fatal("no event")
				return nil
			}
			write(p.src, "root.src.l", 2)
			before := next()
			for before.MaxIndex < p.src.LastIndex() {
				before = next()
			}
			f1 := receive(3, nil)
			del := engine.IndexedDeletion{Deletion: engine.Deletion{Pattern: tsfile.MustPattern("root.src.r"), MinTime: 0, MaxTime: 3},
				Origin: other.Origin(), OriginIndex: other.LastIndex() + 1}
			f2 := receive(4, []engine.IndexedDeletion{del})
			write(p.src, "root.src.l", 5)
			for i, f := range []engine.FileInfo{f1, f2} {
				e := next()
				if !e.FromReceivedFile() || e.File == nil || e.File.Info.Name != f.Name || e.MinIndex != 0 || e.MaxIndex != before.MaxIndex || e.Epoch != f.Version {
					t.Fatalf("got %v %d..%d epoch %d file %+v, want the received file %s (version %d) after index %d", e.Kind, e.MinIndex, e.MaxIndex, e.Epoch, e.File, f.Name, f.Version, before.MaxIndex)
				}
				if ds := e.File.Deletions; i == 0 && len(ds) != 0 || i == 1 && (len(ds) != 1 || ds[0].Origin != del.Origin || ds[0].OriginIndex != del.OriginIndex || ds[0].Pattern.String() != "root.src.r") {
					t.Fatalf("file %s carries deletions %+v", f.Name, ds)
				}
			}
			if e := next(); e.FromReceivedFile() || e.MinIndex != before.MaxIndex+1 {
				t.Fatalf("got %v %d..%d epoch %d, want the local write after the received files", e.Kind, e.MinIndex, e.MaxIndex, e.Epoch)
			}
		})
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
