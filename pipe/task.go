package pipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/weir-dev/weir/engine"
)

// Runtime parameters that every sink accepts: the task reads them, not the connector.
// Connectors list them in their ParamSpecs (append SinkRuntimeParams) so that specs validate.
const (
	ParamQueueSize      = "queue-size"       // events queued between the extractor and the processors
	ParamBatchMaxEvents = "batch.max-events" // events per Send
	ParamBatchMaxBytes  = "batch.max-bytes"  // bytes (Event.Bytes) per Send
	ParamBatchLinger    = "batch.linger"     // how long a batch waits to fill
)

// Defaults of the runtime parameters, and of TaskOptions.SaveInterval.
const (
	DefaultQueueSize      = 1024
	DefaultBatchMaxEvents = 256
	DefaultBatchMaxBytes  = 4 << 20
	DefaultBatchLinger    = 20 * time.Millisecond
	DefaultSaveInterval   = 100 * time.Millisecond
)

// SinkRuntimeParams declares the runtime parameters of every sink.
var SinkRuntimeParams = []ParamSpec{
	{Key: ParamQueueSize, Type: Int, Default: strconv.Itoa(DefaultQueueSize), Min: MinOf(1),
		Doc: "events queued between the extractor and the processors; in-flight events are bounded by about this plus twice batch.max-events"},
	{Key: ParamBatchMaxEvents, Type: Int, Default: strconv.Itoa(DefaultBatchMaxEvents), Min: MinOf(1),
		Doc: "most events handed to the connector in one batch"},
	{Key: ParamBatchMaxBytes, Type: Bytes, Default: "4MiB", Min: MinOf(1),
		Doc: "most bytes (by event size) handed to the connector in one batch"},
	{Key: ParamBatchLinger, Type: Duration, Default: DefaultBatchLinger.String(), Min: MinOf(0),
		Doc: "how long a batch waits to fill before it is sent; 0 sends what is queued at once"},
}

// AsyncConnector is a connector that acknowledges events later, possibly out of order
// (e.g. a peer that acks by commit id). The task uses SendAsync instead of Send when a
// connector implements it.
type AsyncConnector interface {
	Connector
	// SendAsync hands a batch over and returns; ack is then called (from any goroutine,
	// any number of times) with the commit ids of events durable at the sink, one id per
	// event. An error fails the task; events never acked are redelivered after its restart.
	// A delivery that fails after SendAsync returned fails the task through Env.Fail.
	SendAsync(ctx context.Context, batch []*Event, ack func(ids ...uint64)) error
}

// PermanentError marks an error that retrying cannot fix (a corrupt progress file, an
// unknown plugin): the task fails and is not retried until the pipe is restarted.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is (or wraps) a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Backoff is the capped exponential backoff between a failing task's runs.
type Backoff struct {
	Initial    time.Duration // default 100ms
	Max        time.Duration // default 30s
	Multiplier float64       // default 2
	// Jitter is the fraction of each delay that is randomised: the delay is drawn from
	// [d·(1−Jitter), d]. Default 0.5; negative means none.
	Jitter float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	if b.Jitter == 0 {
		b.Jitter = 0.5
	}
	if b.Jitter < 0 {
		b.Jitter = 0
	}
	if b.Jitter > 1 {
		b.Jitter = 1
	}
	return b
}

// Delay returns the wait before retry number attempt (0-based), jittered.
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := float64(b.Initial)
	for i := 0; i < attempt && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	d -= d * b.Jitter * rand.Float64()
	return time.Duration(d)
}

// TaskOptions configure a Task.
type TaskOptions struct {
	Pipe string
	Spec *Spec // normalized
	// Region is the source region; RegionName names the task when Region is nil (tests).
	Region     *engine.Region
	RegionName string
	Store      *Store
	Databases  func(name string) (*engine.Region, error)
	Logger     *slog.Logger
	// SaveInterval is the most often progress is saved (and committed events released);
	// default 100ms. Progress is also saved when the task stops.
	SaveInterval time.Duration
	// OnError, if set, is called with each failure of a run (before the backoff).
	OnError func(error)
}

// Task runs one pipe on one region: extractor → bounded queue → processor chain →
// connector, with a committer that advances the durable progress. Run runs it once;
// Supervise runs it again after failures, with backoff, from the durable progress.
type Task struct {
	o      TaskOptions
	region string
	log    *slog.Logger
	rate   *rateMeter

	extractedEvents atomic.Int64
	extractedBytes  atomic.Int64
	avgBytes        atomic.Int64 // bytes per committed event, for lag in bytes

	mu        sync.Mutex
	phase     string
	lastErr   string
	lastErrAt time.Time
	retries   int64
	com       *Committer // of the current run
	committed Checkpoint // last known committed checkpoint (when not running)
	durableID uint64
	extStatus ExtractorStatus // the last run's extractor, as it closed
	// extDone sums the carrier counters (switches, bytes per carrier) of the runs that ended,
	// so that a task's figures keep counting across its retries
	extDone ExtractorStatus
	walPin  *engine.Pin // a wal source's pin at its durable position, held across retries

	extMu sync.RWMutex // guards ext against Close while Status is read
	ext   Extractor
}

// NewTask returns a task; nothing runs until Run or Supervise.
func NewTask(o TaskOptions) *Task {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SaveInterval <= 0 {
		o.SaveInterval = DefaultSaveInterval
	}
	name := o.RegionName
	if o.Region != nil {
		name = o.Region.Name()
	}
	return &Task{
		o:      o,
		region: name,
		log:    o.Logger.With("pipe", o.Pipe, "region", name),
		rate:   newRateMeter(time.Now()),
		phase:  PhaseStopped,
	}
}

// Region returns the task's region name.
func (t *Task) Region() string { return t.region }

func (t *Task) setPhase(p string) {
	t.mu.Lock()
	t.phase = p
	t.mu.Unlock()
}

func (t *Task) noteError(err error) {
	t.mu.Lock()
	t.lastErr, t.lastErrAt = err.Error(), time.Now().UTC()
	t.mu.Unlock()
	if t.o.OnError != nil {
		t.o.OnError(err)
	}
}

// Supervise runs the task until ctx ends, restarting a failed run after a backoff (from
// its durable progress). A permanent error or the end of a finite source ends it early.
func (t *Task) Supervise(ctx context.Context, b Backoff) {
	// A wal source keeps the WAL from its durable position on even while the task is down
	// or backing off (IoTConsensus: the WAL is kept until the follower has it); the pin
	// moves with every saved checkpoint.
	if t.o.Region != nil && t.o.Spec != nil && t.o.Spec.Source.Plugin == "wal" && t.o.Store != nil {
		from := uint64(1)
		if ck, ok, err := t.o.Store.LoadProgress(t.o.Pipe, t.region); err == nil && ok {
			from = ck.MaxIndex + 1
		}
		pin := t.o.Region.PinWAL(from)
		t.mu.Lock()
		t.walPin = pin
		t.mu.Unlock()
		defer func() {
			t.mu.Lock()
			t.walPin = nil
			t.mu.Unlock()
			pin.Release()
		}()
	}
	attempt := 0
	for {
		before := t.committedEvents()
		err := catch("pipe task", func() error { return t.Run(ctx) }) // a bug of ours fails the task, not the node
		if ctx.Err() != nil {
			t.setPhase(PhaseStopped)
			return
		}
		if err == nil {
			t.setPhase(PhaseFinished)
			return
		}
		t.noteError(err)
		if IsPermanent(err) {
			t.log.Error("pipe task failed; not retrying", "err", err)
			t.setPhase(PhaseFailed)
			return
		}
		if t.committedEvents() > before {
			attempt = 0 // it made progress: start the backoff over
		}
		d := b.Delay(attempt)
		attempt++
		t.log.Warn("pipe task failed; retrying", "err", err, "in", d)
		t.setPhase(PhaseBackoff)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			t.setPhase(PhaseStopped)
			return
		case <-timer.C:
		}
		t.mu.Lock()
		t.retries++
		t.mu.Unlock()
	}
}

func (t *Task) committedEvents() int64 {
	t.mu.Lock()
	com, n := t.com, t.committed.CommittedEvents
	t.mu.Unlock()
	if com != nil {
		return com.Committed().CommittedEvents
	}
	return n
}

// errDrained ends a run whose extractor reached the end of its stream and whose events
// are all committed.
var errDrained = errors.New("drained")

type batchConfig struct {
	queue     int
	maxEvents int
	maxBytes  int64
	linger    time.Duration
}

func readBatchConfig(p Params) batchConfig {
	c := batchConfig{DefaultQueueSize, DefaultBatchMaxEvents, DefaultBatchMaxBytes, DefaultBatchLinger}
	if v, ok := p.Raw(ParamQueueSize); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			c.queue = n
		}
	}
	if v, ok := p.Raw(ParamBatchMaxEvents); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			c.maxEvents = n
		}
	}
	if v, ok := p.Raw(ParamBatchMaxBytes); ok {
		if n, err := ParseBytes(v); err == nil && n > 0 {
			c.maxBytes = n
		}
	}
	if v, ok := p.Raw(ParamBatchLinger); ok {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			c.linger = d
		}
	}
	return c
}

// catch runs f, turning a panic into a *PanicError naming where.
func catch(where string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError(where, r)
		}
	}()
	return f()
}

type namedProcessor struct {
	Processor
	where string
}

// Run runs the task once: it loads the durable progress, opens the plugins and moves
// events until ctx ends (it then returns nil), a plugin fails (the error), or a finite
// extractor's stream ends (Next returned io.EOF) and everything is committed (nil). In
// every case it saves the progress committed so far, releases every event it holds and
// closes the plugins.
func (t *Task) Run(ctx context.Context) (err error) {
	if ctx.Err() != nil {
		return nil
	}
	t.setPhase(PhaseStarting)
	spec := t.o.Spec
	start, _, err := t.o.Store.LoadProgress(t.o.Pipe, t.region)
	if err != nil {
		var corrupt *CorruptProgressError
		if errors.As(err, &corrupt) {
			return Permanent(err) // retrying cannot repair it, and resetting would lose or repeat data
		}
		return err
	}
	if len(start.ProcessorStates) != 0 && len(start.ProcessorStates) != len(spec.Processors) {
		return Permanent(fmt.Errorf("progress file %s holds %d processor states, the pipe has %d processors",
			t.o.Store.ProgressPath(t.o.Pipe, t.region), len(start.ProcessorStates), len(spec.Processors)))
	}
	t.mu.Lock()
	t.committed, t.durableID = start, start.CommitID
	t.mu.Unlock()

	ext, err := NewExtractor(spec.Source.Plugin)
	if err != nil {
		return Permanent(err)
	}
	procs := make([]namedProcessor, len(spec.Processors))
	stateful := false
	for i, ps := range spec.Processors {
		p, err := NewProcessor(ps.Plugin)
		if err != nil {
			return Permanent(err)
		}
		procs[i] = namedProcessor{p, fmt.Sprintf("processor %s[%d]", ps.Plugin, i)}
		if _, ok := p.(StatefulProcessor); ok {
			stateful = true
		}
	}
	conn, err := NewConnector(spec.Sink.Plugin)
	if err != nil {
		return Permanent(err)
	}
	extWhere := "extractor " + spec.Source.Plugin
	connWhere := "connector " + spec.Sink.Plugin
	sinkParams := spec.ParamsOf(RoleSink, 0)
	cfg := readBatchConfig(sinkParams)

	com := NewCommitter(CommitterOptions{
		Start:     start,
		Committed: ext.Committed,
		OnCommit:  t.onCommit,
		Stateful:  stateful,
	})
	// failed carries the first failure a plugin reports from the background (Env.Fail).
	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default: // one failure is enough
		}
	}
	env := func(where string, params Params, state []byte) *Env {
		return &Env{
			Pipe:      t.o.Pipe,
			Region:    t.o.Region,
			Params:    params,
			Logger:    t.log,
			State:     state,
			Progress:  start.Progress.Clone(),
			Pending:   func() int { n, _ := com.InFlight(); return n },
			Databases: t.o.Databases,
			Fail: func(err error) {
				if err == nil {
					err = errors.New("failed (no error given)")
				}
				fail(fmt.Errorf("%s: %w", where, err))
			},
		}
	}

	// Open, and undo in reverse however the run ends.
	extOpen, procsOpen, connOpen := false, 0, false
	defer func() {
		var errs []error
		if connOpen {
			if cerr := catch(connWhere+" Close", conn.Close); cerr != nil {
				errs = append(errs, fmt.Errorf("%s: close: %w", connWhere, cerr))
			}
		}
		if ferr := com.Flush(t.save); ferr != nil {
			errs = append(errs, fmt.Errorf("save progress: %w", ferr))
		}
		com.Close()
		for i := procsOpen - 1; i >= 0; i-- {
			if cerr := catch(procs[i].where+" Close", procs[i].Close); cerr != nil {
				errs = append(errs, fmt.Errorf("%s: close: %w", procs[i].where, cerr))
			}
		}
		t.extMu.Lock()
		if extOpen {
			if st, ok := t.extractorStatus(ext); ok {
				t.mu.Lock()
				t.extStatus = st
				t.extDone.Switches += st.Switches
				t.extDone.TabletBytes += st.TabletBytes
				t.extDone.FileBytes += st.FileBytes
				t.mu.Unlock()
			}
			if cerr := catch(extWhere+" Close", ext.Close); cerr != nil {
				errs = append(errs, fmt.Errorf("%s: close: %w", extWhere, cerr))
			}
		}
		t.ext = nil
		t.extMu.Unlock()
		t.mu.Lock()
		t.com = nil
		t.committed = com.Committed()
		t.durableID = com.Durable()
		t.mu.Unlock()
		if len(errs) > 0 {
			if err == nil {
				err = errors.Join(errs...)
			} else {
				t.log.Warn("pipe task: cleanup after failure", "err", errors.Join(errs...))
			}
		}
	}()

	t.mu.Lock()
	t.com = com
	t.mu.Unlock()
	if err := catch(extWhere+" Open", func() error {
		return ext.Open(ctx, env(extWhere, spec.ParamsOf(RoleSource, 0), start.ExtractorState))
	}); err != nil {
		return fmt.Errorf("%s: open: %w", extWhere, err)
	}
	extOpen = true
	if ss, ok := ext.(StartStater); ok && start.CommitID == 0 && len(start.ExtractorState) == 0 {
		var state []byte
		if err := catch(extWhere+" StartState", func() error { state = ss.StartState(); return nil }); err != nil {
			return err
		}
		if state != nil {
			ck := start
			ck.ExtractorState, ck.Updated = state, time.Now().UTC()
			if err := t.o.Store.SaveProgress(t.o.Pipe, t.region, ck); err != nil {
				return fmt.Errorf("save start position: %w", err)
			}
		}
	}
	if st, ok := t.extractorStatus(ext); ok {
		t.mu.Lock()
		if prev := t.extStatus.Carrier; prev != "" && st.Carrier != "" && st.Carrier != prev {
			t.extDone.Switches++ // the run before ended on the other carrier (a retry resumed on files)
		}
		t.mu.Unlock()
	}
	t.extMu.Lock()
	t.ext = ext
	t.extMu.Unlock()
	for i, p := range procs {
		var state []byte
		if i < len(start.ProcessorStates) {
			state = start.ProcessorStates[i]
		}
		if err := catch(p.where+" Open", func() error {
			return p.Open(ctx, env(p.where, spec.ParamsOf(RoleProcessor, i), state))
		}); err != nil {
			return fmt.Errorf("%s: open: %w", p.where, err)
		}
		procsOpen++
		if sp, ok := p.Processor.(StatefulProcessor); ok && state != nil {
			if err := catch(p.where+" LoadState", func() error { return sp.LoadState(state) }); err != nil {
				return fmt.Errorf("%s: load state: %w", p.where, err)
			}
		}
	}
	if err := catch(connWhere+" Open", func() error { return conn.Open(ctx, env(connWhere, sinkParams, nil)) }); err != nil {
		return fmt.Errorf("%s: open: %w", connWhere, err)
	}
	connOpen = true
	t.setPhase(PhaseRunning)

	q := pool.New().WithContext(ctx).WithCancelOnError().WithFirstError()
	toProc := make(chan *Event, cfg.queue)
	toSink := make(chan *Event, cfg.maxEvents)
	maxInFlight := cfg.queue + 2*cfg.maxEvents
	q.Go(func(ctx context.Context) error {
		err := t.extractLoop(ctx, ext, extWhere, com, toProc, maxInFlight)
		if err == nil {
			close(toProc)
		}
		return err
	})
	q.Go(func(ctx context.Context) error {
		err := t.processLoop(ctx, procs, stateful, com, toProc, toSink)
		if err == nil {
			close(toSink)
		}
		return err
	})
	q.Go(func(ctx context.Context) error { return t.sendLoop(ctx, conn, connWhere, com, toSink, cfg) })
	q.Go(func(ctx context.Context) error { return t.saveLoop(ctx, com) })
	q.Go(func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return err
		}
	})
	err = q.Wait()
	switch {
	case errors.Is(err, errDrained):
		return nil
	case ctx.Err() != nil:
		return nil
	}
	return err
}

func (t *Task) save(ck Checkpoint) error {
	if err := t.o.Store.SaveProgress(t.o.Pipe, t.region, ck); err != nil {
		return err
	}
	t.mu.Lock()
	t.durableID = ck.CommitID
	pin := t.walPin
	t.mu.Unlock()
	if pin != nil {
		pin.Advance(ck.MaxIndex + 1)
	}
	return nil
}

func (t *Task) onCommit(points, bytes int64) {
	t.rate.add(time.Now(), 1, points)
	if bytes > 0 {
		// a cheap moving average of the event size
		old := t.avgBytes.Load()
		if old == 0 {
			t.avgBytes.Store(bytes)
		} else {
			t.avgBytes.Store(old + (bytes-old)/16)
		}
	}
}

func (t *Task) extractLoop(ctx context.Context, ext Extractor, where string, com *Committer, out chan<- *Event, maxInFlight int) error {
	for {
		if err := com.WaitRoom(ctx, maxInFlight); err != nil {
			return err
		}
		var e *Event
		err := catch(where+" Next", func() error {
			var err error
			e, err = ext.Next(ctx)
			return err
		})
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: next: %w", where, err)
		}
		if e == nil {
			continue
		}
		if e.Region == "" {
			e.Region = t.region
		}
		if _, err := com.Track(e); err != nil {
			e.Release()
			return err
		}
		t.extractedEvents.Add(1)
		t.extractedBytes.Add(e.Bytes)
		select {
		case out <- e:
		case <-ctx.Done():
			return ctx.Err() // e is tracked: the committer releases it
		}
	}
}

func (t *Task) processLoop(ctx context.Context, procs []namedProcessor, stateful bool, com *Committer, in <-chan *Event, out chan<- *Event) error {
	var lastID, snapID uint64
	var lastSnap time.Time
	snapshot := func(id uint64) error {
		states := make([][]byte, len(procs))
		for i, p := range procs {
			sp, ok := p.Processor.(StatefulProcessor)
			if !ok {
				continue
			}
			if err := catch(p.where+" SaveState", func() error {
				var err error
				states[i], err = sp.SaveState()
				return err
			}); err != nil {
				return fmt.Errorf("%s: save state: %w", p.where, err)
			}
		}
		com.Snapshot(id, states)
		snapID, lastSnap = id, time.Now()
		return nil
	}
	for {
		var e *Event
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok = <-in:
		}
		if !ok {
			if stateful && lastID != snapID {
				return snapshot(lastID)
			}
			return nil
		}
		outs, owned, err := t.runChain(ctx, procs, e)
		if err != nil {
			return err
		}
		com.Processed(e.CommitID, len(outs), owned)
		lastID = e.CommitID
		if stateful && (len(in) == 0 || time.Since(lastSnap) >= t.o.SaveInterval) {
			if err := snapshot(lastID); err != nil {
				return err
			}
		}
		for _, o := range outs {
			select {
			case out <- o:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// runChain passes e through the processors. Outputs carry e's commit id; owned lists the
// distinct events made on the way (not e), released when e is.
func (t *Task) runChain(ctx context.Context, procs []namedProcessor, e *Event) (outs, owned []*Event, err error) {
	if len(procs) == 0 {
		return []*Event{e}, nil, nil
	}
	cur := []*Event{e}
	var seen map[*Event]bool // once owned is long; a scan of it before
	for _, p := range procs {
		var next []*Event
		emit := func(o *Event) {
			if o == nil {
				return
			}
			o.CommitID = e.CommitID
			if o.Region == "" {
				o.Region = e.Region
			}
			if o != e && !ownedAlready(owned, seen, o) {
				owned = append(owned, o)
				if seen != nil {
					seen[o] = true
				} else if len(owned) > 16 {
					seen = make(map[*Event]bool, 2*len(owned))
					for _, x := range owned {
						seen[x] = true
					}
				}
			}
			next = append(next, o)
		}
		for _, x := range cur {
			if err := catch(p.where+" Process", func() error { return p.Process(ctx, x, emit) }); err != nil {
				for _, o := range owned {
					o.Release()
				}
				return nil, nil, fmt.Errorf("%s: %w", p.where, err)
			}
		}
		cur = next
	}
	return cur, owned, nil
}

// ownedAlready reports whether o is among the events a chain made (seen, when set, holds
// them all).
func ownedAlready(owned []*Event, seen map[*Event]bool, o *Event) bool {
	if seen != nil {
		return seen[o]
	}
	for _, x := range owned {
		if x == o {
			return true
		}
	}
	return false
}

func (t *Task) sendLoop(ctx context.Context, conn Connector, where string, com *Committer, in <-chan *Event, cfg batchConfig) error {
	async, _ := conn.(AsyncConnector)
	ack := func(ids ...uint64) { _ = com.Ack(ids...) } // a failure surfaces through com.Err
	var batch []*Event
	var size int64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var linger <-chan time.Time
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b := batch
		batch, size, linger = nil, 0, nil
		timer.Stop()
		if async != nil {
			if err := catch(where+" SendAsync", func() error { return async.SendAsync(ctx, b, ack) }); err != nil {
				return fmt.Errorf("%s: send: %w", where, err)
			}
			return nil
		}
		if err := catch(where+" Send", func() error { return conn.Send(ctx, b) }); err != nil {
			return fmt.Errorf("%s: send: %w", where, err)
		}
		ids := make([]uint64, len(b))
		for i, e := range b {
			ids[i] = e.CommitID
		}
		return com.Ack(ids...)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-in:
			if !ok {
				if err := flush(); err != nil {
					return err
				}
				if err := com.WaitRoom(ctx, 1); err != nil {
					return err
				}
				return errDrained
			}
			batch = append(batch, e)
			size += e.Bytes
			switch {
			case len(batch) >= cfg.maxEvents || size >= cfg.maxBytes || (cfg.linger == 0 && len(in) == 0):
				if err := flush(); err != nil {
					return err
				}
			case len(batch) == 1 && cfg.linger > 0:
				timer.Reset(cfg.linger)
				linger = timer.C
			}
		case <-linger:
			linger = nil
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

func (t *Task) saveLoop(ctx context.Context, com *Committer) error {
	tick := time.NewTicker(t.o.SaveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if err := com.Err(); err != nil {
			return err
		}
		if err := com.Flush(t.save); err != nil {
			return fmt.Errorf("save progress: %w", err)
		}
	}
}

func (t *Task) extractorStatus(ext Extractor) (st ExtractorStatus, ok bool) {
	err := catch("extractor Status", func() error { st = ext.Status(); return nil })
	return st, err == nil
}

// Status reports the task's state, counters, lag and rates.
func (t *Task) Status() RegionStatus {
	now := time.Now()
	t.mu.Lock()
	rs := RegionStatus{
		Region:        t.region,
		Phase:         t.phase,
		LastError:     t.lastErr,
		LastErrorTime: t.lastErrAt,
	}
	rs.Retries = t.retries
	com, ck, durable, est, done := t.com, t.committed, t.durableID, t.extStatus, t.extDone
	t.mu.Unlock()

	// the counters: the ended runs' and the current run's (the last ended run's are in done)
	var cur ExtractorStatus
	t.extMu.RLock()
	if t.ext != nil {
		if st, ok := t.extractorStatus(t.ext); ok {
			est, cur = st, st
		}
	}
	t.extMu.RUnlock()
	rs.Carrier, rs.LastSwitch = est.Carrier, est.LastSwitch
	rs.Switches = done.Switches + cur.Switches
	rs.PinnedWALBytes, rs.PinnedFileBytes = est.PinnedWALBytes, est.PinnedFileByte
	rs.TabletBytes, rs.FileBytes = done.TabletBytes+cur.TabletBytes, done.FileBytes+cur.FileBytes

	if com != nil {
		ck = com.Committed()
		durable = com.Durable()
		n, b := com.InFlight()
		rs.InFlightEvents, rs.InFlightBytes = int64(n), b
		if ms, ok := com.OldestEventTime(); ok && ms > 0 {
			if lag := now.Sub(time.UnixMilli(ms)).Seconds(); lag > 0 {
				rs.LagSeconds = lag
			}
		}
	}
	rs.ExtractedEvents = t.extractedEvents.Load()
	rs.ExtractedBytes = t.extractedBytes.Load()
	rs.CommittedEvents, rs.CommittedBytes = ck.CommittedEvents, ck.CommittedBytes
	rs.Progress = ck.Progress.String()
	rs.CommitID, rs.DurableCommitID = ck.CommitID, durable
	if t.o.Region != nil {
		if last := t.o.Region.LastIndex(); last > ck.MaxIndex {
			rs.LagEvents = int64(last - ck.MaxIndex)
			// the oldest write not yet committed, extracted or not (a files-only pipe
			// waits for a seal with nothing in flight)
			if ms := t.o.Region.IndexTime(ck.MaxIndex + 1); ms > 0 {
				if lag := now.Sub(time.UnixMilli(ms)).Seconds(); lag > rs.LagSeconds {
					rs.LagSeconds = lag
				}
			}
		}
	}
	avg := t.avgBytes.Load()
	if avg == 0 && rs.ExtractedEvents > 0 {
		avg = rs.ExtractedBytes / rs.ExtractedEvents
	}
	rs.LagBytes = rs.LagEvents * avg
	if rs.LagBytes < rs.InFlightBytes {
		rs.LagBytes = rs.InFlightBytes
	}
	rs.EventsPerSec, rs.PointsPerSec = t.rate.rates(now)
	return rs
}
