package extractor

import (
	"context"
	"testing"
	"time"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// The progress an extractor saves never goes back: a deletion shipped alone (its epoch's
// file is out of the pipe's time range) carries only its own origin's index, and a
// checkpoint taken after it kept only that, dropping what the pipe had shipped of other
// origins; after a restart the events did not cover it any more.
func TestSavedProgressKeepsOtherOrigins(t *testing.T) {
	p := openPair(t, 64<<20)
	defer p.close()
	// epoch 1: a write replicated from origin 9, and a local one
	tb := oneRow(2000)
	if _, err := p.src.WriteReplicated(9, 100, tb); err != nil {
		t.Fatal(err)
	}
	tb.Release()
	writeRow(t, p.src, 2001)
	if err := p.src.Flush(); err != nil {
		t.Fatal(err)
	}
	// epoch 2: a deletion and a write before the pipe's start time (its file is not shipped)
	if _, err := p.src.Delete(tsfile.MustPattern("root.src.d1"), 0, 10); err != nil {
		t.Fatal(err)
	}
	writeRow(t, p.src, 5)
	if err := p.src.Flush(); err != nil {
		t.Fatal(err)
	}
	params := map[string]string{"realtime.mode": "batch", "start-time": "1000"}
	x := &Extractor{kind: "hybrid"}
	if err := x.Open(context.Background(), newEnv(p, params, nil)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var st []byte
	for _, want := range []pipe.Kind{pipe.KindTsFile, pipe.KindDeletion} {
		e, err := x.Next(ctx)
		if err != nil || e.Kind != want {
			t.Fatalf("want a %v event: %+v %v", want, e, err)
		}
		st = x.Committed(e) // the checkpoint is taken here
		e.Release()
	}
	x.Close()

	writeRow(t, p.src, 3000)
	x = &Extractor{kind: "hybrid"}
	if err := x.Open(context.Background(), newEnv(p, map[string]string{"realtime.mode": "stream", "start-time": "1000"}, st)); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for i := 0; i < 100; i++ {
		e, err := x.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil || e.Kind != pipe.KindTablet {
			if e != nil {
				e.Release()
			}
			continue
		}
		defer e.Release()
		if !e.Progress.CoversIndex(9, 100) {
			t.Fatalf("after the restart the progress %v lost origin 9's 100", e.Progress)
		}
		return
	}
	t.Fatal("no tablet after the restart")
}
