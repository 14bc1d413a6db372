package pipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/sourcegraph/conc"

	"github.com/weir-dev/weir/tsfile"
)

// ---------------------------------------------------------------- test plugins

// A scenario configures the test plugins of one test; they find it by their "scenario"
// parameter.
type scenario struct {
	name     string
	n        uint64 // events the extractor emits; then it blocks (or ends, when finite)
	finite   atomic.Bool
	mem      *memory.CheckedAllocator
	created  atomic.Int64 // events made by the test plugins
	released atomic.Int64 // of them, released

	mu         sync.Mutex
	committed  []uint64 // seqs passed to the extractor's Committed, in order
	sent       []uint64 // seqs the sink received, in order
	sends      int
	failEvery  int           // every failEvery-th Send fails
	sendDelay  time.Duration // per Send
	panicAt    uint64        // the processor panics at this seq
	fanout     bool          // the processor emits 0, 1 or 2 events (seq%3)
	light      bool          // the extractor emits heartbeats (no tablet, no Arrow)
	loaded     []string      // states the stateful processor loaded
	resumeErrs []string      // an extractor opened with Progress that disagrees with State
}

var scenarios sync.Map

func newScenario(t *testing.T, n uint64) *scenario {
	sc := &scenario{name: t.Name(), n: n, mem: memory.NewCheckedAllocator(memory.NewGoAllocator())}
	scenarios.Store(sc.name, sc)
	t.Cleanup(func() { scenarios.Delete(sc.name) })
	return sc
}

func lookupScenario(p Params) (*scenario, error) {
	v, ok := scenarios.Load(p.String("scenario"))
	if !ok {
		return nil, fmt.Errorf("no scenario %q", p.String("scenario"))
	}
	return v.(*scenario), nil
}

func (sc *scenario) committedSeqs() []uint64 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]uint64(nil), sc.committed...)
}

func (sc *scenario) sentSeqs() []uint64 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]uint64(nil), sc.sent...)
}

// checkReleased checks that every event the test plugins made was released once, and that
// no Arrow memory is left.
func (sc *scenario) checkReleased(t *testing.T) {
	t.Helper()
	if c, r := sc.created.Load(), sc.released.Load(); c != r {
		t.Errorf("%d events made, %d released", c, r)
	}
	sc.mem.AssertSize(t, 0)
}

var scenarioParam = ParamSpec{Key: "scenario", Type: String, Required: true, Doc: "test scenario"}

func init() {
	RegisterExtractor(PluginInfo{Name: "test-source", Params: []ParamSpec{scenarioParam}},
		func() Extractor { return &fakeExtractor{} })
	RegisterProcessor(PluginInfo{Name: "test-proc", Params: []ParamSpec{scenarioParam}},
		func() Processor { return &fakeProcessor{} })
	RegisterProcessor(PluginInfo{Name: "test-stateful-proc", Params: []ParamSpec{scenarioParam}},
		func() Processor { return &statefulProcessor{} })
	RegisterConnector(PluginInfo{Name: "test-sink", Params: append([]ParamSpec{scenarioParam}, SinkRuntimeParams...)},
		func() Connector { return &fakeSink{} })
	RegisterConnector(PluginInfo{Name: "test-async-sink", Params: append([]ParamSpec{scenarioParam}, SinkRuntimeParams...)},
		func() Connector { return &asyncSink{} })
}

type fakeExtractor struct {
	sc        *scenario
	next      uint64
	pinned    atomic.Int64
	extracted atomic.Int64 // events this instance returned (its TabletBytes: 100 each)
}

func (x *fakeExtractor) Open(_ context.Context, env *Env) error {
	sc, err := lookupScenario(env.Params)
	if err != nil {
		return err
	}
	x.sc, x.next = sc, 1
	if env.State != nil {
		v, err := strconv.ParseUint(string(env.State), 10, 64)
		if err != nil {
			return err
		}
		x.next = v + 1
	}
	if env.Progress[1] != x.next-1 {
		sc.mu.Lock()
		sc.resumeErrs = append(sc.resumeErrs, fmt.Sprintf("state says %d, progress %s", x.next-1, env.Progress))
		sc.mu.Unlock()
	}
	return nil
}

func (x *fakeExtractor) Next(ctx context.Context) (*Event, error) {
	if x.next > x.sc.n {
		if x.sc.finite.Load() {
			return nil, io.EOF
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	seq := x.next
	x.next++
	if x.sc.light {
		e := &Event{Kind: KindHeartbeat, Progress: ProgressIndex{1: seq}, MinIndex: seq, MaxIndex: seq, EventTime: time.Now().UnixMilli(), Bytes: 100}
		x.sc.created.Add(1)
		e.OnRelease(func() { x.sc.released.Add(1) })
		return e, nil
	}
	b := tsfile.NewTabletBuilder(x.sc.mem, "root.sg.d1", []tsfile.Column{{Name: "s1", Type: tsfile.Int64}, {Name: "s2", Type: tsfile.Double}})
	defer b.Release()
	if err := b.AppendRow(int64(seq), int64(seq), float64(seq)/2); err != nil {
		return nil, err
	}
	tab, err := b.Build()
	if err != nil {
		return nil, err
	}
	e := &Event{Kind: KindTablet, Tablet: tab, Progress: ProgressIndex{1: seq}, Origin: 1, OriginIndex: seq,
		MinIndex: seq, MaxIndex: seq, EventTime: time.Now().UnixMilli(), Bytes: 100}
	x.sc.created.Add(1)
	x.extracted.Add(1)
	x.pinned.Add(100)
	e.OnRelease(func() { x.sc.released.Add(1); x.pinned.Add(-100) })
	return e, nil
}

func (x *fakeExtractor) Committed(e *Event) []byte {
	x.sc.mu.Lock()
	x.sc.committed = append(x.sc.committed, e.MaxIndex)
	x.sc.mu.Unlock()
	return []byte(strconv.FormatUint(e.MaxIndex, 10))
}

// Status counts one carrier switch per instance (the open), and 100 tablet bytes an event.
func (x *fakeExtractor) Status() ExtractorStatus {
	return ExtractorStatus{Carrier: "tablet", PinnedWALBytes: x.pinned.Load(), Switches: 1, TabletBytes: 100 * x.extracted.Load()}
}

func (x *fakeExtractor) Close() error { return nil }

type fakeProcessor struct{ sc *scenario }

func (p *fakeProcessor) Open(_ context.Context, env *Env) (err error) {
	p.sc, err = lookupScenario(env.Params)
	return err
}

func (p *fakeProcessor) Process(_ context.Context, e *Event, emit func(*Event)) error {
	seq := e.MaxIndex
	if seq == p.sc.panicAt {
		panic(fmt.Sprintf("boom at %d", seq))
	}
	if !p.sc.fanout {
		emit(e)
		return nil
	}
	switch seq % 3 {
	case 0: // dropped
	case 1:
		emit(e)
	case 2:
		emit(e)
		o := &Event{Kind: KindHeartbeat, Progress: e.Progress, MinIndex: seq, MaxIndex: seq, Bytes: 1}
		p.sc.created.Add(1)
		o.OnRelease(func() { p.sc.released.Add(1) })
		emit(o)
	}
	return nil
}

func (p *fakeProcessor) Close() error { return nil }

// statefulProcessor counts the events it saw; its count is its state.
type statefulProcessor struct {
	sc    *scenario
	count int64
}

func (p *statefulProcessor) Open(_ context.Context, env *Env) (err error) {
	p.sc, err = lookupScenario(env.Params)
	return err
}

func (p *statefulProcessor) Process(_ context.Context, e *Event, emit func(*Event)) error {
	p.count++
	emit(e)
	return nil
}

func (p *statefulProcessor) SaveState() ([]byte, error) {
	return []byte(strconv.FormatInt(p.count, 10)), nil
}

func (p *statefulProcessor) LoadState(b []byte) (err error) {
	p.sc.mu.Lock()
	p.sc.loaded = append(p.sc.loaded, string(b))
	p.sc.mu.Unlock()
	p.count, err = strconv.ParseInt(string(b), 10, 64)
	return err
}

func (p *statefulProcessor) Close() error { return nil }

type fakeSink struct{ sc *scenario }

func (s *fakeSink) Open(_ context.Context, env *Env) (err error) {
	s.sc, err = lookupScenario(env.Params)
	return err
}

func (s *fakeSink) Send(ctx context.Context, batch []*Event) error {
	s.sc.mu.Lock()
	s.sc.sends++
	k, fail, delay := s.sc.sends, s.sc.failEvery, s.sc.sendDelay
	if fail == 0 || k%fail != 0 {
		for _, e := range batch {
			s.sc.sent = append(s.sc.sent, e.MaxIndex)
		}
	}
	s.sc.mu.Unlock()
	if fail > 0 && k%fail == 0 {
		return fmt.Errorf("injected failure of send #%d", k)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *fakeSink) Close() error { return nil }

// asyncSink acknowledges from its own goroutine, a random part of what is pending at a
// time, in random order.
type asyncSink struct {
	sc      *scenario
	mu      sync.Mutex
	pending []pendingAck
	stop    chan struct{}
	wg      conc.WaitGroup
}

type pendingAck struct {
	id  uint64
	ack func(...uint64)
}

func (s *asyncSink) Open(_ context.Context, env *Env) (err error) {
	if s.sc, err = lookupScenario(env.Params); err != nil {
		return err
	}
	s.stop = make(chan struct{})
	s.wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			s.mu.Lock()
			rand.Shuffle(len(s.pending), func(i, j int) { s.pending[i], s.pending[j] = s.pending[j], s.pending[i] })
			k := len(s.pending)
			if k > 1 {
				k = 1 + rand.IntN(k)
			}
			now := s.pending[:k:k]
			s.pending = append([]pendingAck(nil), s.pending[k:]...)
			s.mu.Unlock()
			for _, p := range now {
				p.ack(p.id)
			}
		}
	})
	return nil
}

func (s *asyncSink) Send(context.Context, []*Event) error { return errors.New("not used") }

func (s *asyncSink) SendAsync(_ context.Context, batch []*Event, ack func(ids ...uint64)) error {
	s.sc.mu.Lock()
	for _, e := range batch {
		s.sc.sent = append(s.sc.sent, e.MaxIndex)
	}
	s.sc.mu.Unlock()
	s.mu.Lock()
	for _, e := range batch {
		s.pending = append(s.pending, pendingAck{e.CommitID, ack})
	}
	s.mu.Unlock()
	return nil
}

func (s *asyncSink) Close() error {
	close(s.stop)
	s.wg.Wait()
	return nil
}

// ---------------------------------------------------------------- helpers

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testSpec builds a normalized spec of the test plugins for scenario sc.
func testSpec(t *testing.T, name string, sc *scenario, procs []string, sink string, sinkParams map[string]string) *Spec {
	t.Helper()
	s := &Spec{Name: name, Source: PluginSpec{Plugin: "test-source", Params: map[string]string{"scenario": sc.name}}}
	for _, p := range procs {
		s.Processors = append(s.Processors, PluginSpec{Plugin: p, Params: map[string]string{"scenario": sc.name}})
	}
	sp := map[string]string{"scenario": sc.name}
	for k, v := range sinkParams {
		sp[k] = v
	}
	s.Sink = PluginSpec{Plugin: sink, Params: sp}
	n, err := s.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newTestTask(t *testing.T, spec *Spec, store *Store) *Task {
	return NewTask(TaskOptions{Pipe: spec.Name, Spec: spec, RegionName: "r1", Store: store,
		Logger: quietLogger(), SaveInterval: 5 * time.Millisecond})
}

func testStore(t *testing.T) *Store {
	s, err := NewStore(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func checkInOrder(t *testing.T, what string, got []uint64, n uint64) {
	t.Helper()
	if uint64(len(got)) != n {
		t.Fatalf("%s: %d events, want %d", what, len(got), n)
	}
	for i, s := range got {
		if s != uint64(i)+1 {
			t.Fatalf("%s: position %d holds %d (around: %v)", what, i, s, got[max(0, i-3):min(len(got), i+3)])
		}
	}
}

// runInBackground runs task.Run until the returned stop is called; stop returns Run's error.
func runInBackground(t *testing.T, task *Task) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	var err error
	wg.Go(func() { err = task.Run(ctx) })
	return func() error {
		cancel()
		wg.Wait()
		return err
	}
}

// ---------------------------------------------------------------- tests

func TestTaskCommitsEveryEventOnceInOrder(t *testing.T) {
	sc := newScenario(t, 500)
	sc.finite.Store(true)
	store := testStore(t)
	spec := testSpec(t, "p", sc, []string{"test-proc"}, "test-sink",
		map[string]string{ParamBatchMaxEvents: "7", ParamBatchLinger: "1ms", ParamQueueSize: "16"})
	task := newTestTask(t, spec, store)
	if err := task.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, "committed", sc.committedSeqs(), 500)
	checkInOrder(t, "sent", sc.sentSeqs(), 500)
	ck, ok, err := store.LoadProgress("p", "r1")
	if err != nil || !ok {
		t.Fatalf("progress: %v %v", ok, err)
	}
	if ck.CommitID != 500 || ck.Progress.String() != "1:500" || string(ck.ExtractorState) != "500" ||
		ck.CommittedEvents != 500 || ck.CommittedBytes != 500*100 || ck.CommittedPoints != 1000 || ck.MaxIndex != 500 {
		t.Fatalf("checkpoint %+v", ck)
	}
	st := task.Status()
	if st.CommittedEvents != 500 || st.ExtractedEvents != 500 || st.InFlightEvents != 0 || st.Progress != "1:500" ||
		st.DurableCommitID != 500 || st.EventsPerSec <= 0 || st.PointsPerSec <= 0 || st.Carrier != "tablet" {
		t.Fatalf("status %+v", st)
	}
	sc.checkReleased(t)
}

func TestTaskBatchesByBytes(t *testing.T) {
	sc := newScenario(t, 50)
	sc.finite.Store(true)
	store := testStore(t)
	// 100 bytes per event, 250 bytes per batch: batches of 3 events
	spec := testSpec(t, "p", sc, nil, "test-sink", map[string]string{ParamBatchMaxBytes: "250", ParamBatchLinger: "1s"})
	task := newTestTask(t, spec, store)
	if err := task.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, "committed", sc.committedSeqs(), 50)
	if sc.sends != 17 { // 16 full batches of 3, then the remaining 2 when the stream ends
		t.Fatalf("%d sends, want 17", sc.sends)
	}
	sc.checkReleased(t)
}

func TestTaskRestartResumesFromDurableProgress(t *testing.T) {
	sc := newScenario(t, 300)
	sc.sendDelay = time.Millisecond
	store := testStore(t)
	spec := testSpec(t, "p", sc, nil, "test-sink", map[string]string{ParamBatchMaxEvents: "10"})

	stop := runInBackground(t, newTestTask(t, spec, store))
	eventually(t, 10*time.Second, "100 commits", func() bool { return len(sc.committedSeqs()) >= 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	first := sc.committedSeqs()
	ck, _, err := store.LoadProgress("p", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if ck.CommitID != uint64(len(first)) {
		t.Fatalf("stop saved commit id %d, %d were committed", ck.CommitID, len(first))
	}
	sc.checkReleased(t) // a stopped task holds nothing

	sc.finite.Store(true)
	task := newTestTask(t, spec, store)
	if err := task.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Committed saw each event once, across both runs, with no gap.
	checkInOrder(t, "committed", sc.committedSeqs(), 300)
	// The sink saw every event at least once: nothing lost, redelivery only after the stop.
	seen := map[uint64]bool{}
	for _, s := range sc.sentSeqs() {
		seen[s] = true
	}
	for s := uint64(1); s <= 300; s++ {
		if !seen[s] {
			t.Fatalf("event %d never sent", s)
		}
	}
	if len(sc.resumeErrs) > 0 {
		t.Fatalf("resume: %v", sc.resumeErrs)
	}
	if ck, _, _ := store.LoadProgress("p", "r1"); ck.CommitID != 300 || ck.CommittedEvents != 300 {
		t.Fatalf("final checkpoint %+v", ck)
	}
	sc.checkReleased(t)
}

func TestTaskAsyncOutOfOrderAcks(t *testing.T) {
	sc := newScenario(t, 400)
	sc.finite.Store(true)
	store := testStore(t)
	spec := testSpec(t, "p", sc, nil, "test-async-sink", map[string]string{ParamBatchMaxEvents: "5", ParamBatchLinger: "0s", ParamQueueSize: "8"})
	task := newTestTask(t, spec, store)
	if err := task.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, "committed", sc.committedSeqs(), 400)
	sc.checkReleased(t)
}

func TestTaskFanOutProcessor(t *testing.T) {
	sc := newScenario(t, 300)
	sc.finite.Store(true)
	sc.fanout = true
	store := testStore(t)
	spec := testSpec(t, "p", sc, []string{"test-proc", "test-proc"}, "test-sink", map[string]string{ParamBatchMaxEvents: "4"})
	task := newTestTask(t, spec, store)
	if err := task.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, "committed", sc.committedSeqs(), 300)
	count := map[uint64]int{}
	for _, s := range sc.sentSeqs() {
		count[s]++
	}
	for s := uint64(1); s <= 300; s++ {
		// two chained fan-out processors: seq%3==2 → 2 outputs → each again 2 → 4
		want := map[uint64]int{0: 0, 1: 1, 2: 4}[s%3]
		if count[s] != want {
			t.Fatalf("event %d sent %d times, want %d", s, count[s], want)
		}
	}
	sc.checkReleased(t)
}

func TestTaskStatefulProcessorState(t *testing.T) {
	sc := newScenario(t, 200)
	sc.sendDelay = 500 * time.Microsecond
	store := testStore(t)
	spec := testSpec(t, "p", sc, []string{"test-proc", "test-stateful-proc"}, "test-sink", map[string]string{ParamBatchMaxEvents: "3"})

	stop := runInBackground(t, newTestTask(t, spec, store))
	eventually(t, 10*time.Second, "50 commits", func() bool { return len(sc.committedSeqs()) >= 50 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ck, _, err := store.LoadProgress("p", "r1")
	if err != nil {
		t.Fatal(err)
	}
	// the saved state counts exactly the events up to the checkpoint
	if len(ck.ProcessorStates) != 2 || ck.ProcessorStates[0] != nil || string(ck.ProcessorStates[1]) != strconv.FormatUint(ck.CommitID, 10) {
		t.Fatalf("checkpoint at %d holds processor states %q", ck.CommitID, ck.ProcessorStates)
	}
	sc.finite.Store(true)
	if err := newTestTask(t, spec, store).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sc.loaded) != 1 || sc.loaded[0] != strconv.FormatUint(ck.CommitID, 10) {
		t.Fatalf("loaded states %q, want [%d]", sc.loaded, ck.CommitID)
	}
	ck, _, _ = store.LoadProgress("p", "r1")
	if ck.CommitID != 200 || string(ck.ProcessorStates[1]) != "200" {
		t.Fatalf("final checkpoint at %d, states %q", ck.CommitID, ck.ProcessorStates)
	}
	sc.checkReleased(t)
}

func TestTaskPanickingProcessorFailsTask(t *testing.T) {
	sc := newScenario(t, 20)
	sc.panicAt = 5
	store := testStore(t)
	spec := testSpec(t, "p", sc, []string{"test-proc"}, "test-sink", map[string]string{ParamBatchMaxEvents: "1"})
	err := newTestTask(t, spec, store).Run(context.Background())
	var pe *PanicError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "boom at 5") || !strings.Contains(err.Error(), "goroutine") {
		t.Fatalf("run: %v", err)
	}
	if IsPermanent(err) {
		t.Fatal("a panic is retried, not permanent")
	}
	// what was sent before the panic is committed; nothing at or after it
	got := sc.committedSeqs()
	if len(got) > 4 {
		t.Fatalf("committed %v past the panic", got)
	}
	checkInOrder(t, "committed", got, uint64(len(got)))
	sc.checkReleased(t)
}

func TestTaskCorruptProgressIsPermanent(t *testing.T) {
	sc := newScenario(t, 5)
	store := testStore(t)
	spec := testSpec(t, "p", sc, nil, "test-sink", nil)
	if err := store.SaveProgress("p", "r1", Checkpoint{CommitID: 3}); err != nil {
		t.Fatal(err)
	}
	path := store.ProgressPath("p", "r1")
	if err := os.WriteFile(path, []byte("weir-progress v1 crc32c=00000000\n{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := newTestTask(t, spec, store).Run(context.Background())
	if !IsPermanent(err) || !strings.Contains(err.Error(), path) {
		t.Fatalf("run: %v", err)
	}
	// and the file is untouched
	if b, _ := os.ReadFile(path); string(b) != "weir-progress v1 crc32c=00000000\n{}" {
		t.Fatalf("corrupt progress file rewritten: %q", b)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: -1}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Delay(i); got != w*time.Millisecond {
			t.Fatalf("attempt %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	j := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	for i := 0; i < 100; i++ {
		if d := j.Delay(3); d < 400*time.Millisecond || d > 800*time.Millisecond {
			t.Fatalf("jittered delay %v outside [400ms, 800ms]", d)
		}
	}
}
