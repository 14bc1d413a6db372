package kafka

import (
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
)

// receiveRows writes tablets of fresh rows into other (another replica's region), seals
// them into a file and loads that file into r, as a replication pipe into r's node would.
func receiveRows(t testing.TB, r, other *engine.Region, rng *rand.Rand, next map[string]int64, tablets int) {
	t.Helper()
	writeRows(t, other, rng, next, tablets)
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	fs := other.Files()
	f := fs[len(fs)-1]
	if _, err := r.LoadFile(other.FilePath(f.Name), f.Progress); err != nil {
		t.Fatal(err)
	}
}

// waitShipped waits until the pipe has caught up and its committed progress covers every
// origin's progress in r. (Its lag counts local writes only: files received after the
// last local write are not in it.)
func waitShipped(t testing.TB, m *pipe.Manager, r *engine.Region) pipe.Status {
	t.Helper()
	want := pipe.ProgressIndex(r.Progress())
	st, ok := pipetest.WaitStatus(t, m, "export", time.Minute, func(st pipe.Status) bool {
		if !pipetest.CaughtUp(st) || len(st.Regions) != 1 {
			return false
		}
		got, err := pipe.ParseProgress(st.Regions[0].Progress)
		return err == nil && got.Covers(want)
	})
	if !ok {
		t.Fatalf("pipe export did not ship %v: %+v", want, st)
	}
	return st
}

// TestPipeFilesReceivedWhileRunning: the source region receives sealed files from another
// replica while the pipe runs, between local writes, while sends crash at random steps,
// the pipe is stopped and started and the node restarts. A forwarding source ships each
// file after the local write that preceded its listing, at the same place on every
// replay, so a read_committed consumer sees every point of the source exactly once
// (exactly-once), or at least once (at-least-once).
func TestPipeFilesReceivedWhileRunning(t *testing.T) {
	for _, tc := range []struct {
		name, source, delivery string
		flush                  bool
	}{
		{"wal", "wal", ExactlyOnce, false},
		{"wal-flushed", "wal", ExactlyOnce, true},
		{"tsfile", "tsfile", ExactlyOnce, true},
		{"hybrid", "hybrid", ExactlyOnce, true},
		{"at-least-once", "wal", AtLeastOnce, true},
	} {
		t.Run(tc.name, func(t *testing.T) { runReceivedUnderCrashes(t, tc.source, tc.delivery, tc.flush) })
	}
}

func runReceivedUnderCrashes(t *testing.T, source, delivery string, flush bool) {
	addr, rng, f, dir, n := startCrashRun(t, source, delivery, flush)
	other := pipetest.OpenRegion(t, engine.Options{Dir: filepath.Join(dir, "other"), Name: "other", Origin: 9,
		Durability: wal.Batch, FlushAge: -1, MemtableSize: 1 << 30})
	defer other.Close()
	next := map[string]int64{} // one time line per device across both regions: every row is fresh
	received, retries := 0, int64(0)
	// ops writes locally and receives files, in random order
	ops := func(k int) {
		for i := 0; i < k; i++ {
			switch rng.Intn(5) {
			case 0, 1:
				receiveRows(t, n.src, other, rng, next, 1+rng.Intn(3))
				received++
			case 2:
				if flush {
					if err := n.src.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				fallthrough
			default:
				writeRows(t, n.src, rng, next, 1+rng.Intn(4))
			}
		}
	}
	for round := 0; round < 8; round++ {
		ops(7)
		switch rng.Intn(3) {
		case 0: // the pipe catches up (through the faults); a tsfile source waits for the seal
			if flush {
				if err := n.src.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			retries += waitShipped(t, n.mgr, n.src).Retries
		case 1:
			if err := n.mgr.Stop("export"); err != nil {
				t.Fatal(err)
			}
			ops(3)
			if err := n.mgr.Start("export"); err != nil {
				t.Fatal(err)
			}
		}
		if round == 4 { // the whole node restarts; the pipe resumes from its durable progress
			n.close()
			n = openNode(t, dir, flush)
		}
	}
	f.set(0)
	if flush {
		if err := n.src.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	st := waitShipped(t, n.mgr, n.src)
	retries += st.Retries
	want := sourceDigest(t, n.src)
	n.close()
	recs := consume(t, addr, "x.root.src")
	t.Logf("%s %s: %d points (%d files received), %d records, %d retries, %d carrier switches, faults %v",
		source, delivery, want.Points, received, len(recs), retries, st.Switches, f.hits)
	checkConsumed(t, recs, want, delivery == ExactlyOnce)
}
