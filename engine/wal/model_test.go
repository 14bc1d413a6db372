package wal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"pgregory.net/rapid"

	"github.com/weir-dev/weir/engine/vfs"
)

// TestModel runs random appends, rolls, removals, reopens and crashes that
// tear the tail of the last segment, and checks the WAL against a model.
func TestModel(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(t.TempDir(), "m")
		if err != nil {
			rt.Fatal(err)
		}
		o := Options{
			Dir:         dir,
			FS:          noSyncFS{vfs.Default},
			SegmentSize: rapid.Int64Range(64, 2000).Draw(rt, "segSize"),
			Durability:  rapid.SampledFrom([]Durability{Sync, Batch, Async}).Draw(rt, "mode"),
			Logger:      quiet,
		}
		w, err := Open(o)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { w.Close() }()
		var model []Entry // every entry ever kept, index i+1 at model[i]
		reopen := func() {
			if err := w.Close(); err != nil {
				rt.Fatal(err)
			}
			if w, err = Open(o); err != nil {
				rt.Fatal(err)
			}
		}
		check := func() {
			if got, want := w.LastIndex(), uint64(len(model)); got != want {
				rt.Fatalf("LastIndex %d, model %d", got, want)
			}
			// Async: Wait returned at once; readers see entries once written.
			if err := w.WaitDurable(context.Background(), w.LastIndex()); err != nil {
				rt.Fatal(err)
			}
			segs := w.Segments()
			from := segs[0].FirstIndex
			var got []Entry
			if err := w.Replay(from, func(e Entry) error { got = append(got, e); return nil }); err != nil {
				rt.Fatalf("Replay(%d): %v", from, err)
			}
			want := model[min(from-1, uint64(len(model))):]
			if len(got) != len(want) {
				rt.Fatalf("replayed %d entries from %d, model has %d", len(got), from, len(want))
			}
			for i := range got {
				if got[i].Index != want[i].Index || !bytes.Equal(got[i].Payload, want[i].Payload) {
					rt.Fatalf("entry %d differs", want[i].Index)
				}
			}
			for i := 1; i < len(segs); i++ {
				if segs[i].FirstIndex <= segs[i-1].LastIndex {
					rt.Fatalf("segments overlap: %+v", segs)
				}
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				n := rapid.IntRange(1, 8).Draw(rt, "n")
				var c Commit
				for i := 0; i < n; i++ {
					e := Entry{Index: uint64(len(model) + 1), Payload: rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(rt, "payload")}
					if c, err = w.Append(e); err != nil {
						rt.Fatal(err)
					}
					model = append(model, e)
				}
				if err := c.Wait(); err != nil {
					rt.Fatal(err)
				}
			},
			"roll": func(rt *rapid.T) {
				if err := w.Roll(); err != nil {
					rt.Fatal(err)
				}
			},
			"remove": func(rt *rapid.T) {
				upTo := rapid.Uint64Range(0, uint64(len(model))+1).Draw(rt, "upTo")
				removed, err := w.RemoveSegments(upTo)
				if err != nil {
					rt.Fatal(err)
				}
				for _, s := range removed {
					if s.LastIndex > upTo {
						rt.Fatalf("removed %+v above %d", s, upTo)
					}
				}
			},
			"reopen": func(rt *rapid.T) { reopen() },
			"crash": func(rt *rapid.T) {
				if err := w.Sync(); err != nil {
					rt.Fatal(err)
				}
				segs := w.Segments()
				last := segs[len(segs)-1]
				if err := w.Close(); err != nil {
					rt.Fatal(err)
				}
				b, err := os.ReadFile(last.Path)
				if err != nil {
					rt.Fatal(err)
				}
				cut := rapid.IntRange(0, len(b)).Draw(rt, "cut")
				tail := rapid.SampledFrom([]string{"none", "zeros", "garbage"}).Draw(rt, "tail")
				nb := append([]byte(nil), b[:cut]...)
				switch tail {
				case "zeros":
					nb = append(nb, make([]byte, 50)...)
				case "garbage":
					nb = append(nb, []byte("garbage garbage garbage garbage garbage!!")...)
				}
				if err := os.WriteFile(last.Path, nb, 0o644); err != nil {
					rt.Fatal(err)
				}
				// The entries whose frames are still whole survive (the
				// appended zeros may complete a frame whose cut-off bytes
				// were zeros).
				keep := last.FirstIndex - 1
				for off := 0; ; {
					n, st := checkFrame(nb[off:])
					if st != frameOK || frameIndex(nb[off:]) <= keep {
						break
					}
					keep = frameIndex(nb[off:])
					off += n
				}
				if keep > uint64(len(model)) {
					rt.Fatalf("keep %d > model %d", keep, len(model))
				}
				model = model[:keep]
				if w, err = Open(o); err != nil {
					rt.Fatal(fmt.Errorf("reopen after cut at %d/%d (%s): %w", cut, len(b), tail, err))
				}
			},
			"": func(rt *rapid.T) { check() },
		})
	})
}
