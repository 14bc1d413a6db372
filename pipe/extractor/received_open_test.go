package extractor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
)

// receiveInto seals a one-row file on another region and loads it into dst.
func receiveInto(t *testing.T, other, dst *engine.Region, ts int64) engine.FileInfo {
	t.Helper()
	writeRow(t, other, ts)
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	fs := other.Files()
	f := fs[len(fs)-1]
	info, err := dst.LoadFile(other.FilePath(f.Name), f.Progress)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// nextData returns the next event that is not a heartbeat (bounded), or nil when none comes
// within wait.
func nextData(t *testing.T, x *Extractor, wait time.Duration) *pipe.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i := 0; i < 10000; i++ {
		e, err := x.Next(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			continue
		}
		if e.Kind == pipe.KindHeartbeat {
			e.Release()
			continue
		}
		return e
	}
	t.Fatal("no event")
	return nil
}

// A task without history opens while the region takes a local write and then a file from
// another replica: the write comes after the task's position, so it ships, and so must
// the file placed after it (it was lost: the task counted it among the files that
// predate it).
func TestNoHistoryShipsFileReceivedWhileOpening(t *testing.T) {
	p := openPair(t, 0)
	defer p.close()
	other := otherRegion(t)
	writeRow(t, p.src, 1) // history, not shipped
	var f engine.FileInfo
	testHookOpen = func() {
		writeRow(t, p.src, 2)
		f = receiveInto(t, other, p.src, 3)
	}
	x := &Extractor{kind: "wal"}
	err := x.Open(context.Background(), newEnv(p, map[string]string{"history.enable": "false"}, nil))
	testHookOpen = nil
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	e := nextData(t, x, 10*time.Second)
	if e == nil || e.MinIndex != 2 {
		t.Fatalf("first event %+v, want the local write 2", e)
	}
	e.Release()
	e = nextData(t, x, time.Second)
	if e == nil {
		t.Fatalf("the file %s received after the shipped write 2 never came", f.Name)
	}
	defer e.Release()
	if !e.FromReceivedFile() || e.File.Info.Name != f.Name || e.MaxIndex != 2 {
		t.Fatalf("got %v %d..%d, want the received file %s after index 2", e.Kind, e.MinIndex, e.MaxIndex, f.Name)
	}
}

// A task with realtime disabled ships what its region held when it started: after a
// restart, not a file the region received since (it did).
func TestHistoryOnlySkipsFileReceivedAfterStartAcrossRestart(t *testing.T) {
	p := openPair(t, 0)
	defer p.close()
	other := otherRegion(t)
	params := map[string]string{"realtime.enable": "false", "realtime.mode": "stream"}
	writeRow(t, p.src, 1)
	before := receiveInto(t, other, p.src, 2) // held at the start: shipped
	writeRow(t, p.src, 3)                     // index 2
	x := &Extractor{kind: "hybrid"}
	if err := x.Open(context.Background(), newEnv(p, params, nil)); err != nil {
		t.Fatal(err)
	}
	e := nextData(t, x, 10*time.Second)
	if e == nil || e.MaxIndex != 1 || e.FromReceivedFile() {
		t.Fatalf("first event %+v, want the write 1", e)
	}
	st := x.Committed(e)
	e.Release()
	x.Close()
	after := receiveInto(t, other, p.src, 4) // after the start: not shipped
	writeRow(t, p.src, 5)                    // index 3: not shipped

	x = &Extractor{kind: "hybrid"}
	if err := x.Open(context.Background(), newEnv(p, params, st)); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var names []string
	for i := 0; i < 10; i++ {
		e := nextData(t, x, 500*time.Millisecond)
		if e == nil {
			break
		}
		if e.FromReceivedFile() {
			names = append(names, e.File.Info.Name)
			if e.File.Info.Name == after.Name {
				t.Errorf("shipped %s, received after the task started (at %d)", after.Name, e.MaxIndex)
			}
		} else if e.MaxIndex > 2 {
			t.Errorf("shipped index %d, written after the task started", e.MaxIndex)
		}
		x.Committed(e)
		e.Release()
	}
	if len(names) == 0 || names[0] != before.Name {
		t.Fatalf("received files shipped %v, want %s", names, before.Name)
	}
}
