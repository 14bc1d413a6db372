package pipe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/tsfile"
)

// testRegion opens a region with writes writes (so that LastIndex is writes).
func testRegion(t *testing.T, name string, writes int) *engine.Region {
	t.Helper()
	r, err := engine.Open(engine.Options{Dir: filepath.Join(t.TempDir(), name), Durability: wal.Async, FlushAge: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	for i := 0; i < writes; i++ {
		b := tsfile.NewTabletBuilder(nil, "root.sg.d1", []tsfile.Column{{Name: "s1", Type: tsfile.Int64}})
		if err := b.AppendRow(int64(i), int64(i)); err != nil {
			t.Fatal(err)
		}
		tab, err := b.Build()
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Write(tab); err != nil {
			t.Fatal(err)
		}
		tab.Release()
	}
	return r
}

func testManager(t *testing.T, dir string, regions ...*engine.Region) *Manager {
	t.Helper()
	m, err := NewManager(ManagerOptions{
		Dir:           dir,
		SourceRegions: func(*Spec) ([]*engine.Region, error) { return regions, nil },
		Logger:        quietLogger(),
		Backoff:       Backoff{Initial: 2 * time.Millisecond, Max: 20 * time.Millisecond},
		SaveInterval:  5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func describe(t *testing.T, m *Manager, name string) Status {
	t.Helper()
	st, err := m.Describe(name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestManagerLifecycleAndRestart(t *testing.T) {
	sc := newScenario(t, 200)
	sc.sendDelay = time.Millisecond
	region := testRegion(t, "r1", 230)
	dir := t.TempDir()
	spec := testSpec(t, "p1", sc, []string{"test-proc"}, "test-sink", map[string]string{ParamBatchMaxEvents: "10"})

	m := testManager(t, dir, region)
	if err := m.Create(spec, false); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(spec, false); !errors.Is(err, ErrPipeExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if err := m.Create(spec, true); err != nil {
		t.Fatalf("create if not exists: %v", err)
	}
	if st := describe(t, m, "p1"); st.State != StateCreated || st.Source != "test-source" || st.Sink != "test-sink" ||
		len(st.Processors) != 1 || len(st.Regions) != 0 {
		t.Fatalf("created: %+v", st)
	}
	if err := m.Start("p1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("p1"); err != nil {
		t.Fatalf("start twice: %v", err)
	}
	eventually(t, 10*time.Second, "50 commits", func() bool { return len(sc.committedSeqs()) >= 50 })
	st := describe(t, m, "p1")
	if st.State != StateRunning || len(st.Regions) != 1 || st.Regions[0].Region != "r1" || st.Regions[0].Phase != PhaseRunning {
		t.Fatalf("running: %+v", st)
	}
	// a node shutdown: the pipe stays RUNNING on disk and restarts with the next manager
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Describe("p1"); !errors.Is(err, ErrManagerClosed) {
		t.Fatalf("describe after close: %v", err)
	}
	sc.checkReleased(t)
	if rec, _ := m.Store().LoadState("p1"); rec.State != StateRunning {
		t.Fatalf("state after close: %+v", rec)
	}

	m = testManager(t, dir, region)
	eventually(t, 10*time.Second, "all 200 commits", func() bool { return len(sc.committedSeqs()) >= 200 })
	checkInOrder(t, "committed", sc.committedSeqs(), 200)
	eventually(t, 5*time.Second, "durable progress", func() bool {
		st = describe(t, m, "p1")
		return st.Regions[0].DurableCommitID == 200
	})
	r0 := st.Regions[0]
	if st.State != StateRunning || st.CommittedEvents != 200 || r0.Progress != "1:200" || r0.LagEvents != 30 ||
		r0.LagBytes != 30*100 || r0.LagSeconds < 0 || r0.InFlightEvents != 0 || st.EventsPerSec <= 0 || st.LastError != "" {
		t.Fatalf("caught up: %+v", st)
	}
	list := m.List()
	if len(list) != 1 || list[0].Name != "p1" {
		t.Fatalf("list: %+v", list)
	}

	if err := m.Stop("p1"); err != nil {
		t.Fatal(err)
	}
	if st := describe(t, m, "p1"); st.State != StateStopped || st.Regions[0].Phase != PhaseStopped {
		t.Fatalf("stopped: %+v", st)
	}
	_ = m.Close()
	m = testManager(t, dir, region)
	if st := describe(t, m, "p1"); st.State != StateStopped || len(st.Regions) != 0 {
		t.Fatalf("restored stopped pipe: %+v", st)
	}
	if err := m.Drop("p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Describe("p1"); !errors.Is(err, ErrPipeNotFound) {
		t.Fatalf("describe dropped: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p1")); !os.IsNotExist(err) {
		t.Fatalf("dropped pipe's dir: %v", err)
	}
	_ = m.Close()
	sc.checkReleased(t)
}

func TestManagerRetriesFailingConnector(t *testing.T) {
	sc := newScenario(t, 100)
	sc.finite.Store(true)
	sc.failEvery = 4
	region := testRegion(t, "r1", 0)
	m := testManager(t, t.TempDir(), region)
	defer m.Close()
	if err := m.Create(testSpec(t, "p", sc, nil, "test-sink", map[string]string{ParamBatchMaxEvents: "3", ParamBatchLinger: "0s"}), false); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("p"); err != nil {
		t.Fatal(err)
	}
	var st Status
	eventually(t, 20*time.Second, "the finite pipe to finish", func() bool {
		st = describe(t, m, "p")
		return len(st.Regions) == 1 && st.Regions[0].Phase == PhaseFinished
	})
	checkInOrder(t, "committed", sc.committedSeqs(), 100)
	if st.Retries < 1 || !strings.Contains(st.LastError, "injected failure") || !strings.Contains(st.Regions[0].LastError, "connector test-sink") {
		t.Fatalf("status: retries %d, last error %q", st.Retries, st.LastError)
	}
	if rec, _ := m.Store().LoadState("p"); !strings.Contains(rec.LastError, "injected failure") || rec.State != StateRunning {
		t.Fatalf("state.json: %+v", rec)
	}
	// the carrier counters add up over the retries: every run's switch, every event's bytes
	// (those extracted again after a failure included)
	if r := st.Regions[0]; r.Switches != st.Retries+1 || r.TabletBytes < 100*100 {
		t.Fatalf("counters over %d retries: switches %d, tablet bytes %d", st.Retries, r.Switches, r.TabletBytes)
	}
	sc.checkReleased(t)
}

func TestManagerPanickingProcessor(t *testing.T) {
	sc := newScenario(t, 50)
	sc.panicAt = 3
	region := testRegion(t, "r1", 0)
	m := testManager(t, t.TempDir(), region)
	defer m.Close()
	if err := m.Create(testSpec(t, "p", sc, []string{"test-proc"}, "test-sink", nil), false); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("p"); err != nil {
		t.Fatal(err)
	}
	var st Status
	eventually(t, 10*time.Second, "a retried panic", func() bool {
		st = describe(t, m, "p")
		return st.Retries >= 2
	})
	if !strings.Contains(st.LastError, "processor test-proc[0] Process panicked: boom at 3") || !strings.Contains(st.LastError, "goroutine") {
		t.Fatalf("last error: %q", st.LastError)
	}
	if got := sc.committedSeqs(); len(got) > 2 {
		t.Fatalf("committed past the panic: %v", got)
	}
	if err := m.Stop("p"); err != nil {
		t.Fatal(err)
	}
	sc.checkReleased(t)
}

func TestManagerDropReleasesPins(t *testing.T) {
	sc := newScenario(t, 100000)
	sc.sendDelay = 5 * time.Millisecond
	region := testRegion(t, "r1", 0)
	dir := t.TempDir()
	m := testManager(t, dir, region)
	defer m.Close()
	if err := m.Create(testSpec(t, "p", sc, nil, "test-sink", map[string]string{ParamBatchMaxEvents: "1", ParamQueueSize: "64"}), false); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("p"); err != nil {
		t.Fatal(err)
	}
	var st Status
	eventually(t, 10*time.Second, "a full queue", func() bool {
		st = describe(t, m, "p")
		return st.InFlightEvents >= 64 && st.CommittedEvents > 0
	})
	if st.PinnedWALBytes < 64*100 || st.InFlightBytes < 64*100 || st.LagSeconds < 0 {
		t.Fatalf("status with a full queue: %+v", st)
	}
	if err := m.Drop("p"); err != nil {
		t.Fatal(err)
	}
	sc.checkReleased(t)
	if _, err := os.Stat(filepath.Join(dir, "p")); !os.IsNotExist(err) {
		t.Fatalf("dir after drop: %v", err)
	}
	if err := m.Start("p"); !errors.Is(err, ErrPipeNotFound) {
		t.Fatalf("start dropped: %v", err)
	}
}

func TestManagerCorruptProgressFailsForGood(t *testing.T) {
	sc := newScenario(t, 10)
	region := testRegion(t, "r1", 0)
	dir := t.TempDir()
	m := testManager(t, dir, region)
	defer m.Close()
	if err := m.Create(testSpec(t, "p", sc, nil, "test-sink", nil), false); err != nil {
		t.Fatal(err)
	}
	path := m.Store().ProgressPath("p", "r1")
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("p"); err != nil {
		t.Fatal(err)
	}
	var st Status
	eventually(t, 5*time.Second, "the task to fail", func() bool {
		st = describe(t, m, "p")
		return len(st.Regions) == 1 && st.Regions[0].Phase == PhaseFailed
	})
	if !strings.Contains(st.LastError, path) || st.Retries != 0 || len(sc.committedSeqs()) != 0 {
		t.Fatalf("status: %+v", st)
	}
}

func TestManagerRegionsAndValidation(t *testing.T) {
	sc := newScenario(t, 10)
	dir := t.TempDir()
	var fail atomic.Bool
	fail.Store(true)
	region := testRegion(t, "r1", 0)
	m, err := NewManager(ManagerOptions{
		Dir: dir,
		SourceRegions: func(*Spec) ([]*engine.Region, error) {
			if fail.Load() {
				return nil, errors.New("no such database")
			}
			return []*engine.Region{region}, nil
		},
		Logger:  quietLogger(),
		Backoff: Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	// invalid specs are refused with Normalize's problems, and nothing is written
	bad := &Spec{Name: "bad", Source: PluginSpec{Plugin: "test-source", Params: map[string]string{"scenario": sc.name}}, Sink: PluginSpec{Plugin: "no-such-sink"}}
	if err := m.Create(bad, false); err == nil || !strings.Contains(err.Error(), "no-such-sink") {
		t.Fatalf("create invalid: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Fatalf("invalid pipe written: %v", err)
	}
	if err := m.Create(testSpec(t, "p", sc, nil, "test-sink", nil), false); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("p"); err == nil || !strings.Contains(err.Error(), "no such database") {
		t.Fatalf("start without regions: %v", err)
	}
	if st := describe(t, m, "p"); st.State != StateCreated {
		t.Fatalf("state after a failed start: %s", st.State)
	}
	// a RUNNING pipe restored while its regions cannot be resolved retries in the background
	if err := m.Store().SaveState("p", StateRecord{State: StateRunning}); err != nil {
		t.Fatal(err)
	}
	_ = m.Close()
	m, err = NewManager(ManagerOptions{Dir: dir, SourceRegions: m.o.SourceRegions, Logger: quietLogger(), Backoff: m.o.Backoff})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eventually(t, 5*time.Second, "a region error", func() bool {
		st := describe(t, m, "p")
		return strings.Contains(st.LastError, "no such database") && st.Retries > 0
	})
	fail.Store(false)
	eventually(t, 5*time.Second, "all commits", func() bool { return len(sc.committedSeqs()) == 10 })
	if st := describe(t, m, "p"); st.LastError != "" || len(st.Regions) != 1 {
		t.Fatalf("resolved: %+v", st)
	}
}

func TestManagerFinishesInterruptedDrop(t *testing.T) {
	dir := t.TempDir()
	st, _ := NewStore(nil, dir)
	if err := st.SaveSpec(&Spec{Name: "gone", Source: PluginSpec{Plugin: "test-source"}, Sink: PluginSpec{Plugin: "test-sink"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveState("gone", StateRecord{State: StateDropped}); err != nil {
		t.Fatal(err)
	}
	m := testManager(t, dir)
	defer m.Close()
	if len(m.List()) != 0 {
		t.Fatalf("list: %+v", m.List())
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Fatalf("dropped pipe's dir: %v", err)
	}
	// and a corrupt spec stops the manager with the file's name
	if err := os.MkdirAll(filepath.Join(dir, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken", SpecFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(ManagerOptions{Dir: dir, SourceRegions: func(*Spec) ([]*engine.Region, error) { return nil, nil }}); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(dir, "broken", SpecFile)) {
		t.Fatalf("corrupt spec: %v", err)
	}
}

// A manager opened with Hold restarts no pipe until Resume; a pipe stopped meanwhile stays
// stopped, and Resume starts the RUNNING ones.
func TestManagerHoldResume(t *testing.T) {
	sc := newScenario(t, 100)
	region := testRegion(t, "r1", 100)
	dir := t.TempDir()
	spec := testSpec(t, "p1", sc, nil, "test-sink", nil)
	m := testManager(t, dir, region)
	if err := m.Create(spec, false); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("p1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "10 commits", func() bool { return len(sc.committedSeqs()) >= 10 })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	held := func() *Manager {
		t.Helper()
		m, err := NewManager(ManagerOptions{Dir: dir, Hold: true, Logger: quietLogger(), SaveInterval: 5 * time.Millisecond,
			SourceRegions: func(*Spec) ([]*engine.Region, error) { return []*engine.Region{region}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	// held, then stopped: Resume leaves it stopped
	m = held()
	if st := describe(t, m, "p1"); st.State != StateRunning || len(st.Regions) != 0 {
		t.Fatalf("held: %+v", st)
	}
	if err := m.Stop("p1"); err != nil {
		t.Fatal(err)
	}
	m.Resume()
	if st := describe(t, m, "p1"); st.State != StateStopped || len(st.Regions) != 0 {
		t.Fatalf("stopped while held, after Resume: %+v", st)
	}
	if err := m.Start("p1"); err != nil {
		t.Fatal(err)
	}
	_ = m.Close()

	// held, then resumed: it runs to the end
	m = held()
	m.Resume()
	eventually(t, 10*time.Second, "all 100 commits", func() bool { return len(sc.committedSeqs()) >= 100 })
	checkInOrder(t, "committed", sc.committedSeqs(), 100)
	eventually(t, 10*time.Second, "the resumed pipe's task", func() bool {
		st := describe(t, m, "p1")
		return st.State == StateRunning && len(st.Regions) == 1 && st.Regions[0].Phase == PhaseRunning
	})
	_ = m.Close()
	sc.checkReleased(t)
}
