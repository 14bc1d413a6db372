package node

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/extractor"
	"github.com/weir-dev/weir/tsfile"
)

// User pipes in a cluster. A pipe whose source reads a replicated database is a cluster
// pipe: creating, starting, stopping or dropping it through any node does the same on
// every node (each with local=true), and each node runs its tasks over the regions it
// leads only. When a region's leadership moves, the old leader stops the region's tasks
// and hands their checkpoints (progress, processor state, commit id) to the new leader
// with the move; the new leader resumes them from there, skipping every write and file
// that progress covers (by origin and origin index, which every replica shares). A file
// partly covered is shipped whole, so the move is at-least-once; a sink that keeps its
// own progress (Kafka exactly-once, per pipe and region) stays exactly-once.

// patternDatabase returns the database a source pattern names ("root.demo.**" → root.demo),
// or false for a pattern over every database (root.**).
func patternDatabase(p tsfile.Pattern) (string, bool) {
	if p.IsZero() {
		return "", false
	}
	nodes := strings.Split(p.String(), ".")
	if len(nodes) >= 2 && nodes[1] != "*" && nodes[1] != "**" {
		return nodes[0] + "." + nodes[1], true
	}
	return "", false
}

// runsPipes reports whether this node runs the user pipes' tasks of region i of replicated
// database db: it leads the region and is not handing it off.
func (cs *clusterState) runsPipes(db string, i int) bool {
	name := cluster.RegionName(db, i)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	r, ok := cs.regions[name]
	return ok && r.Leader() == cs.self.ID && !cs.leaving[name]
}

// clusterPipe reports whether spec reads a replicated database of the node's cluster.
func (n *Node) clusterPipe(spec *pipe.Spec) bool {
	if n.cl == nil || spec == nil {
		return false
	}
	if db, ok := patternDatabase(spec.ParamsOf(pipe.RoleSource, 0).Pattern("pattern")); ok {
		_, replicated := n.cl.c.Database(db)
		return replicated
	}
	return len(n.cl.c.Databases) > 0
}

// pipesOver lists the pipes whose source reads replicated database db.
func (n *Node) pipesOver(db string) []string {
	var out []string
	for _, st := range n.mgr.List() {
		spec, err := n.mgr.Spec(st.Name)
		if err != nil || !n.clusterPipe(spec) {
			continue
		}
		if d, ok := patternDatabase(spec.ParamsOf(pipe.RoleSource, 0).Pattern("pattern")); ok && d != db {
			continue
		}
		out = append(out, st.Name)
	}
	return out
}

// handOff stops the user pipes' tasks of a region this node is about to hand to another
// leader and returns their checkpoints, by pipe.
func (n *Node) handOff(reg cluster.Region) (map[string]pipe.Checkpoint, error) {
	n.cl.mu.Lock()
	if n.cl.leaving == nil {
		n.cl.leaving = map[string]bool{}
	}
	n.cl.leaving[reg.Name] = true
	n.cl.mu.Unlock()
	cks := map[string]pipe.Checkpoint{}
	for _, name := range n.pipesOver(reg.Database) {
		err := n.mgr.Restart(name, func() error {
			ck, ok, err := n.mgr.Store().LoadProgress(name, reg.Name)
			if ok {
				cks[name] = ck
			}
			return err
		})
		if err != nil {
			return cks, fmt.Errorf("hand off pipe %s of %s: %w", name, reg.Name, err)
		}
	}
	return cks, nil
}

// keep ends a hand-off: the region's user pipe tasks run here again (the move failed) or
// no longer do (it succeeded; the region's shape says so).
func (n *Node) keep(reg cluster.Region) {
	n.cl.mu.Lock()
	delete(n.cl.leaving, reg.Name)
	n.cl.mu.Unlock()
	n.restartPipesOver(reg, nil)
}

// restartPipesOver restarts the user pipes over reg's database so that their tasks follow
// the regions this node leads; cks, when given, are checkpoints handed over by the region's
// previous leader, saved (translated to this replica) before the tasks start.
func (n *Node) restartPipesOver(reg cluster.Region, cks map[string]pipe.Checkpoint) {
	for _, name := range n.pipesOver(reg.Database) {
		err := n.mgr.Restart(name, func() error {
			ck, ok := cks[name]
			if !ok {
				return nil
			}
			ck.ExtractorState = extractor.MovedState(ck.Progress)
			ck.MaxIndex = 0 // a position on the old leader
			return n.mgr.Store().SaveProgress(name, reg.Name, ck)
		})
		if err != nil {
			n.log.Error("pipe: following a region's leadership", "pipe", name, "region", reg.Name, "err", err)
		}
	}
}

// ---------------------------------------------------------------- pipe operations

// fanPipeOp repeats a pipe request that succeeded here on every other node of the cluster
// (local=true; extra query parameters make it idempotent there). It returns the nodes that
// failed, as an error naming them.
func (n *Node) fanPipeOp(ctx context.Context, method, path string, q url.Values, contentType string, body []byte) error {
	cs := n.cl
	if q == nil {
		q = url.Values{}
	}
	q.Set("local", "true")
	var mu sync.Mutex
	var failed []string
	cs.eachPeer(ctx, 10*time.Second, 0, func(ctx context.Context, peer cluster.Node) {
		if err := cs.call(ctx, peer, method, path, q, contentType, body, nil); err != nil {
			mu.Lock()
			failed = append(failed, err.Error())
			mu.Unlock()
		}
	})
	if len(failed) == 0 {
		return nil
	}
	sort.Strings(failed)
	return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
		Message: fmt.Sprintf("done on node %d, but not on every node of the cluster (run it again there, or with if_not_exists/if_exists through any node): %s",
			n.o.ID, strings.Join(failed, "; "))}
}

// fansOut reports whether a pipe request is to be repeated on the other nodes: the node is
// in a cluster, the request did not ask for local=true, and the pipe reads a replicated
// database.
func (n *Node) fansOut(r *http.Request, spec *pipe.Spec) bool {
	if n.cl == nil {
		return false
	}
	local, err := localParam(r)
	return err == nil && !local && n.clusterPipe(spec)
}

// listPipes answers GET /v1/pipes: this node's pipes, or in a cluster (without
// local=true) every node's, merged by pipe (regions carry the node that runs them).
func (n *Node) listPipes(ctx context.Context, local bool) ([]pipe.Status, error) {
	mine := n.mgr.List()
	if n.cl == nil {
		return mine, nil
	}
	for i := range mine {
		for k := range mine[i].Regions {
			mine[i].Regions[k].Node = n.o.ID
		}
	}
	if local {
		return mine, nil
	}
	all := [][]pipe.Status{mine}
	var mu sync.Mutex
	var errs []string
	n.cl.eachPeer(ctx, 5*time.Second, 0, func(ctx context.Context, peer cluster.Node) {
		var sts []pipe.Status
		err := n.cl.call(ctx, peer, http.MethodGet, "/v1/pipes", url.Values{"local": {"true"}}, "", nil, &sts)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err.Error())
			return
		}
		all = append(all, sts)
	})
	out := mergePipes(all)
	if len(errs) > 0 {
		sort.Strings(errs)
		for i := range out {
			if out[i].LastError == "" {
				out[i].LastError = "not every node answered: " + strings.Join(errs, "; ")
			}
		}
	}
	return out, nil
}

// mergePipes merges the pipe lists of several nodes: one status per pipe, its regions
// those of every node, its counters summed and its lag the worst.
func mergePipes(lists [][]pipe.Status) []pipe.Status {
	by := map[string]*pipe.Status{}
	var names []string
	for _, l := range lists {
		for _, st := range l {
			m := by[st.Name]
			if m == nil {
				c := st
				c.Regions = append([]pipe.RegionStatus(nil), st.Regions...)
				by[st.Name] = &c
				names = append(names, st.Name)
				continue
			}
			if st.State == pipe.StateRunning || m.State == "" {
				m.State = st.State
			}
			m.Counters.Add(st.Counters)
			if m.LastError == "" {
				m.LastError = st.LastError
			}
			m.Regions = append(m.Regions, st.Regions...)
		}
	}
	sort.Strings(names)
	out := make([]pipe.Status, 0, len(names))
	for _, name := range names {
		st := by[name]
		sort.Slice(st.Regions, func(i, j int) bool {
			if st.Regions[i].Region != st.Regions[j].Region {
				return st.Regions[i].Region < st.Regions[j].Region
			}
			return st.Regions[i].Node < st.Regions[j].Node
		})
		out = append(out, *st)
	}
	return out
}

// learnPipe creates here a cluster pipe this node lacks (it was down when the pipe was
// created) from the spec another node has; it reports whether it did. The pipe is started
// when started is set and that node runs it.
func (n *Node) learnPipe(ctx context.Context, name string, started bool) bool {
	if n.cl == nil {
		return false
	}
	if _, err := n.mgr.Spec(name); err == nil {
		return false
	}
	for _, peer := range n.cl.c.Nodes {
		if peer.ID == n.o.ID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var p api.Pipe
		err := n.cl.call(cctx, peer, http.MethodGet, "/v1/pipes/"+url.PathEscape(name), url.Values{"local": {"true"}}, "", nil, &p)
		cancel()
		if err != nil || p.Spec == nil || !n.clusterPipe(p.Spec) {
			continue
		}
		if n.cl.book.dropped(name, p.Generation) {
			continue // that node missed the drop: it drops the pipe when it starts
		}
		return n.adoptPipe(p, peer.ID, started)
	}
	return false
}

// adoptPipe creates here pipe p learnt from node from, unless it was created here meanwhile
// (a fan-out's create), with its generation; it starts it when started is set and p runs.
func (n *Node) adoptPipe(p api.Pipe, from uint32, started bool) bool {
	n.cl.pipeOps.Lock()
	defer n.cl.pipeOps.Unlock()
	name := p.Spec.Name
	if _, err := n.mgr.Spec(name); err == nil {
		return false
	}
	if err := n.mgr.Create(p.Spec, true); err != nil {
		n.log.Warn("pipe: could not create a cluster pipe another node has", "pipe", name, "from", from, "err", err)
		return false
	}
	if p.Generation != "" {
		if err := n.cl.book.set(name, p.Generation); err != nil {
			n.log.Warn("pipe: learnt, but its generation not recorded", "pipe", name, "err", err)
		}
	}
	n.log.Info("pipe learnt from another node", "pipe", name, "from", from, "state", p.State)
	if started && p.State == pipe.StateRunning {
		if err := n.mgr.Start(name); err != nil {
			n.log.Warn("pipe: could not start a learnt cluster pipe", "pipe", name, "err", err)
		}
	}
	return true
}

// clusterPipes is this node's answer to GET /v1/cluster/pipes.
func (n *Node) clusterPipes() api.ClusterPipes {
	out := api.ClusterPipes{Pipes: []api.ClusterPipe{}, Dropped: n.cl.book.snapshot()}
	for _, st := range n.mgr.List() {
		if spec, err := n.mgr.Spec(st.Name); err == nil && n.clusterPipe(spec) {
			bp := n.cl.book.get(st.Name)
			out.Pipes = append(out.Pipes, api.ClusterPipe{Name: st.Name, Generation: bp.Gen, State: st.State, Intent: bp.Intent, IntentAt: bp.IntentAt})
		}
	}
	return out
}

func (n *Node) handleClusterPipes(w http.ResponseWriter, r *http.Request) {
	if n.cl == nil {
		writeError(w, notInCluster(n.o.ID))
		return
	}
	writeJSON(w, http.StatusOK, n.clusterPipes())
}

// syncPipes brings this node's cluster pipes in line with the other nodes' (when it
// starts, then every PipeSyncInterval; pipebook.go): it asks every node that answers for
// its pipes and dropped generations, drops the pipes whose generation was dropped, creates
// (and starts, as they run there) those it lacks, and starts or stops those a later start
// or stop was asked of through another node.
func (n *Node) syncPipes(ctx context.Context) {
	answers := n.peerPipes(ctx)
	for _, a := range answers {
		if err := n.cl.book.merge(a.Dropped); err != nil {
			n.log.Warn("pipe: could not record the pipes other nodes dropped", "err", err)
		}
	}
	for _, st := range n.mgr.List() {
		spec, err := n.mgr.Spec(st.Name)
		if err != nil || !n.clusterPipe(spec) || !n.cl.book.dropped(st.Name, n.cl.book.gen(st.Name)) {
			continue
		}
		if h := syncDropHook.Load(); h != nil {
			(*h)(n.o.ID, st.Name)
		}
		if dropped, err := n.dropStaleCopy(st.Name); err != nil {
			n.log.Warn("pipe: could not drop a cluster pipe another node dropped", "pipe", st.Name, "err", err)
			continue
		} else if !dropped {
			continue
		}
		n.log.Info("pipe dropped: another node dropped it (this node missed the drop)", "pipe", st.Name)
	}
	latest := map[string]api.ClusterPipe{} // by pipe: the latest start or stop of its generation here
	for _, a := range answers {
		for _, cp := range a.Pipes {
			if n.cl.book.dropped(cp.Name, cp.Generation) {
				continue
			}
			n.learnPipe(ctx, cp.Name, true)
			if cp.Generation == n.cl.book.gen(cp.Name) && cp.IntentAt.After(latest[cp.Name].IntentAt) {
				latest[cp.Name] = cp
			}
		}
	}
	for name, cp := range latest {
		if !cp.IntentAt.After(n.cl.book.get(name).IntentAt) || (cp.Intent != pipe.StateRunning && cp.Intent != pipe.StateStopped) {
			continue
		}
		if err := n.setPipeState(name, cp.Intent, cp.IntentAt, cp.Generation); err != nil {
			n.log.Warn("pipe: could not follow a later start or stop made through another node", "pipe", name, "state", cp.Intent, "err", err)
			continue
		}
		n.log.Info("pipe state followed: a later start or stop made through another node", "pipe", name, "state", cp.Intent, "at", cp.IntentAt)
	}
}

// dropStaleCopy drops pipe name if the generation this node holds of it was dropped, and
// reports whether it did. The check is made again with pipeOps held: a create fanned out
// meanwhile may have replaced the copy with a new generation, which is to stay.
func (n *Node) dropStaleCopy(name string) (bool, error) {
	n.cl.pipeOps.Lock()
	defer n.cl.pipeOps.Unlock()
	spec, err := n.mgr.Spec(name)
	if err != nil || !n.clusterPipe(spec) || !n.cl.book.dropped(name, n.cl.book.gen(name)) {
		return false, nil
	}
	return true, n.dropPipeLocked(name)
}

// syncDropHook, when set (by tests), is called by syncPipes between finding that the
// generation of a pipe this node holds was dropped and dropping the pipe.
var syncDropHook atomic.Pointer[func(id uint32, name string)]

// DefaultPipeSyncInterval is how often a running node of a cluster compares its cluster
// pipes with the other nodes' (Options.PipeSyncInterval).
const DefaultPipeSyncInterval = 30 * time.Second

// syncPipesEvery runs syncPipes every interval until ctx ends: a node that missed a drop,
// a create, a start or a stop while it ran (the fan-out to it failed, or it started while
// the other nodes were down) catches up without a restart.
func (n *Node) syncPipesEvery(ctx context.Context, interval time.Duration) {
	defer n.syncing.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.syncPipes(ctx)
		}
	}
}

// peerPipes asks every other node that answers (within a second) for its cluster pipes and
// the generations it dropped.
func (n *Node) peerPipes(ctx context.Context) []api.ClusterPipes {
	var mu sync.Mutex
	var answers []api.ClusterPipes
	n.cl.eachPeer(ctx, time.Second, 0, func(ctx context.Context, peer cluster.Node) {
		var a api.ClusterPipes
		if err := n.cl.call(ctx, peer, http.MethodGet, "/v1/cluster/pipes", nil, "", nil, &a); err != nil {
			return
		}
		mu.Lock()
		answers = append(answers, a)
		mu.Unlock()
	})
	return answers
}

// mergeDropped adds to the book the generations the other nodes that answer dropped.
func (n *Node) mergeDropped(ctx context.Context) {
	for _, a := range n.peerPipes(ctx) {
		if err := n.cl.book.merge(a.Dropped); err != nil {
			n.log.Warn("pipe: could not record the pipes other nodes dropped", "err", err)
		}
	}
}
