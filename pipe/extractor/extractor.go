// Package extractor holds the built-in extractors: wal (tablets from the write stream),
// tsfile (sealed files) and hybrid (tablets, degrading to files when the consumer falls
// behind, through the adaptive carrier selector).
//
// All three are one state machine over the region's WAL index: a position (the last index
// shipped), a carrier, and a selector. Epochs (memtables) cover contiguous index ranges and
// each sealed file covers one epoch, so "ship the file holding position+1" and "stream the
// WAL from position+1" can be interleaved at any point without losing a write; a file that
// follows tablets of its own epoch (BOTH) is redelivery that the receiver's progress skips.
package extractor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// EpochCarrier records how an epoch was shipped.
type EpochCarrier uint8

// What was shipped of an epoch.
const (
	EpochEmpty  EpochCarrier = 0
	EpochTablet EpochCarrier = 1
	EpochFile   EpochCarrier = 2
	EpochBoth   EpochCarrier = 3
)

func (c EpochCarrier) String() string {
	return [...]string{"EMPTY", "TABLET", "TSFILE", "BOTH"}[c&3]
}

var commonParams = []pipe.ParamSpec{
	{Key: "pattern", Type: pipe.PatternParam, Default: "root.**", Doc: "path pattern of the series to ship"},
	{Key: "start-time", Type: pipe.TimeParam, Doc: "ship points at or after this time (unix ms or RFC 3339)"},
	{Key: "end-time", Type: pipe.TimeParam, Doc: "ship points at or before this time"},
	{Key: "history.enable", Type: pipe.Bool, Default: "true", Doc: "ship what the region held before the pipe was created"},
	{Key: "realtime.enable", Type: pipe.Bool, Default: "true", Doc: "ship writes made after the pipe was created"},
	{Key: "forwarding", Type: pipe.Bool, Default: "true", Doc: "also ship writes that arrived by replication (false for consensus pipes, so nothing loops back)"},
}

var selectorParams = []pipe.ParamSpec{
	{Key: "realtime.mode", Type: pipe.Enum, Enum: []string{"hybrid", "stream", "batch"}, Default: "hybrid", Doc: "hybrid: adaptive; stream: always tablets (like wal); batch: always files (like tsfile)"},
	{Key: "selector.max-pending-events", Type: pipe.Int, Default: "1000", Min: pipe.MinOf(1), Doc: "degrade to files when this many events are queued towards the sink"},
	{Key: "selector.max-wal-bytes", Type: pipe.Bytes, Default: "64MiB", Min: pipe.MinOf(1), Doc: "degrade to files when the pipe is this many WAL bytes behind"},
	{Key: "selector.max-lag", Type: pipe.Duration, Default: "30s", Min: pipe.MinOf(0.001), Doc: "degrade to files when the oldest unshipped write is this old"},
	{Key: "selector.resume-ratio", Type: pipe.Float, Default: "0.25", Min: pipe.MinOf(0), Doc: "return to tablets when pending events fall to this fraction of the limit and no sealed file waits"},
}

func init() {
	pipe.RegisterExtractor(pipe.PluginInfo{Name: "wal", Doc: "Realtime tablets from the region's write stream; reads WAL segments from disk when behind (pinning them) and sealed files for history no longer in the WAL.", Params: commonParams},
		func() pipe.Extractor { return &Extractor{kind: "wal"} })
	pipe.RegisterExtractor(pipe.PluginInfo{Name: "tsfile", Doc: "Sealed TsFiles: the history files, then each file as it is sealed. Lag is about the flush interval; no WAL is pinned.", Params: commonParams},
		func() pipe.Extractor { return &Extractor{kind: "tsfile"} })
	pipe.RegisterExtractor(pipe.PluginInfo{Name: "hybrid", Aliases: []string{"iotdb"}, Doc: "Tablets while the sink keeps up; the adaptive carrier selector degrades to sealed files when it falls behind and returns to tablets when it has caught up.", Params: append(append([]pipe.ParamSpec{}, commonParams...), selectorParams...)},
		func() pipe.Extractor { return &Extractor{kind: "hybrid"} })
}

// Extractor is the wal, tsfile and hybrid extractor (kind says which).
type Extractor struct {
	kind string
	env  *pipe.Env
	r    *engine.Region
	log  *slog.Logger
	mem  memory.Allocator
	sel  Selector

	pattern    tsfile.Pattern
	allSeries  bool
	minT, maxT int64
	forwarding bool
	realtime   bool
	stopAt     uint64 // with realtime disabled: the last index to ship

	seal   chan struct{}
	unseal func()

	// extraction side (Next's goroutine)
	pos      uint64
	sub      *engine.Subscription
	cum      pipe.ProgressIndex
	skipTo   pipe.ProgressIndex // MovedState's: what another replica already shipped
	recv     []engine.FileInfo  // files received from other replicas to ship, by version, not yet passed
	withRecv bool               // the task ships the received files the region holds (kept in its state across restarts)
	liveRecv bool               // the task ships the files the region receives after it opened (forwarding, realtime)
	recvSeen uint64             // the region's ReceivedSeq when x.recv was last filled
	recvFrom uint64             // received files with a Seq up to this predate the task (StartState)
	fresh    bool               // the position or stopAt was taken from the region at this Open (StartState saves it)
	queue    []*pipe.Event
	skipped  int
	checkAt  time.Time
	checkN   int

	mu         sync.Mutex // guards what Committed and Status share with Next
	carrier    Carrier
	committed  uint64
	commitProg pipe.ProgressIndex
	walPin     *engine.Pin
	switches   int64
	lastSwitch string
	tabletB    int64
	fileB      int64
	epochs     map[uint64]EpochCarrier
}

type state struct {
	Pos      uint64             `json:"pos"`
	Progress pipe.ProgressIndex `json:"progress"`
	// Skip, when set, is progress made on another replica of the region (the pipe moved
	// here with the region's leadership): entries and files it covers are not shipped.
	Skip pipe.ProgressIndex `json:"skip,omitempty"`
	// Received says the task ships the files its replica received (those its progress
	// does not cover), so that it goes on doing so after a restart.
	Received bool `json:"received,omitempty"`
	// Stop is, with realtime disabled, the last index to ship: what the region held when
	// the task first opened (kept, so that a restart does not ship the writes made since).
	Stop *uint64 `json:"stop,omitempty"`
	// RecvFrom is the region's ReceivedSeq when the task first opened: a task that does not
	// ship the region's received files (Received false) ships those listed after it only.
	RecvFrom uint64 `json:"recv_from,omitempty"`
}

// MovedState is the extractor state that resumes a region's task on another replica of
// the region from progress made on the old one: local positions differ between replicas,
// so it starts at the beginning and skips every write (by origin and origin index) and
// every file that progress covers. A file partly covered is shipped whole (at-least-once).
func MovedState(progress pipe.ProgressIndex) []byte {
	b, _ := json.Marshal(state{Progress: progress.Clone(), Skip: progress.Clone()})
	return b
}

// StartState is the extractor state of a new task that ships what its region takes after
// index pos, progress being what the region held then (a replication pipe to a follower
// known to hold all of it: set when the pipe is created, not when its task gets to open,
// which may be after the region took more).
func StartState(pos uint64, progress pipe.ProgressIndex) []byte {
	b, _ := json.Marshal(state{Pos: pos, Progress: progress.Clone()})
	return b
}

// Open implements pipe.Extractor.
func (x *Extractor) Open(ctx context.Context, env *pipe.Env) error {
	if env.Region == nil {
		return errors.New("extractor: no region")
	}
	x.env, x.r, x.mem = env, env.Region, memory.DefaultAllocator
	x.log = env.Logger
	if x.log == nil {
		x.log = slog.Default()
	}
	p := env.Params
	x.pattern = p.Pattern("pattern")
	x.allSeries = x.pattern.IsZero() || x.pattern.String() == "root.**"
	x.minT, x.maxT = math.MinInt64, math.MaxInt64
	if v, ok := p.Time("start-time"); ok {
		x.minT = v
	}
	if v, ok := p.Time("end-time"); ok {
		x.maxT = v
	}
	if x.minT > x.maxT {
		return fmt.Errorf("source: start-time %d is after end-time %d", x.minT, x.maxT)
	}
	x.forwarding = true
	if _, ok := p.Raw("forwarding"); ok {
		x.forwarding = p.Bool("forwarding")
	}
	x.realtime = true
	if _, ok := p.Raw("realtime.enable"); ok {
		x.realtime = p.Bool("realtime.enable")
	}
	history := true
	if _, ok := p.Raw("history.enable"); ok {
		history = p.Bool("history.enable")
	}
	switch x.kind {
	case "wal":
		x.sel, x.carrier = Always(Tablet), Tablet
	case "tsfile":
		x.sel, x.carrier = Always(File), File
	default:
		switch p.String("realtime.mode") {
		case "stream":
			x.sel, x.carrier = Always(Tablet), Tablet
		case "batch":
			x.sel, x.carrier = Always(File), File
		default:
			th := Threshold{MaxPendingEvents: 1000, MaxWALBytes: 64 << 20, MaxLag: 30 * time.Second, ResumeRatio: 0.25}
			if _, ok := p.Raw("selector.max-pending-events"); ok {
				th.MaxPendingEvents = int(p.Int("selector.max-pending-events"))
			}
			if _, ok := p.Raw("selector.max-wal-bytes"); ok {
				th.MaxWALBytes = p.Bytes("selector.max-wal-bytes")
			}
			if _, ok := p.Raw("selector.max-lag"); ok {
				th.MaxLag = p.Duration("selector.max-lag")
			}
			if _, ok := p.Raw("selector.resume-ratio"); ok {
				th.ResumeRatio = p.Float("selector.resume-ratio")
			}
			x.sel, x.carrier = th, Tablet
		}
	}
	x.epochs = map[uint64]EpochCarrier{}
	x.cum = pipe.ProgressIndex{}
	// the received files listed up to now have a place at or before the position (or
	// stopAt) taken below from the region: one listed later, at or after it
	seqBefore := x.r.ReceivedSeq()
	stopTaken := false // stopAt is taken from the region at this Open
	if len(env.State) > 0 {
		var st state
		if err := json.Unmarshal(env.State, &st); err != nil {
			return fmt.Errorf("extractor state: %w", err)
		}
		x.pos, x.cum, x.skipTo, x.withRecv, x.recvFrom = st.Pos, st.Progress, st.Skip, st.Received, st.RecvFrom
		if x.cum == nil {
			x.cum = pipe.ProgressIndex{}
		}
	} else if !history {
		x.pos = x.r.LastIndex()
		x.fresh = true
	}
	if !x.realtime {
		x.stopAt = x.r.LastIndex()
		if len(env.State) > 0 {
			var st state
			_ = json.Unmarshal(env.State, &st) // it parsed above
			if st.Stop != nil {
				x.stopAt = *st.Stop
			} else {
				stopTaken = true
			}
		} else {
			x.fresh = true
			stopTaken = true
		}
	}
	x.committed, x.commitProg = x.pos, x.cum.Clone()
	if testHookOpen != nil {
		testHookOpen()
	}
	x.withRecv = x.forwarding && (x.withRecv || len(x.skipTo) > 0 || len(env.State) == 0 && history)
	x.liveRecv = x.forwarding && x.realtime
	// What other replicas shipped to this one as sealed files has no local WAL range, so
	// the walk over local indexes would never reach it: the task queues those it ships
	// and passes each at its place (queueReceived).
	recv, seq := x.r.ReceivedFiles(0)
	switch {
	case len(env.State) == 0 && x.realtime:
		// (not seq: a file listed since the position was taken is placed after it)
		x.recvFrom = seqBefore
	case stopTaken:
		// with realtime disabled, the task ships the files held when it started (those
		// listed since, at stopAt or after, are not history)
		x.recvFrom = seq
	}
	for _, f := range recv {
		switch {
		case x.withRecv && !x.realtime && f.Placed() && f.Seq > x.recvFrom:
			// received after a task that ships no realtime started
		case x.withRecv:
			// moved here, or shipping the history: every received file the progress does
			// not cover
			x.recv = append(x.recv, f)
		case x.liveRecv && f.Placed() && f.Seq > x.recvFrom && f.After >= x.pos:
			// listed after the task first opened, at or after where it resumes (those at
			// its position that it shipped, its progress covers)
			x.recv = append(x.recv, f)
		}
	}
	x.recvSeen = seq
	x.seal = make(chan struct{}, 1)
	x.unseal = x.r.AddSealListener(func(engine.FileInfo) {
		select {
		case x.seal <- struct{}{}:
		default:
		}
	})
	// A pipe that resumes behind (after a restart, or retrying a sink that was down) with
	// its backlog already sealed starts on files, holding no WAL.
	if _, adaptive := x.sel.(Threshold); adaptive {
		if _, sealed := x.fileCovering(x.pos + 1); sealed {
			x.carrier = File
			x.lastSwitch = fmt.Sprintf("started on tsfile at index %d: the backlog is already sealed", x.pos)
		}
	}
	if x.carrier == Tablet {
		x.walPin = x.r.PinWAL(x.pos + 1)
	}
	return nil
}

// testHookOpen, set by tests, runs in Open between taking the position and listing the
// region's received files.
var testHookOpen func()

// moved reports whether a write was shipped by the replica the pipe moved from.
func (x *Extractor) moved(origin uint32, idx uint64) bool {
	return len(x.skipTo) > 0 && idx > 0 && x.skipTo.CoversIndex(origin, idx)
}

// Next implements pipe.Extractor.
func (x *Extractor) Next(ctx context.Context) (*pipe.Event, error) {
	e, err := x.next(ctx)
	if e != nil {
		// the WAL pin moves only once the event's commit is durable (events are released then)
		upTo := e.MaxIndex
		e.OnRelease(func() { x.advancePin(upTo + 1) })
	}
	return e, err
}

func (x *Extractor) advancePin(from uint64) {
	x.mu.Lock()
	if x.walPin != nil {
		x.walPin.Advance(from)
	}
	x.mu.Unlock()
}

func (x *Extractor) next(ctx context.Context) (*pipe.Event, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(x.queue) > 0 {
			e := x.queue[0]
			x.queue = x.queue[1:]
			return e, nil
		}
		if x.stopAt > 0 && x.pos >= x.stopAt || !x.realtime && x.stopAt == 0 {
			if x.queueReceived(math.MaxUint64, math.MaxUint64) {
				continue
			}
			<-ctx.Done() // history done, realtime disabled: nothing more to ship
			return nil, ctx.Err()
		}
		x.maybeSelect(false)
		var e *pipe.Event
		var err error
		if x.getCarrier() == Tablet {
			e, err = x.nextTablet(ctx)
			if errors.Is(err, engine.ErrCompacted) {
				x.maybeSelect(true)
				continue
			}
		} else {
			e, err = x.nextFile(ctx)
		}
		if err != nil {
			return nil, err
		}
		if e != nil {
			return e, nil
		}
	}
}

func (x *Extractor) getCarrier() Carrier {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.carrier
}

// fileCovering returns the sealed file holding index idx.
func (x *Extractor) fileCovering(idx uint64) (engine.FileInfo, bool) {
	// not a binary search: received files (no local WAL range, MaxIndex 0) sit among the
	// others in version order, so no predicate on MaxIndex is monotonic over the list
	for _, f := range x.r.Files() {
		if f.MaxIndex == 0 {
			continue // a received file: no local WAL range
		}
		if f.MinIndex <= idx && idx <= f.MaxIndex {
			return f, true
		}
	}
	return engine.FileInfo{}, false
}

// maybeSelect asks the selector, at most every 20 ms or 64 events unless forced.
func (x *Extractor) maybeSelect(force bool) {
	x.checkN++
	now := time.Now()
	if !force && x.checkN < 64 && now.Sub(x.checkAt) < 20*time.Millisecond {
		return
	}
	x.checkN, x.checkAt = 0, now
	x.mu.Lock()
	cur, committed := x.carrier, x.committed
	x.mu.Unlock()
	in := SelectorInput{Current: cur}
	if x.env.Pending != nil {
		in.PendingEvents = x.env.Pending()
	}
	last := x.r.LastIndex()
	if last > committed {
		in.LagEvents = int64(last - committed)
		if t := x.r.IndexTime(committed + 1); t > 0 {
			in.LagSeconds = float64(now.UnixMilli()-t) / 1000
		}
	}
	in.WALBytesBehind = x.r.WALBytesAfter(committed)
	_, in.FileReady = x.fileCovering(x.pos + 1)
	_, in.BacklogSealed = x.fileCovering(committed + 1)
	in.Compacted = x.pos+1 <= last && x.pos+1 < x.r.WALFirstIndex()
	next, reason := x.sel.Select(in)
	if next != cur {
		x.switchTo(next, reason)
	}
}

func (x *Extractor) switchTo(c Carrier, reason string) {
	x.mu.Lock()
	from := x.carrier
	x.carrier = c
	x.switches++
	x.lastSwitch = fmt.Sprintf("%s → %s at index %d: %s", from, c, x.pos, reason)
	if c == File {
		if x.walPin != nil {
			x.walPin.Release()
			x.walPin = nil
		}
	} else if x.walPin == nil {
		x.walPin = x.r.PinWAL(x.pos + 1)
	}
	x.mu.Unlock()
	if c == File && x.sub != nil {
		x.sub.Close()
		x.sub = nil
	}
	x.log.Info("carrier switch", "pipe", x.env.Pipe, "region", x.r.Name(), "from", from.String(), "to", c.String(), "index", x.pos, "reason", reason)
}

const idleWait = 100 * time.Millisecond

func (x *Extractor) nextTablet(ctx context.Context) (*pipe.Event, error) {
	if x.sub == nil {
		x.sub = x.r.Subscribe(x.pos + 1)
	}
	wctx, cancel := context.WithTimeout(ctx, idleWait)
	en, err := x.sub.Next(wctx)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if x.pos >= x.r.LastIndex() && x.queueReceived(x.pos+1, math.MaxUint64) {
				return nil, nil
			}
			return x.heartbeatIfSkipped(), nil
		}
		x.sub.Close()
		x.sub = nil
		return nil, err
	}
	defer en.Release()
	if x.queueReceived(en.Index, en.Epoch) {
		// the received files placed before this entry go first, then this entry
		if e := x.tabletEvent(en); e != nil {
			x.queue = append(x.queue, e)
		}
		return nil, nil
	}
	return x.tabletEvent(en), nil
}

// tabletEvent passes a WAL entry: its event, a heartbeat, or nil when skipped.
func (x *Extractor) tabletEvent(en engine.Entry) *pipe.Event {
	x.pos = en.Index
	x.cum.Advance(en.Origin, en.OriginIndex)
	x.markEpoch(en.Epoch, EpochTablet)
	if !x.forwarding && en.Origin != x.r.Origin() || x.moved(en.Origin, en.OriginIndex) {
		return x.skip()
	}
	e := &pipe.Event{
		Region: x.r.Name(), Origin: en.Origin, OriginIndex: en.OriginIndex, MinIndex: en.Index, MaxIndex: en.Index,
		Epoch: en.Epoch, Progress: x.cum.Clone(), EventTime: x.r.IndexTime(en.Index),
	}
	switch en.Kind {
	case engine.KindTablet:
		t := x.filterTablet(en.Tablet)
		if t == nil {
			return x.skip()
		}
		e.Kind, e.Tablet, e.Bytes = pipe.KindTablet, t, tabletBytes(t)
	case engine.KindDelete:
		d := *en.Deletion
		e.Kind, e.Deletion, e.Bytes = pipe.KindDeletion, &d, 64
	default:
		return x.skip()
	}
	x.skipped = 0
	return e
}

// refreshRecv adds to x.recv the files the region received from other replicas since it
// last looked (a task that ships realtime with forwarding). It costs an atomic load when
// there are none. The region counts a file (ReceivedSeq) before any write after it is
// readable, so a file placed before an entry is known once the entry is.
func (x *Extractor) refreshRecv() {
	if !x.liveRecv || x.r.ReceivedSeq() == x.recvSeen {
		return
	}
	files, seq := x.r.ReceivedFiles(x.recvSeen)
	for _, f := range files {
		if f.Placed() && f.Seq > x.recvSeen {
			x.recv = append(x.recv, f)
		}
	}
	x.recvSeen = seq
	sort.SliceStable(x.recv, func(i, j int) bool { return x.recv[i].Version < x.recv[j].Version })
}

// due reports whether received file f goes before the local write of index idx and epoch
// epoch: a file whose place the region recorded (FileInfo.After) goes after the write of
// index After and before the next one; one listed before places were recorded, before the
// first write of a higher epoch than its version.
func due(f engine.FileInfo, idx, epoch uint64) bool {
	if f.Placed() {
		return f.After < idx
	}
	return f.Version < epoch
}

// queueReceived queues the files received from other replicas that go before the local
// write of index idx and epoch epoch (see due), in version order, skipping those the
// progress covers. It reports whether it queued anything.
func (x *Extractor) queueReceived(idx, epoch uint64) bool {
	x.refreshRecv()
	queued := false
	for len(x.recv) > 0 && due(x.recv[0], idx, epoch) {
		f := x.recv[0]
		x.recv = x.recv[1:]
		fp := pipe.ProgressIndex(f.Progress)
		if x.cum.Covers(fp) {
			continue
		}
		x.cum = x.cum.Merge(fp)
		// The deletions that came with the file are part of it (the region holds them
		// with the file, at no local index): they travel inside its event, applied before
		// it, never as events of their own, which a receiver would apply and then find
		// the file's progress covered.
		dels := x.r.FileDeletions(f.Name)
		if len(x.skipTo) > 0 {
			kept := dels[:0]
			for _, d := range dels {
				if !x.moved(d.Origin, d.OriginIndex) {
					kept = append(kept, d)
				}
			}
			dels = kept
		}
		if len(dels) == 0 && (f.Points == 0 || f.MaxTime < x.minT || f.MinTime > x.maxT) {
			continue
		}
		pin, err := x.r.PinFile(f.Name)
		if err != nil {
			x.log.Warn("a received file is gone", "pipe", x.env.Pipe, "region", x.r.Name(), "file", f.Name, "err", err)
			continue
		}
		// It covers no local index (MinIndex 0): it goes after the local writes up to
		// x.pos (f.After, for a file whose place the region recorded and that the task
		// knew of in time: always, but for one listed before a task of an older version
		// ran past it), whose epochs are below its version, and before the next one, whose
		// epoch is above. Its version (f.Epoch) tells it from the events of x.pos and from
		// the other files received between the same local writes; a replay from any
		// checkpoint before it ships it at the same (x.pos, version) again (see
		// pipe.Event.FromReceivedFile).
		epoch := f.Epoch
		if epoch == 0 {
			epoch = f.Version // the same, in every manifest the engine writes; never 0
		}
		e := &pipe.Event{Kind: pipe.KindTsFile, Region: x.r.Name(), MinIndex: 0, MaxIndex: x.pos, Epoch: epoch,
			Progress: x.cum.Clone(), EventTime: time.Now().UnixMilli(), Bytes: f.Size,
			File: &pipe.FileRef{Path: x.r.FilePath(f.Name), Info: f, Pattern: x.pattern, MinTime: x.minT, MaxTime: x.maxT, Deletions: dels}}
		e.OnRelease(pin.Release)
		x.queue = append(x.queue, e)
		queued = true
	}
	return queued
}

func (x *Extractor) skip() *pipe.Event {
	x.skipped++
	if x.skipped >= 1000 {
		return x.heartbeatIfSkipped()
	}
	return nil
}

// heartbeatIfSkipped emits a heartbeat covering skipped positions, so the pipe's progress
// (and WAL pins) move even when nothing matches.
func (x *Extractor) heartbeatIfSkipped() *pipe.Event {
	if x.skipped == 0 {
		return nil
	}
	x.skipped = 0
	return &pipe.Event{Kind: pipe.KindHeartbeat, Region: x.r.Name(), MinIndex: x.pos, MaxIndex: x.pos, Progress: x.cum.Clone(), EventTime: time.Now().UnixMilli()}
}

func (x *Extractor) markEpoch(epoch uint64, c EpochCarrier) {
	x.mu.Lock()
	x.epochs[epoch] |= c
	if len(x.epochs) > 1024 {
		for k := range x.epochs {
			if k+512 < epoch {
				delete(x.epochs, k)
			}
		}
	}
	x.mu.Unlock()
}

func (x *Extractor) nextFile(ctx context.Context) (*pipe.Event, error) {
	f, ok := x.fileCovering(x.pos + 1)
	if !ok && x.pos >= x.r.LastIndex() && x.queueReceived(x.pos+1, math.MaxUint64) {
		return nil, nil
	}
	if ok && x.queueReceived(x.pos+1, f.Epoch) {
		return nil, nil
	}
	if !ok {
		x.maybeSelect(true)
		if x.getCarrier() == Tablet {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-x.seal:
		case <-time.After(idleWait):
		}
		return nil, nil
	}
	if f.MinIndex <= x.pos && x.pos-f.MinIndex+1 >= f.MaxIndex-x.pos {
		// most of the epoch was shipped as tablets: its file would ship those rows again, so
		// the rest of the epoch goes as tablets too, read from the WAL while it is there (with
		// less than half shipped, the file goes: compact, and its repeated rows are few)
		e, err := x.nextTablet(ctx)
		if !errors.Is(err, engine.ErrCompacted) {
			return e, err
		}
	}
	if x.sub != nil {
		x.sub.Close()
		x.sub = nil
	}
	from := x.pos
	x.pos = f.MaxIndex
	x.mu.Lock()
	shipped := x.epochs[f.Epoch]
	x.mu.Unlock()
	if shipped&EpochTablet != 0 {
		x.markEpoch(f.Epoch, EpochBoth)
	} else {
		x.markEpoch(f.Epoch, EpochFile)
	}
	// Deletions of the epoch travel with its file (applied before it), or alone when the
	// file is not shipped.
	dels := x.r.Deletions(from, f.MaxIndex)
	if !x.forwarding || len(x.skipTo) > 0 {
		kept := dels[:0]
		for _, d := range dels {
			if (x.forwarding || d.Origin == x.r.Origin()) && !x.moved(d.Origin, d.OriginIndex) {
				kept = append(kept, d)
			}
		}
		dels = kept
	}
	covered := len(x.skipTo) > 0 && x.skipTo.Covers(pipe.ProgressIndex(f.Progress))
	x.cum = x.cum.Merge(pipe.ProgressIndex(f.Progress))
	if covered || f.Points == 0 || f.MaxTime < x.minT || f.MinTime > x.maxT {
		cum := x.cum.Clone()
		for _, d := range dels {
			dd := d.Deletion
			x.queue = append(x.queue, &pipe.Event{Kind: pipe.KindDeletion, Region: x.r.Name(), Deletion: &dd,
				Origin: d.Origin, OriginIndex: d.OriginIndex, MinIndex: d.Index, MaxIndex: d.Index, Epoch: f.Epoch,
				Progress: pipe.ProgressIndex{d.Origin: d.OriginIndex}.Merge(nil), EventTime: x.r.IndexTime(d.Index), Bytes: 64})
		}
		x.queue = append(x.queue, &pipe.Event{Kind: pipe.KindHeartbeat, Region: x.r.Name(), MinIndex: from + 1, MaxIndex: f.MaxIndex, Epoch: f.Epoch, Progress: cum, EventTime: x.r.IndexTime(f.MaxIndex)})
		return nil, nil
	}
	pin, err := x.r.PinFile(f.Name)
	if err != nil {
		return nil, err
	}
	e := &pipe.Event{Kind: pipe.KindTsFile, Region: x.r.Name(), MinIndex: from + 1, MaxIndex: f.MaxIndex, Epoch: f.Epoch,
		Progress: x.cum.Clone(), EventTime: x.r.IndexTime(f.MaxIndex), Bytes: f.Size,
		File: &pipe.FileRef{Path: x.r.FilePath(f.Name), Info: f, Pattern: x.pattern, MinTime: x.minT, MaxTime: x.maxT, Deletions: dels}}
	e.OnRelease(pin.Release)
	x.queue = append(x.queue, e)
	return nil, nil
}

// filterTablet applies the pattern and time range; nil when nothing is left. The result
// holds its own reference.
func (x *Extractor) filterTablet(t *tsfile.Tablet) *tsfile.Tablet {
	if !x.pattern.IsZero() && !x.pattern.MayMatchDevice(t.Device) {
		return nil
	}
	rec := t.Rec
	lo, hi := int64(0), rec.NumRows()
	if x.minT != math.MinInt64 || x.maxT != math.MaxInt64 {
		ts := t.Times()
		l := sort.Search(len(ts), func(i int) bool { return ts[i] >= x.minT })
		h := sort.Search(len(ts), func(i int) bool { return ts[i] > x.maxT })
		if l >= h {
			return nil
		}
		lo, hi = int64(l), int64(h)
	}
	keep := []int{0}
	fs := rec.Schema().Fields()
	for c := 1; c < len(fs); c++ {
		if x.allSeries || x.pattern.Match(t.Device, fs[c].Name) {
			keep = append(keep, c)
		}
	}
	if len(keep) == 1 {
		return nil
	}
	if len(keep) == len(fs) && lo == 0 && hi == rec.NumRows() {
		rec.Retain()
		return tsfile.NewTablet(t.Device, rec)
	}
	fields := make([]arrow.Field, len(keep))
	cols := make([]arrow.Array, len(keep))
	for i, c := range keep {
		fields[i] = fs[c]
		cols[i] = array.NewSlice(rec.Column(c), lo, hi)
	}
	md := rec.Schema().Metadata()
	out := array.NewRecord(arrow.NewSchema(fields, &md), cols, hi-lo)
	for _, c := range cols {
		c.Release()
	}
	return tsfile.NewTablet(t.Device, out)
}

func tabletBytes(t *tsfile.Tablet) int64 {
	var n int64
	for _, c := range t.Rec.Columns() {
		for _, b := range c.Data().Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
	}
	return n
}

// Committed implements pipe.Extractor: it advances the committed position and returns the
// state to save with the pipe's progress.
func (x *Extractor) Committed(e *pipe.Event) []byte {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch e.Kind { // bytes shipped per carrier: those the sink acknowledged
	case pipe.KindTablet:
		x.tabletB += e.Bytes
	case pipe.KindTsFile:
		x.fileB += e.Bytes
	}
	if e.MaxIndex > x.committed {
		x.committed = e.MaxIndex
	}
	switch {
	case e.Progress == nil:
	case e.Progress.Covers(x.commitProg):
		x.commitProg = e.Progress
	default: // a deletion shipped alone carries only its own origin's index
		x.commitProg = x.commitProg.Merge(e.Progress)
	}
	return x.stateLocked()
}

// stateLocked is the state to save at the committed position (x.mu held).
func (x *Extractor) stateLocked() []byte {
	st := state{Pos: x.committed, Progress: x.commitProg, Skip: x.skipTo, Received: x.withRecv, RecvFrom: x.recvFrom}
	if !x.realtime {
		stop := x.stopAt
		st.Stop = &stop
	}
	b, _ := json.Marshal(st)
	return b
}

// StartState implements pipe.StartStater: a pipe that does not ship history starts after
// what the region held when it first opened, and keeps that position until its first
// commit (else a retry would start after what the region holds then, skipping the writes
// between); one that does not ship realtime keeps where its history ends.
func (x *Extractor) StartState() []byte {
	if !x.fresh {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stateLocked()
}

// Status implements pipe.Extractor.
func (x *Extractor) Status() pipe.ExtractorStatus {
	x.mu.Lock()
	defer x.mu.Unlock()
	st := pipe.ExtractorStatus{Carrier: x.carrier.String(), Switches: x.switches, LastSwitch: x.lastSwitch, TabletBytes: x.tabletB, FileBytes: x.fileB}
	if x.r != nil && x.carrier == Tablet {
		st.PinnedWALBytes = x.r.WALBytesAfter(x.committed)
	}
	return st
}

// Epochs returns how each recent epoch was shipped (for tests and status).
func (x *Extractor) Epochs() map[uint64]EpochCarrier {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[uint64]EpochCarrier, len(x.epochs))
	for k, v := range x.epochs {
		out[k] = v
	}
	return out
}

// Close implements pipe.Extractor.
func (x *Extractor) Close() error {
	if x.unseal != nil {
		x.unseal()
	}
	if x.sub != nil {
		x.sub.Close()
		x.sub = nil
	}
	for _, e := range x.queue {
		e.Release()
	}
	x.queue = nil
	x.mu.Lock()
	if x.walPin != nil {
		x.walPin.Release()
		x.walPin = nil
	}
	x.mu.Unlock()
	return nil
}
