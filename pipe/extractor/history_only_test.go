package extractor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A pipe with realtime.enable=false ships what its region held when it started, also when
// it resumes (after a restart) from its saved state: not the writes made since.
func TestHistoryOnlyStopsAtItsStartAcrossRestart(t *testing.T) {
	p := openPair(t, 64<<20)
	defer p.close()
	params := map[string]string{"realtime.enable": "false", "realtime.mode": "stream"}
	writeRows(t, p.src, 4) // history: indexes 1..4
	x := &Extractor{kind: "hybrid"}
	if err := x.Open(context.Background(), newEnv(p, params, nil)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var st []byte
	for i := uint64(1); i <= 2; i++ { // the task commits part of the history, then stops
		e, err := x.Next(ctx)
		if err != nil || e.MaxIndex != i {
			t.Fatalf("event %d: %v %v", i, e, err)
		}
		st = x.Committed(e)
		e.Release()
	}
	x.Close()
	writeRows(t, p.src, 3) // realtime: indexes 5..7, not to be shipped

	x = &Extractor{kind: "hybrid"}
	if err := x.Open(context.Background(), newEnv(p, params, st)); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for i := uint64(3); i <= 4; i++ {
		e, err := x.Next(ctx)
		if err != nil || e.MaxIndex != i {
			t.Fatalf("after the restart, event %d: %v %v", i, e, err)
		}
		x.Committed(e)
		e.Release()
	}
	// the history is done: Next waits for its context and ships nothing more
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if e, err := x.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		if e != nil {
			defer e.Release()
			t.Fatalf("shipped index %d..%d, written after the pipe started (%v)", e.MinIndex, e.MaxIndex, e.Kind)
		}
		t.Fatalf("next: %v", err)
	}
}
