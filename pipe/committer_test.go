package pipe

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestCommitterProperty drives a committer like a task does (track in order, process in
// order, acks in random order, flushes that sometimes fail, snapshots for stateful
// chains) and checks after every step that the commit is a contiguous prefix of fully
// acked inputs, that nothing is released before a durable checkpoint covers it, and at
// the end that every event was released exactly once.
func TestCommitterProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		stateful := rapid.Bool().Draw(rt, "stateful")
		n := rapid.IntRange(0, 40).Draw(rt, "n")
		start := rapid.Uint64Range(0, 5).Draw(rt, "start")

		var committed []uint64
		var c *Committer
		c = NewCommitter(CommitterOptions{
			Start: Checkpoint{CommitID: start},
			Committed: func(e *Event) []byte {
				c.InFlight() // an extractor may ask for its backlog here: no deadlock
				committed = append(committed, e.CommitID)
				return []byte(strconv.FormatUint(e.CommitID, 10))
			},
			Stateful: stateful,
		})
		type input struct {
			ev    *Event
			outs  int
			acked int
		}
		var inputs []*input // by id - start - 1
		released := map[*Event]int{}
		owner := map[*Event]uint64{} // event → its input id
		newEvent := func() *Event {
			e := &Event{Kind: KindHeartbeat, Bytes: 10}
			e.OnRelease(func() { released[e]++ })
			return e
		}
		var pending []uint64 // acks to give, one per output
		processed := 0
		snapAt := uint64(0) // id that may be snapshotted now (stateful)
		var savedID uint64 = start
		var saved []Checkpoint

		check := func(closed bool) {
			for i, id := range committed {
				if id != start+uint64(i)+1 {
					rt.Fatalf("commit order %v does not continue %d", committed, start)
				}
				in := inputs[id-start-1]
				if in.acked < in.outs {
					rt.Fatalf("input %d committed with %d of %d outputs acked", id, in.acked, in.outs)
				}
			}
			// the prefix is maximal: the next input is not complete (processed and acked)
			if k := len(committed); k < processed && inputs[k].acked >= inputs[k].outs {
				rt.Fatalf("input %d complete but not committed (committed %v)", start+uint64(k)+1, committed)
			}
			for e, r := range released {
				if r > 1 {
					rt.Fatalf("event of input %d released %d times", owner[e], r)
				}
				if r == 1 && !closed && owner[e] > savedID {
					rt.Fatalf("event of input %d released before a durable checkpoint (saved %d)", owner[e], savedID)
				}
			}
		}

		flush := func(fail bool) {
			err := c.Flush(func(ck Checkpoint) error {
				if fail {
					return errors.New("disk full")
				}
				if stateful && ck.CommitID > start {
					if len(ck.ProcessorStates) != 1 || string(ck.ProcessorStates[0]) != strconv.FormatUint(ck.CommitID, 10) {
						rt.Fatalf("checkpoint at %d has processor states %q", ck.CommitID, ck.ProcessorStates)
					}
				}
				if ck.CommitID > start && string(ck.ExtractorState) != strconv.FormatUint(ck.CommitID, 10) {
					rt.Fatalf("checkpoint at %d has extractor state %q", ck.CommitID, ck.ExtractorState)
				}
				saved = append(saved, ck)
				savedID = ck.CommitID
				return nil
			})
			if !fail && err != nil {
				rt.Fatalf("flush: %v", err)
			}
		}

		process := func() {
			in := inputs[processed]
			id := in.ev.CommitID
			k := rapid.IntRange(0, 3).Draw(rt, "outputs")
			var owned []*Event
			for j := 0; j < k; j++ {
				if j == 0 && rapid.Bool().Draw(rt, "passThrough") {
					continue // the input itself is the first output
				}
				o := newEvent()
				o.CommitID = id
				owner[o] = id
				owned = append(owned, o)
			}
			// an intermediate event that a later processor dropped
			if rapid.IntRange(0, 4).Draw(rt, "intermediate") == 0 {
				o := newEvent()
				owner[o] = id
				owned = append(owned, o)
			}
			in.outs = k
			for j := 0; j < k; j++ {
				pending = append(pending, id)
			}
			processed++
			c.Processed(id, k, owned)
			snapAt = id
		}

		steps := rapid.IntRange(0, 200).Draw(rt, "steps")
		for s := 0; s < steps; s++ {
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0: // extract
				if len(inputs) < n {
					e := newEvent()
					id, err := c.Track(e)
					if err != nil || id != start+uint64(len(inputs))+1 || e.CommitID != id {
						rt.Fatalf("track: id %d, err %v", id, err)
					}
					owner[e] = id
					inputs = append(inputs, &input{ev: e})
				}
			case 1: // process
				if processed < len(inputs) {
					process()
				}
			case 2, 3: // ack one output
				if len(pending) > 0 {
					i := rapid.IntRange(0, len(pending)-1).Draw(rt, "ack")
					id := pending[i]
					pending = append(pending[:i], pending[i+1:]...)
					inputs[id-start-1].acked++
					if err := c.Ack(id); err != nil {
						rt.Fatal(err)
					}
				}
			case 4: // snapshot the processors right after an input
				if stateful && snapAt != 0 {
					c.Snapshot(snapAt, [][]byte{[]byte(strconv.FormatUint(snapAt, 10))})
					snapAt = 0
				}
			case 5:
				flush(rapid.IntRange(0, 3).Draw(rt, "saveFails") == 0)
			}
			check(false)
		}
		// finish: extract, process and ack everything, then a final flush
		for len(inputs) < n {
			e := newEvent()
			id, _ := c.Track(e)
			owner[e] = id
			inputs = append(inputs, &input{ev: e})
		}
		for processed < len(inputs) {
			process()
		}
		if stateful && snapAt != 0 {
			c.Snapshot(snapAt, [][]byte{[]byte(strconv.FormatUint(snapAt, 10))})
		}
		for len(pending) > 0 {
			i := rapid.IntRange(0, len(pending)-1).Draw(rt, "ack")
			id := pending[i]
			pending = append(pending[:i], pending[i+1:]...)
			inputs[id-start-1].acked++
			_ = c.Ack(id)
			check(false)
		}
		if ev, _ := c.InFlight(); ev != 0 {
			rt.Fatalf("%d events in flight after every ack", ev)
		}
		flush(false)
		check(false)
		if got := c.Durable(); got != start+uint64(n) {
			rt.Fatalf("durable commit id %d, want %d", got, start+uint64(n))
		}
		c.Close()
		check(true)
		for e := range owner {
			if released[e] != 1 {
				rt.Fatalf("event of input %d released %d times", owner[e], released[e])
			}
		}
		if len(committed) != n {
			rt.Fatalf("committed %d of %d", len(committed), n)
		}
	})
}

// TestCommitterCloseReleasesUncommitted checks that Close frees events in flight and
// committed events not yet durable, and ignores later acks.
func TestCommitterCloseReleasesUncommitted(t *testing.T) {
	var releases int
	c := NewCommitter(CommitterOptions{})
	for i := 0; i < 3; i++ {
		e := &Event{Kind: KindHeartbeat}
		e.OnRelease(func() { releases++ })
		if _, err := c.Track(e); err != nil {
			t.Fatal(err)
		}
	}
	c.Processed(1, 1, nil)
	c.Processed(2, 1, nil)
	if err := c.Ack(1); err != nil {
		t.Fatal(err)
	}
	if got := c.Committed().CommitID; got != 1 {
		t.Fatalf("committed %d, want 1", got)
	}
	if releases != 0 {
		t.Fatalf("%d released before a durable checkpoint", releases)
	}
	c.Close()
	if releases != 3 {
		t.Fatalf("close released %d of 3", releases)
	}
	_ = c.Ack(2, 3)
	if _, err := c.Track(&Event{}); !errors.Is(err, ErrCommitterClosed) {
		t.Fatalf("track after close: %v", err)
	}
	if err := c.WaitRoom(context.Background(), 1); !errors.Is(err, ErrCommitterClosed) {
		t.Fatalf("wait room after close: %v", err)
	}
}

func TestCommitterStrayAcksAndWaitRoom(t *testing.T) {
	c := NewCommitter(CommitterOptions{Start: Checkpoint{CommitID: 10}})
	e := &Event{Kind: KindHeartbeat}
	id, _ := c.Track(e)
	if id != 11 {
		t.Fatalf("first id %d, want 11", id)
	}
	_ = c.Ack(3, 99)
	if c.StrayAcks() != 2 {
		t.Fatalf("stray acks %d", c.StrayAcks())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.WaitRoom(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait room with one in flight, max 1: %v", err)
	}
	c.Processed(id, 0, nil) // dropped by the processors: commits at once
	if err := c.WaitRoom(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if ck := c.Committed(); ck.CommitID != 11 || ck.CommittedEvents != 1 {
		t.Fatalf("committed %+v", ck)
	}
	c.Close()
}

func TestCommitterCommittedPanicFails(t *testing.T) {
	c := NewCommitter(CommitterOptions{Committed: func(*Event) []byte { panic("kaboom") }})
	id, _ := c.Track(&Event{Kind: KindHeartbeat})
	c.Processed(id, 1, nil)
	err := c.Ack(id)
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Value != "kaboom" {
		t.Fatalf("ack: %v", err)
	}
	c.Close()
}
