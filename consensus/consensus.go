// Package consensus builds IoTDB's replication protocols out of pipes. A replica set is a
// region's replicas: a leader that takes writes and followers that the leader's pipes keep
// equal to it. A protocol is the recipe of those pipes plus the rule for writes:
//
//	simple  one replica, no pipes
//	iot     wal    → replica (stream); WAL kept until every follower acked it; over the
//	        backlog limit writes wait, then fail naming the lagging follower (IoTConsensus)
//	fast    tsfile → replica (batch); the leader seals on an interval; no WAL is pinned
//	        (FastIoTConsensus)
//	iotv2   hybrid → replica; a slow or down follower costs a file, never a blocked write
//	        (IoTV2Consensus)
//
// Followers are reached through a sink spec: local-replica in one process, peer between nodes.
package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/connector/writeback" // local-replica
	"github.com/weir-dev/weir/pipe/extractor"             // wal, tsfile, hybrid
	"github.com/weir-dev/weir/tsfile"
)

// Protocol names.
const (
	Simple = "simple"
	IoT    = "iot"
	Fast   = "fast"
	IoTV2  = "iotv2"
)

// Protocols lists the protocols in the order they are usually compared.
var Protocols = []string{Simple, IoT, Fast, IoTV2}

// Defaults of Options.
const (
	DefaultSealInterval   = 5 * time.Second
	DefaultBacklogLimit   = 1 << 30
	DefaultBacklogTimeout = 5 * time.Second
)

// ErrBacklog is wrapped by an iot write rejected because a follower is too far behind.
var ErrBacklog = errors.New("follower backlog over the limit")

// Protocol is the recipe of a replica set: the source of the pipe from the leader to each
// follower, the leader's region options, and the admission rule for writes.
type Protocol interface {
	Name() string
	// Source is the pipe source the leader runs towards each follower (zero: no pipes).
	Source() pipe.PluginSpec
	// LeaderOptions adjusts the leader region's options (fast: seal interval).
	LeaderOptions(o *engine.Options)
	// Admit decides whether the leader may take a write now.
	Admit(ctx context.Context, s *ReplicaSet) error
}

// Options configure a protocol.
type Options struct {
	SealInterval   time.Duration // fast: the leader seals its memtable this often
	BacklogLimit   int64         // iot: WAL bytes a follower may hold back before writes wait
	BacklogTimeout time.Duration // iot: how long a write waits for the backlog to shrink
	// MaxPendingEvents is the hybrid selector's degrade threshold (iotv2); 0 = the default.
	MaxPendingEvents int
}

func (o *Options) fill() {
	if o.SealInterval <= 0 {
		o.SealInterval = DefaultSealInterval
	}
	if o.BacklogLimit <= 0 {
		o.BacklogLimit = DefaultBacklogLimit
	}
	if o.BacklogTimeout <= 0 {
		o.BacklogTimeout = DefaultBacklogTimeout
	}
}

// New returns the protocol of that name.
func New(name string, o Options) (Protocol, error) {
	o.fill()
	switch name {
	case Simple:
		return simple{}, nil
	case IoT:
		return iot{o}, nil
	case Fast:
		return fast{o}, nil
	case IoTV2:
		return iotv2{o}, nil
	}
	return nil, fmt.Errorf("consensus: unknown protocol %q (want one of simple, iot, fast, iotv2)", name)
}

type simple struct{}

func (simple) Name() string                             { return Simple }
func (simple) Source() pipe.PluginSpec                  { return pipe.PluginSpec{} }
func (simple) LeaderOptions(*engine.Options)            {}
func (simple) Admit(context.Context, *ReplicaSet) error { return nil }

type iot struct{ o Options }

func (iot) Name() string { return IoT }
func (iot) Source() pipe.PluginSpec {
	return pipe.PluginSpec{Plugin: "wal", Params: map[string]string{"forwarding": "false"}}
}
func (iot) LeaderOptions(*engine.Options) {}

// Admit waits while a follower holds back more WAL than the limit, up to the timeout.
func (p iot) Admit(ctx context.Context, s *ReplicaSet) error {
	deadline := time.Now().Add(p.o.BacklogTimeout)
	for {
		id, behind := s.maxBacklog()
		if behind <= p.o.BacklogLimit {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("iot: write rejected after waiting %s: follower %s holds back %d WAL bytes (limit %d): %w",
				p.o.BacklogTimeout, id, behind, p.o.BacklogLimit, ErrBacklog)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type fast struct{ o Options }

func (fast) Name() string { return Fast }
func (fast) Source() pipe.PluginSpec {
	return pipe.PluginSpec{Plugin: "tsfile", Params: map[string]string{"forwarding": "false"}}
}
func (p fast) LeaderOptions(o *engine.Options)        { o.FlushAge = p.o.SealInterval }
func (fast) Admit(context.Context, *ReplicaSet) error { return nil }

type iotv2 struct{ o Options }

func (iotv2) Name() string { return IoTV2 }
func (p iotv2) Source() pipe.PluginSpec {
	ps := map[string]string{"forwarding": "false"}
	if p.o.MaxPendingEvents > 0 {
		ps["selector.max-pending-events"] = strconv.Itoa(p.o.MaxPendingEvents)
	}
	return pipe.PluginSpec{Plugin: "hybrid", Params: ps}
}
func (iotv2) LeaderOptions(*engine.Options)            {}
func (iotv2) Admit(context.Context, *ReplicaSet) error { return nil }

// Follower is a replica the leader ships to: an id and the sink that reaches it.
type Follower struct {
	ID   string
	Sink pipe.PluginSpec
	// CaughtUp marks a follower known to hold everything the leader holds (the leadership
	// moved here after the old leader drained its pipes): a new pipe to it ships from now
	// on, without the history.
	CaughtUp bool
	// New marks a follower added to a running replica set: it may lack writes of any
	// origin, so its pipe ships everything the leader holds (forwarding), history first.
	New bool
}

// LocalFollower is a follower in the same process, reached through the local-replica sink;
// the replica set's Resolve function must answer its id.
func LocalFollower(id string) Follower {
	return Follower{ID: id, Sink: pipe.PluginSpec{Plugin: "local-replica", Params: map[string]string{"replica": id}}}
}

// SetOptions configure a replica set.
type SetOptions struct {
	Name     string         // the region's name, e.g. root.demo/0
	Protocol Protocol       // from New
	Leader   *engine.Region // the leader's region (opened with Protocol.LeaderOptions applied)
	// Followers are reached through their sinks.
	Followers []Follower
	// PipesDir holds the durable state of the replication pipes.
	PipesDir string
	// Resolve finds a local replica's region by follower id (local-replica sinks); it may
	// return an error while that replica is down.
	Resolve func(id string) (*engine.Region, error)
	Logger  *slog.Logger
}

// ReplicaSet runs a protocol's pipes from a leader to its followers.
type ReplicaSet struct {
	o   SetOptions
	mgr *pipe.Manager
	mu  sync.Mutex
	ids []string
}

// PipeName is the name of the replication pipe to a follower.
func PipeName(protocol, follower string) string { return "replicate-" + protocol + "-to-" + follower }

// PipeFollower returns the follower a pipe named by PipeName ships to; false for a name
// PipeName does not make.
func PipeFollower(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "replicate-")
	if !ok {
		return "", false
	}
	_, f, ok := strings.Cut(rest, "-to-")
	return f, ok && f != ""
}

// Open starts (or resumes, from their durable progress) the replication pipes.
func Open(o SetOptions) (*ReplicaSet, error) {
	if o.Leader == nil || o.Protocol == nil {
		return nil, errors.New("consensus: a replica set needs a leader region and a protocol")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &ReplicaSet{o: o}
	if o.Protocol.Source().Plugin == "" {
		if len(o.Followers) > 0 {
			return nil, fmt.Errorf("consensus: protocol %s has one replica, got %d followers", o.Protocol.Name(), len(o.Followers))
		}
		return s, nil
	}
	mgr, err := pipe.NewManager(pipe.ManagerOptions{
		Dir:           o.PipesDir,
		Logger:        o.Logger,
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{o.Leader}, nil },
		Databases: func(id string) (*engine.Region, error) {
			if o.Resolve == nil {
				return nil, fmt.Errorf("no local replica %s", id)
			}
			return o.Resolve(id)
		},
		Backoff: pipe.Backoff{Initial: 20 * time.Millisecond, Max: time.Second},
	})
	if err != nil {
		return nil, err
	}
	s.mgr = mgr
	// pipes to replicas that are no longer followers (the set changed while another node
	// led the region) are dropped with their pins
	keep := map[string]bool{}
	for _, f := range o.Followers {
		keep[PipeName(o.Protocol.Name(), f.ID)] = true
	}
	for _, st := range mgr.List() {
		if !keep[st.Name] {
			if err := mgr.Drop(st.Name); err != nil {
				mgr.Close()
				return nil, fmt.Errorf("consensus: drop the pipe of a former follower: %w", err)
			}
		}
	}
	for _, f := range o.Followers {
		if err := s.AddPeer(f); err != nil {
			mgr.Close()
			return nil, err
		}
	}
	return s, nil
}

// AddPeer starts shipping to a follower: history as files (the WAL no longer holds it)
// and then realtime, as the protocol's source does (see Follower for the variants).
func (s *ReplicaSet) AddPeer(f Follower) error {
	if s.mgr == nil {
		return fmt.Errorf("consensus: protocol %s takes no followers", s.o.Protocol.Name())
	}
	src := s.o.Protocol.Source()
	src.Params = maps.Clone(src.Params)
	if f.CaughtUp {
		src.Params["history.enable"] = "false"
	}
	if f.New {
		src.Params["forwarding"] = "true"
	}
	// an existing pipe (a restarted leader's) keeps its spec and resumes from its progress;
	// a new follower's starts over
	spec := &pipe.Spec{Name: PipeName(s.o.Protocol.Name(), f.ID), Source: src, Sink: f.Sink}
	if f.New {
		if err := s.mgr.Drop(spec.Name); err != nil && !errors.Is(err, pipe.ErrPipeNotFound) {
			return fmt.Errorf("consensus: follower %s: %w", f.ID, err)
		}
	}
	if err := s.mgr.Create(spec, true); err != nil {
		return fmt.Errorf("consensus: follower %s: %w", f.ID, err)
	}
	if f.CaughtUp {
		// from what the leader holds now (the region takes writes once the set is open,
		// maybe before the pipe's task opens its extractor), also for a pipe that is
		// there already: one this node ran when it led the region before (the follower
		// has since received everything), or one whose creation stopped before this
		// point (it has no progress, and its task would start wherever the region is
		// when it opens, after writes the set took meanwhile)
		last := s.o.Leader.LastIndex()
		prog := pipe.ProgressIndex(s.o.Leader.Progress())
		ck := pipe.Checkpoint{Progress: prog, ExtractorState: extractor.StartState(last, prog), MaxIndex: last}
		if err := s.mgr.Store().SaveProgress(spec.Name, s.o.Leader.Name(), ck); err != nil {
			return fmt.Errorf("consensus: follower %s: %w", f.ID, err)
		}
	}
	if err := s.mgr.Start(spec.Name); err != nil {
		return fmt.Errorf("consensus: follower %s: %w", f.ID, err)
	}
	s.mu.Lock()
	s.ids = append(s.ids, f.ID)
	sort.Strings(s.ids)
	s.mu.Unlock()
	return nil
}

// RemovePeer stops shipping to a follower and drops its pipe and pins.
func (s *ReplicaSet) RemovePeer(id string) error {
	if s.mgr == nil {
		return fmt.Errorf("consensus: no follower %s", id)
	}
	if err := s.mgr.Drop(PipeName(s.o.Protocol.Name(), id)); err != nil {
		return fmt.Errorf("consensus: remove %s: %w", id, err)
	}
	s.mu.Lock()
	for i, x := range s.ids {
		if x == id {
			s.ids = append(s.ids[:i], s.ids[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	return nil
}

// Write takes a write on the leader once the protocol admits it.
func (s *ReplicaSet) Write(ctx context.Context, t *tsfile.Tablet) (uint64, error) {
	if err := s.o.Protocol.Admit(ctx, s); err != nil {
		return 0, err
	}
	return s.o.Leader.Write(t)
}

// Delete takes a deletion on the leader once the protocol admits it.
func (s *ReplicaSet) Delete(ctx context.Context, p tsfile.Pattern, minT, maxT int64) (uint64, error) {
	if err := s.o.Protocol.Admit(ctx, s); err != nil {
		return 0, err
	}
	return s.o.Leader.Delete(p, minT, maxT)
}

// FollowerStatus is a follower's replication state.
type FollowerStatus struct {
	ID             string  `json:"id"`
	Carrier        string  `json:"carrier"`
	Phase          string  `json:"phase"`
	LagEvents      int64   `json:"lag_events"`
	LagSeconds     float64 `json:"lag_seconds"`
	PinnedWALBytes int64   `json:"pinned_wal_bytes"`
	Switches       int64   `json:"switches"`
	LastSwitch     string  `json:"last_switch,omitempty"`
	TabletBytes    int64   `json:"tablet_bytes"`
	FileBytes      int64   `json:"file_bytes"`
	Retries        int64   `json:"retries"`
	LastError      string  `json:"last_error,omitempty"`
}

// Status is a replica set's state.
type Status struct {
	Region    string           `json:"region"`
	Protocol  string           `json:"protocol"`
	LastIndex uint64           `json:"last_index"`
	WALBytes  int64            `json:"wal_bytes"`
	Followers []FollowerStatus `json:"followers"`
}

// Status reports the leader and every follower's pipe.
func (s *ReplicaSet) Status() Status {
	st := s.o.Leader.Stats()
	out := Status{Region: s.o.Name, Protocol: s.o.Protocol.Name(), LastIndex: st.LastIndex, WALBytes: st.WALBytes}
	s.mu.Lock()
	ids := append([]string(nil), s.ids...)
	s.mu.Unlock()
	for _, id := range ids {
		fs := FollowerStatus{ID: id}
		ps, err := s.mgr.Describe(PipeName(s.o.Protocol.Name(), id))
		if err != nil {
			fs.LastError = err.Error()
		} else if len(ps.Regions) > 0 {
			r := ps.Regions[0]
			fs.Carrier, fs.Phase, fs.LagEvents, fs.LagSeconds = r.Carrier, r.Phase, r.LagEvents, r.LagSeconds
			fs.PinnedWALBytes, fs.Switches, fs.LastSwitch = r.PinnedWALBytes, r.Switches, r.LastSwitch
			fs.TabletBytes, fs.FileBytes, fs.Retries, fs.LastError = r.TabletBytes, r.FileBytes, r.Retries, r.LastError
		}
		out.Followers = append(out.Followers, fs)
	}
	return out
}

// maxBacklog returns the follower holding back the most WAL, and how much: the WAL bytes
// after what its pipe has committed, measured now on the leader (not the pipe's last
// status, which is stale while the pipe backs off from a follower that is down).
func (s *ReplicaSet) maxBacklog() (string, int64) {
	var id string
	var most int64
	st := s.Status()
	for _, f := range st.Followers {
		committed := st.LastIndex
		if uint64(f.LagEvents) < committed {
			committed -= uint64(f.LagEvents)
		} else {
			committed = 0
		}
		if b := s.o.Leader.WALBytesAfter(committed); b > most {
			id, most = f.ID, b
		}
	}
	return id, most
}

// WaitCaughtUp waits until every follower's pipe has committed everything the leader holds
// (fast: the leader's live memtable is sealed first, as its interval would).
func (s *ReplicaSet) WaitCaughtUp(ctx context.Context) error {
	if s.mgr == nil {
		return nil
	}
	if s.o.Protocol.Name() == Fast {
		if err := s.o.Leader.Flush(); err != nil {
			return err
		}
	}
	for {
		done := true
		for _, f := range s.Status().Followers {
			if f.LagEvents > 0 || f.Phase != pipe.PhaseRunning || !s.shippedAll(f.ID) {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensus: followers did not catch up: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// shippedAll reports whether the pipe to a follower that is shipped every origin's writes
// (a new replica's, forwarding) has committed all the leader holds. Its lag counts local
// indexes only, while the files the leader received from other replicas have none: they
// are shipped after the last local index when they are newer, so a lag of 0 does not say
// the new replica has them; the pipe's committed progress does. (Pipes that ship the
// leader's own writes only are caught up at lag 0: the others' were shipped by theirs.)
func (s *ReplicaSet) shippedAll(id string) bool {
	name := PipeName(s.o.Protocol.Name(), id)
	spec, err := s.mgr.Spec(name)
	if err != nil {
		return false
	}
	if !spec.ParamsOf(pipe.RoleSource, 0).Bool("forwarding") {
		return true
	}
	st, err := s.mgr.Describe(name)
	if err != nil || len(st.Regions) == 0 {
		return false
	}
	committed, err := pipe.ParseProgress(st.Regions[0].Progress)
	if err != nil {
		return false
	}
	return committed.Covers(pipe.ProgressIndex(s.o.Leader.Progress()))
}

// Close stops the replication pipes (their progress is saved).
func (s *ReplicaSet) Close() error {
	if s.mgr == nil {
		return nil
	}
	return s.mgr.Close()
}
