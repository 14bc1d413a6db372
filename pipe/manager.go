package pipe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/sourcegraph/conc"
	"github.com/sourcegraph/conc/pool"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/vfs"
)

// Errors of the Manager (wrapped with the pipe's name).
var (
	ErrPipeNotFound  = errors.New("no such pipe")
	ErrPipeExists    = errors.New("pipe already exists")
	ErrManagerClosed = errors.New("pipe manager closed")
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Dir holds the pipes' durable state (see Store).
	Dir string
	// SourceRegions returns the regions a pipe reads: one task runs per region.
	SourceRegions func(spec *Spec) ([]*engine.Region, error)
	// Databases opens a local database region by name (Env.Databases, for write-back).
	Databases func(name string) (*engine.Region, error)
	Logger    *slog.Logger
	// Backoff paces the retries of failing tasks (default 100ms doubling to 30s, jittered).
	Backoff Backoff
	// SaveInterval is the most often a task saves its progress (default 100ms).
	SaveInterval time.Duration
	// FS is the filesystem of Dir (default the OS), for fault injection in tests.
	FS vfs.FS
	// Hold keeps NewManager from restarting the pipes that were RUNNING until Resume (a
	// node of a cluster first brings its pipes in line with the other nodes').
	Hold bool
}

// Manager owns the pipes of a node: their specs and states are durable in Dir, RUNNING
// pipes run one task per source region, failing tasks are retried with backoff from their
// durable progress, and NewManager restarts the pipes that were RUNNING.
type Manager struct {
	o     ManagerOptions
	store *Store
	log   *slog.Logger
	ctx   context.Context
	stop  context.CancelFunc

	mu     sync.Mutex
	pipes  map[string]*managedPipe
	closed bool
}

type managedPipe struct {
	name string
	spec *Spec

	op        sync.Mutex // serialises Start, Stop, Drop and Close of this pipe
	persistMu sync.Mutex // serialises writes of state.json

	mu        sync.Mutex
	state     PipeState
	lastErr   string // the pipe's own (resolving regions), or the last persisted one
	persisted string // last error written to state.json
	retries   int64
	tasks     []*Task
	run       *pipeRun
}

type pipeRun struct {
	cancel context.CancelFunc
	wg     conc.WaitGroup
}

// NewManager opens the pipe store in o.Dir, restores every pipe and restarts those that
// were RUNNING. A corrupt spec or state file is an error naming it.
func NewManager(o ManagerOptions) (*Manager, error) {
	if o.SourceRegions == nil {
		return nil, errors.New("pipe manager: SourceRegions is nil")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SaveInterval <= 0 {
		o.SaveInterval = DefaultSaveInterval
	}
	st, err := NewStore(o.FS, o.Dir)
	if err != nil {
		return nil, err
	}
	m := &Manager{o: o, store: st, log: o.Logger, pipes: map[string]*managedPipe{}}
	m.ctx, m.stop = context.WithCancel(context.Background())
	names, err := st.Pipes()
	if err != nil {
		return nil, err
	}
	var restart []*managedPipe
	for _, name := range names {
		rec, err := st.LoadState(name)
		if err != nil {
			return nil, fmt.Errorf("pipe manager: %w", err)
		}
		if rec.State == StateDropped { // a Drop that did not finish
			if err := st.Remove(name); err != nil {
				return nil, fmt.Errorf("pipe manager: finish dropping %s: %w", name, err)
			}
			continue
		}
		spec, err := st.LoadSpec(name)
		if err != nil {
			return nil, fmt.Errorf("pipe manager: %w", err)
		}
		p := &managedPipe{name: name, spec: spec, state: rec.State, lastErr: rec.LastError, persisted: rec.LastError}
		m.pipes[name] = p
		if rec.State == StateRunning {
			restart = append(restart, p)
		}
	}
	if o.Hold {
		return m, nil
	}
	for _, p := range restart {
		m.log.Info("restarting pipe", "pipe", p.name)
		m.launch(p, nil)
	}
	return m, nil
}

// Resume starts the tasks of the RUNNING pipes that have none: those NewManager held
// (ManagerOptions.Hold). Pipes started, stopped or dropped meanwhile are as that left them.
func (m *Manager) Resume() {
	m.mu.Lock()
	names := make([]string, 0, len(m.pipes))
	for name := range m.pipes {
		names = append(names, name)
	}
	m.mu.Unlock()
	sort.Strings(names)
	for _, name := range names {
		p, unlock, err := m.lockLive(name)
		if err != nil {
			continue // dropped meanwhile, or the manager closed
		}
		p.mu.Lock()
		held := p.state == StateRunning && p.run == nil
		p.mu.Unlock()
		if held {
			m.log.Info("restarting pipe", "pipe", name)
			m.launch(p, nil)
		}
		unlock()
	}
}

// Store returns the manager's store.
func (m *Manager) Store() *Store { return m.store }

func (m *Manager) get(name string) (*managedPipe, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrManagerClosed
	}
	p := m.pipes[name]
	if p == nil {
		return nil, fmt.Errorf("pipe %s: %w", name, ErrPipeNotFound)
	}
	return p, nil
}

// Create validates spec (Normalize), persists it and its state CREATED. A pipe of the same
// name is an error wrapping ErrPipeExists, or nothing with ifNotExists. Validation
// problems are returned as Normalize returns them (see Problems).
func (m *Manager) Create(spec *Spec, ifNotExists bool) error {
	if spec == nil {
		return errors.New("create pipe: nil spec")
	}
	norm, err := spec.Normalize()
	if err != nil {
		return err
	}
	if err := CheckPipeName(norm.Name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrManagerClosed
	}
	if _, dup := m.pipes[norm.Name]; dup {
		if ifNotExists {
			return nil
		}
		return fmt.Errorf("pipe %s: %w", norm.Name, ErrPipeExists)
	}
	if err := m.store.SaveSpec(norm); err != nil {
		return fmt.Errorf("create pipe %s: %w", norm.Name, err)
	}
	if err := m.store.SaveState(norm.Name, StateRecord{State: StateCreated}); err != nil {
		_ = m.store.Remove(norm.Name)
		return fmt.Errorf("create pipe %s: %w", norm.Name, err)
	}
	m.pipes[norm.Name] = &managedPipe{name: norm.Name, spec: norm, state: StateCreated}
	m.log.Info("pipe created", "pipe", norm.Name, "source", norm.Source.Plugin, "sink", norm.Sink.Plugin)
	return nil
}

// Spec returns a copy of a pipe's (normalized) spec.
func (m *Manager) Spec(name string) (*Spec, error) {
	p, err := m.get(name)
	if err != nil {
		return nil, err
	}
	return p.spec.Clone(), nil
}

// setState changes a pipe's state and persists it with the pipe's last error.
func (m *Manager) setState(p *managedPipe, s PipeState) error {
	p.persistMu.Lock()
	defer p.persistMu.Unlock()
	p.mu.Lock()
	old := p.state
	p.state = s
	rec := StateRecord{State: s, LastError: p.persisted}
	p.mu.Unlock()
	if err := m.store.SaveState(p.name, rec); err != nil {
		p.mu.Lock()
		p.state = old
		p.mu.Unlock()
		return fmt.Errorf("pipe %s: %w", p.name, err)
	}
	return nil
}

// persistError records a task's error in state.json (when it changed).
func (m *Manager) persistError(p *managedPipe, err error) {
	p.persistMu.Lock()
	defer p.persistMu.Unlock()
	p.mu.Lock()
	msg := err.Error()
	if msg == p.persisted || p.state == StateDropped {
		p.mu.Unlock()
		return
	}
	p.persisted = msg
	rec := StateRecord{State: p.state, LastError: msg}
	p.mu.Unlock()
	if werr := m.store.SaveState(p.name, rec); werr != nil {
		m.log.Warn("pipe: cannot persist last error", "pipe", p.name, "err", werr)
	}
}

// Start runs a pipe: it resolves its source regions (an error is returned and the state
// is unchanged), persists RUNNING and starts one task per region. Starting a running pipe
// does nothing.
func (m *Manager) Start(name string) error {
	p, unlock, err := m.lockLive(name)
	if err != nil {
		return err
	}
	defer unlock()
	running := p.running()
	if running {
		return nil
	}
	regions, err := m.o.SourceRegions(p.spec)
	if err != nil {
		return fmt.Errorf("pipe %s: source regions: %w", name, err)
	}
	if regions == nil {
		regions = []*engine.Region{}
	}
	if err := m.setState(p, StateRunning); err != nil {
		return err
	}
	m.launch(p, regions)
	m.log.Info("pipe started", "pipe", name, "regions", len(regions))
	return nil
}

// lockLive finds a pipe and takes its op lock, failing (unlocked) when it is dropped or the
// manager closed; the caller calls unlock.
func (m *Manager) lockLive(name string) (p *managedPipe, unlock func(), err error) {
	if p, err = m.get(name); err != nil {
		return nil, nil, err
	}
	p.op.Lock()
	if err := m.checkLive(p); err != nil {
		p.op.Unlock()
		return nil, nil, err
	}
	return p, p.op.Unlock, nil
}

// running reports whether p has a run (its tasks started).
func (p *managedPipe) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.run != nil
}

// checkLive fails for a dropped pipe or a closed manager (p.op held).
func (m *Manager) checkLive(p *managedPipe) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrManagerClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == StateDropped {
		return fmt.Errorf("pipe %s: %w", p.name, ErrPipeNotFound)
	}
	return nil
}

// launch starts p's run (p.op held, or during NewManager). regions nil means: resolve them,
// retrying with backoff.
func (m *Manager) launch(p *managedPipe, regions []*engine.Region) {
	ctx, cancel := context.WithCancel(m.ctx)
	run := &pipeRun{cancel: cancel}
	p.mu.Lock()
	p.run = run
	p.mu.Unlock()
	run.wg.Go(func() { m.runPipe(ctx, p, regions) })
}

func (m *Manager) runPipe(ctx context.Context, p *managedPipe, regions []*engine.Region) {
	for attempt := 0; regions == nil; attempt++ {
		rs, err := m.o.SourceRegions(p.spec)
		if err == nil {
			regions = rs
			if regions == nil {
				regions = []*engine.Region{}
			}
			break
		}
		err = fmt.Errorf("source regions: %w", err)
		p.mu.Lock()
		p.lastErr = err.Error()
		p.retries++
		p.mu.Unlock()
		m.persistError(p, err)
		d := m.o.Backoff.Delay(attempt)
		m.log.Warn("pipe: cannot resolve source regions; retrying", "pipe", p.name, "err", err, "in", d)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
	tasks := make([]*Task, len(regions))
	for i, r := range regions {
		tasks[i] = NewTask(TaskOptions{
			Pipe:         p.name,
			Spec:         p.spec,
			Region:       r,
			Store:        m.store,
			Databases:    m.o.Databases,
			Logger:       m.log,
			SaveInterval: m.o.SaveInterval,
			OnError:      func(err error) { m.persistError(p, err) },
		})
	}
	p.mu.Lock()
	p.tasks = tasks
	p.lastErr = ""
	p.mu.Unlock()
	wp := pool.New()
	for _, t := range tasks {
		wp.Go(func() { t.Supervise(ctx, m.o.Backoff) })
	}
	wp.Wait()
}

// halt stops p's run, if any, and waits for its tasks to save and release (p.op held).
func (p *managedPipe) halt() {
	p.mu.Lock()
	run := p.run
	p.run = nil
	p.mu.Unlock()
	if run != nil {
		run.cancel()
		run.wg.Wait()
	}
}

// Stop stops a pipe's tasks (each saves its progress and releases what it holds) and
// persists STOPPED.
func (m *Manager) Stop(name string) error {
	p, unlock, err := m.lockLive(name)
	if err != nil {
		return err
	}
	defer unlock()
	p.halt()
	if err := m.setState(p, StateStopped); err != nil {
		return err
	}
	m.log.Info("pipe stopped", "pipe", name)
	return nil
}

// Restart stops a running pipe's tasks (their progress saved), calls between (when not
// nil; e.g. to write a task's checkpoint) and starts them again over the regions
// SourceRegions gives now. A pipe that is not running only has between called. Its state
// is unchanged.
func (m *Manager) Restart(name string, between func() error) error {
	p, unlock, err := m.lockLive(name)
	if err != nil {
		return err
	}
	defer unlock()
	running := p.running()
	p.halt()
	var berr error
	if between != nil {
		berr = between()
	}
	if running {
		m.launch(p, nil)
		m.log.Info("pipe restarted", "pipe", name)
	}
	return berr
}

// Drop stops a pipe (releasing every pin its tasks held), removes its directory and
// forgets it.
func (m *Manager) Drop(name string) error {
	p, unlock, err := m.lockLive(name)
	if err != nil {
		return err
	}
	defer unlock()
	p.halt()
	// DROPPED first: a crash before the removal completes finishes it on restart.
	serr := m.setState(p, StateDropped)
	p.mu.Lock()
	p.state = StateDropped
	p.mu.Unlock()
	rerr := m.store.Remove(name)
	m.mu.Lock()
	delete(m.pipes, name)
	m.mu.Unlock()
	m.log.Info("pipe dropped", "pipe", name)
	if rerr != nil {
		return rerr
	}
	if serr != nil {
		m.log.Warn("pipe: could not persist DROPPED before removal", "pipe", name, "err", serr)
	}
	return nil
}

// Describe returns a pipe's status.
func (m *Manager) Describe(name string) (Status, error) {
	p, err := m.get(name)
	if err != nil {
		return Status{}, err
	}
	return p.status(), nil
}

// List returns the status of every pipe, by name.
func (m *Manager) List() []Status {
	m.mu.Lock()
	ps := make([]*managedPipe, 0, len(m.pipes))
	for _, p := range m.pipes {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	sort.Slice(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
	out := make([]Status, len(ps))
	for i, p := range ps {
		out[i] = p.status()
	}
	return out
}

func (p *managedPipe) status() Status {
	p.mu.Lock()
	s := Status{
		Name:      p.name,
		State:     p.state,
		Source:    p.spec.Source.Plugin,
		Sink:      p.spec.Sink.Plugin,
		LastError: p.lastErr,
	}
	for _, ps := range p.spec.Processors {
		s.Processors = append(s.Processors, ps.Plugin)
	}
	tasks := p.tasks
	retries := p.retries
	p.mu.Unlock()
	s.Regions = make([]RegionStatus, 0, len(tasks))
	for _, t := range tasks {
		s.Regions = append(s.Regions, t.Status())
	}
	sort.Slice(s.Regions, func(i, j int) bool { return s.Regions[i].Region < s.Regions[j].Region })
	s.aggregate()
	s.Retries += retries
	return s
}

// Close stops every pipe's tasks without changing the persisted states (RUNNING pipes
// restart with the next NewManager). Later calls fail with ErrManagerClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	ps := make([]*managedPipe, 0, len(m.pipes))
	for _, p := range m.pipes {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	m.stop() // cancels every run at once; then wait for each
	for _, p := range ps {
		p.op.Lock()
		p.halt()
		p.op.Unlock()
	}
	return nil
}
