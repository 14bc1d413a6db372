package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The WAL a pipe had pinned before a restart, and what was not flushed, stays after the
// region opens again (Options.WALRetainAfterOpen), though the replayed epochs are flushed:
// a pipe resuming from index 1 reads it from the WAL. With the retention disabled, it is
// gone (the pipe would fall back to files).
func TestWALRetainedAfterOpen(t *testing.T) {
	for _, retain := range []time.Duration{0, -1} {
		dir := t.TempDir()
		r := openTest(t, dir)
		pin := r.PinWAL(1)
		for i := 0; i < 3; i++ {
			mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(i), float64(i)}))
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, r, tab(t, "root.db.d1", tempCol, []any{int64(3), 3.0})) // not flushed
		pin.Release()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		r = openTest(t, dir, func(o *Options) { o.WALRetainAfterOpen = retain })
		if err := r.Flush(); err != nil { // the replayed epoch
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sub := r.Subscribe(1)
		e, err := sub.Next(ctx)
		sub.Close()
		cancel()
		switch {
		case retain == 0 && (err != nil || e.Index != 1):
			t.Errorf("retained: entry 1 after reopen and flush: %v", err)
		case retain < 0 && !errors.Is(err, ErrCompacted):
			t.Errorf("not retained: want ErrCompacted, got %v", err)
		}
		if err == nil {
			e.Release()
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
