package pipe

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Checkpoint is a task's committed position: what its progress file holds. Restarting from
// a checkpoint redelivers everything after CommitID (at-least-once).
type Checkpoint struct {
	// Progress is the merge of the progress of every committed event.
	Progress ProgressIndex `json:"progress"`
	// ExtractorState is what the extractor's Committed returned for the last committed event.
	ExtractorState []byte `json:"extractor_state,omitempty"`
	// ProcessorStates holds, per processor of the chain, what SaveState returned (nil for a
	// processor without state), consistent with CommitID: they reflect exactly the events up
	// to CommitID.
	ProcessorStates [][]byte `json:"processor_states,omitempty"`
	// CommitID is the commit id of the last committed event; the next run's ids start after it.
	CommitID uint64 `json:"commit_id"`
	// MaxIndex is the highest local WAL index of a committed event (for lag in events).
	MaxIndex uint64 `json:"max_index,omitempty"`
	// Committed counts events, bytes and points committed over the pipe's life.
	CommittedEvents int64 `json:"committed_events"`
	CommittedBytes  int64 `json:"committed_bytes"`
	CommittedPoints int64 `json:"committed_points"`
	// Updated is when the checkpoint was taken.
	Updated time.Time `json:"updated"`
}

// StatefulProcessor is a processor whose state is saved with the pipe's progress and
// restored (after Open) when its task restarts. The saved state always reflects exactly the
// events up to the checkpoint's commit id: the task takes a snapshot between two events.
type StatefulProcessor interface {
	SaveState() ([]byte, error)
	LoadState([]byte) error
}

type commitEntry struct {
	ev    *Event
	owned []*Event // other events to release with ev: processor outputs and intermediates
	want  int      // acks expected (final outputs); -1 until the processors are done with ev
	acked int
	snap  [][]byte // processor states right after ev was processed (stateful chains)
	isSnp bool
}

func (e *commitEntry) complete() bool { return e.want >= 0 && e.acked >= e.want }

// Committer tracks a task's events by commit id from extraction to commit. Connector acks
// may arrive in any order; the commit advances over the contiguous fully acked prefix only,
// calling the extractor's Committed in order for each event of it. Committed events are
// released (their pins freed) only after a checkpoint covering them is durable (Flush).
//
// An input event whose processors emit several outputs is complete when every output has
// been acked (Ack takes one id per acked output, and outputs carry their input's id); an
// input with zero outputs is complete as soon as Processed says so, and commits when its
// turn comes.
//
// The extractor's Committed is called without the committer's lock held (it may call
// Env.Pending), by one goroutine at a time, in commit order.
type Committer struct {
	mu        sync.Mutex
	committed func(*Event) []byte
	onCommit  func(points, bytes int64)
	stateful  bool
	next      uint64         // id that Track assigns next
	head      uint64         // id of q[0]: the lowest id not complete-and-in-order
	q         []*commitEntry // tracked, not yet a complete prefix; by id
	ready     []*commitEntry // the complete prefix (ids head-len(ready) ... head-1), Committed not yet called
	inBytes   int64          // bytes of ready and q
	running   Checkpoint     // after the committed prefix; its Progress is updated in place
	ckpt      Checkpoint     // what Flush saves: the last consistent boundary ≤ running
	ckptLive  bool           // the checkpoint is running itself (copied when read)
	unsaved   []*commitEntry // committed, waiting for a durable checkpoint to be released
	savedID   uint64         // CommitID of the last durable checkpoint
	room      chan struct{}  // closed (and replaced) whenever events leave flight
	err       error          // first failure (the extractor's Committed panicked)
	closed    bool
	strayAcks int64

	deliverMu sync.Mutex // one goroutine calls Committed at a time; Close waits for it
	flushMu   sync.Mutex // one Flush at a time
}

// CommitterOptions configure a Committer.
type CommitterOptions struct {
	// Start is the durable checkpoint the task resumes from: ids continue after its CommitID.
	Start Checkpoint
	// Committed is the extractor's Committed; it is called in commit order from whichever
	// goroutine completed the prefix (an ack or Processed), without the committer's lock.
	Committed func(*Event) []byte
	// OnCommit, if set, is called after each committed event with its points and bytes
	// (statistics), in order.
	OnCommit func(points, bytes int64)
	// Stateful says that some processor keeps state: then a checkpoint can only be taken
	// at an event after which the processors' states were snapshotted (see Snapshot).
	Stateful bool
}

// NewCommitter returns a committer resuming after o.Start.
func NewCommitter(o CommitterOptions) *Committer {
	o.Start.Progress = o.Start.Progress.Clone()
	if o.Start.Progress == nil {
		o.Start.Progress = ProgressIndex{}
	}
	c := &Committer{
		committed: o.Committed,
		onCommit:  o.OnCommit,
		stateful:  o.Stateful,
		next:      o.Start.CommitID + 1,
		head:      o.Start.CommitID + 1,
		running:   o.Start,
		ckpt:      o.Start,
		savedID:   o.Start.CommitID,
		room:      make(chan struct{}),
	}
	return c
}

// ErrCommitterClosed is returned by Track after Close.
var ErrCommitterClosed = errors.New("committer closed")

// Track assigns e the next commit id and starts tracking it. It fails only after Close.
func (c *Committer) Track(e *Event) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrCommitterClosed
	}
	id := c.next
	c.next++
	e.CommitID = id
	c.q = append(c.q, &commitEntry{ev: e, want: -1})
	c.inBytes += e.Bytes
	return id, nil
}

// entry finds the entry of id among the tracked ones not yet committed.
func (c *Committer) entry(id uint64) *commitEntry {
	if id >= c.head {
		if id-c.head < uint64(len(c.q)) {
			return c.q[id-c.head]
		}
		return nil
	}
	if back := c.head - id; back <= uint64(len(c.ready)) {
		return c.ready[uint64(len(c.ready))-back]
	}
	return nil
}

// Processed records that the processors are done with input id: outputs acks are expected
// (one per final output event, each carrying id), and owned are the other events produced
// on the way (outputs and intermediates, excluding the input) to release with it.
func (c *Committer) Processed(id uint64, outputs int, owned []*Event) {
	c.mu.Lock()
	en := c.entry(id)
	if en == nil || en.want >= 0 {
		c.mu.Unlock()
		return
	}
	en.want, en.owned = outputs, owned
	c.advanceLocked()
	c.mu.Unlock()
	c.deliver()
}

// Snapshot records the processors' states right after input id was processed (and before
// the next input was): the checkpoint may then be taken at id.
func (c *Committer) Snapshot(id uint64, states [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if en := c.entry(id); en != nil {
		en.snap, en.isSnp = states, true
		return
	}
	// Already committed: then nothing after id was processed yet, so the prefix ends at id.
	if id == c.running.CommitID {
		c.ckpt, c.ckptLive = c.runningCopyLocked(), false
		c.ckpt.ProcessorStates = states
	}
}

// Ack acknowledges one output of each id given (ids may repeat, in any order). Unknown
// and already committed ids are ignored (counted as stray). It returns the committer's
// failure, if any.
func (c *Committer) Ack(ids ...uint64) error {
	c.mu.Lock()
	if c.closed {
		defer c.mu.Unlock()
		return c.err
	}
	for _, id := range ids {
		if id < c.head || id-c.head >= uint64(len(c.q)) {
			c.strayAcks++
			continue
		}
		c.q[id-c.head].acked++
	}
	c.advanceLocked()
	c.mu.Unlock()
	c.deliver()
	return c.Err()
}

// advanceLocked moves the complete prefix of q to ready.
func (c *Committer) advanceLocked() {
	n := 0
	for n < len(c.q) && c.q[n].complete() {
		n++
	}
	if n == 0 {
		return
	}
	c.ready = append(c.ready, c.q[:n]...)
	clear(c.q[:n])
	c.q = c.q[n:]
	c.head += uint64(n)
	if len(c.q) == 0 {
		c.q = nil // let the backing array go
	}
}

// deliver calls Committed for the ready entries, in order, and commits them.
func (c *Committer) deliver() {
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	for {
		c.mu.Lock()
		if c.closed || c.err != nil || len(c.ready) == 0 {
			c.mu.Unlock()
			return
		}
		batch := c.ready[:len(c.ready):len(c.ready)] // only this goroutine removes from ready
		c.mu.Unlock()

		states := make([][]byte, 0, len(batch))
		var failed error
		for _, en := range batch {
			var state []byte
			if c.committed != nil {
				var err error
				if state, err = c.callCommitted(en.ev); err != nil {
					failed = err
					break
				}
			}
			states = append(states, state)
		}

		// the figures of committed events are taken under c.mu: once it is unlocked a save
		// may release the events
		type figures struct{ points, bytes int64 }
		done := make([]figures, 0, len(states))
		c.mu.Lock()
		for _, state := range states {
			en := c.ready[0] // == batch[i]; batch shares ready's array, cleared here
			c.ready[0] = nil
			c.ready = c.ready[1:]
			c.commitLocked(en, state)
			done = append(done, figures{safePoints(en.ev), en.ev.Bytes})
		}
		if len(c.ready) == 0 {
			c.ready = nil
		}
		if failed != nil && c.err == nil {
			c.err = failed
		}
		close(c.room)
		c.room = make(chan struct{})
		c.mu.Unlock()
		if c.onCommit != nil {
			for _, f := range done {
				c.onCommit(f.points, f.bytes)
			}
		}
	}
}

func (c *Committer) commitLocked(en *commitEntry, state []byte) {
	e := en.ev
	c.inBytes -= e.Bytes
	if c.committed != nil {
		c.running.ExtractorState = state
	}
	for o, v := range e.Progress {
		if v > c.running.Progress[o] {
			c.running.Progress[o] = v
		}
	}
	c.running.CommitID = e.CommitID
	if e.MaxIndex > c.running.MaxIndex {
		c.running.MaxIndex = e.MaxIndex
	}
	c.running.CommittedEvents++
	c.running.CommittedBytes += e.Bytes
	c.running.CommittedPoints += safePoints(e)
	if !c.stateful {
		c.ckptLive = true
	} else if en.isSnp {
		c.ckpt, c.ckptLive = c.runningCopyLocked(), false
		c.ckpt.ProcessorStates = en.snap
	}
	en.snap = nil
	c.unsaved = append(c.unsaved, en)
}

func (c *Committer) runningCopyLocked() Checkpoint {
	ck := c.running
	ck.Progress = ck.Progress.Clone()
	return ck
}

func (c *Committer) callCommitted(e *Event) (state []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError("extractor Committed", r)
		}
	}()
	return c.committed(e), nil
}

// safePoints counts e's points, tolerating events without their payload.
func safePoints(e *Event) int64 {
	switch {
	case e.Kind == KindTablet && e.Tablet != nil:
		return int64(e.Tablet.Points())
	case e.Kind == KindTsFile && e.File != nil:
		return e.File.Info.Points
	}
	return 0
}

// WaitRoom blocks while max or more events are in flight (tracked, not committed), until
// ctx ends. max <= 0 means no limit.
func (c *Committer) WaitRoom(ctx context.Context, max int) error {
	if max <= 0 {
		return nil
	}
	for {
		c.mu.Lock()
		n, room, closed := len(c.q)+len(c.ready), c.room, c.closed
		c.mu.Unlock()
		if closed {
			return ErrCommitterClosed
		}
		if n < max {
			return nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Flush saves the latest consistent checkpoint with save (unless it is already durable)
// and then releases the committed events it covers. On a save error nothing is released.
func (c *Committer) Flush(save func(Checkpoint) error) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	ck := c.ckpt
	if c.ckptLive {
		ck = c.runningCopyLocked()
	}
	if ck.CommitID == c.savedID {
		c.mu.Unlock()
		return nil
	}
	k := 0
	for k < len(c.unsaved) && c.unsaved[k].ev.CommitID <= ck.CommitID {
		k++
	}
	c.mu.Unlock()
	ck.Updated = time.Now().UTC()
	if err := save(ck); err != nil {
		return err
	}
	c.mu.Lock()
	c.savedID = ck.CommitID
	done := c.unsaved[:k:k]
	c.unsaved = c.unsaved[k:]
	if len(c.unsaved) == 0 {
		c.unsaved = nil
	}
	c.mu.Unlock()
	for _, en := range done {
		releaseEntry(en)
	}
	return nil
}

func releaseEntry(en *commitEntry) {
	for _, o := range en.owned {
		o.Release()
	}
	en.ev.Release()
}

// Close stops tracking and releases every event still held: uncommitted ones (they will
// be redelivered from the durable progress) and committed ones not covered by a durable
// checkpoint (likewise). Call Flush first to keep what was committed. Acks after Close are
// ignored.
func (c *Committer) Close() {
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	rest := append(append(c.unsaved, c.ready...), c.q...)
	c.unsaved, c.ready, c.q = nil, nil, nil
	c.inBytes = 0
	close(c.room)
	c.mu.Unlock()
	for _, en := range rest {
		releaseEntry(en)
	}
}

// Err returns the committer's failure (the extractor's Committed panicked), if any.
func (c *Committer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// InFlight returns the events tracked and not yet committed, and their bytes.
func (c *Committer) InFlight() (events int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.q) + len(c.ready), c.inBytes
}

// Unreleased returns the committed events waiting for a durable checkpoint.
func (c *Committer) Unreleased() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unsaved)
}

// OldestEventTime returns the EventTime (unix ms) of the oldest uncommitted event.
func (c *Committer) OldestEventTime() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case len(c.ready) > 0:
		return c.ready[0].ev.EventTime, true
	case len(c.q) > 0:
		return c.q[0].ev.EventTime, true
	}
	return 0, false
}

// Committed returns the checkpoint after the committed prefix (possibly not durable yet).
func (c *Committer) Committed() Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningCopyLocked()
}

// Durable returns the commit id of the last checkpoint saved by Flush (or the start).
func (c *Committer) Durable() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.savedID
}

// StrayAcks counts acks of unknown or already committed ids.
func (c *Committer) StrayAcks() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.strayAcks
}

// PanicError is a panic of a plugin, recovered: the task fails with it instead of the
// process.
type PanicError struct {
	Where string // e.g. "processor filter[0] Process"
	Value any
	Stack string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%s panicked: %v\n%s", e.Where, e.Value, e.Stack)
}

func newPanicError(where string, v any) *PanicError {
	return &PanicError{Where: where, Value: v, Stack: string(debug.Stack())}
}
