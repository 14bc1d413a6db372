package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/pipe"
)

// Leadership and replicas on a running cluster. The cluster file gives every region its
// first shape (replicas, the preferred leader first, term 0). A move of leadership or a
// change of replicas is made by the region's current leader, which gives the region a new
// term and tells every node; each node keeps the regions it was told of in
// <data>/cluster-regions.json and, when it starts, asks the other nodes for theirs (the
// highest term of each region wins), so a node that was down during a change learns it.
//
// A move (MoveLeader) stops the region's client writes on the old leader, waits for its
// replication pipes to drain (every follower has everything; the new leader in
// particular), closes its replica set, and hands the region to the new leader, which opens
// its own replica set; writes that waited meanwhile are refused with not_leader and the
// routing node sends them again to the new leader.

// regionStateFile keeps the regions this node was told of (terms > 0).
const regionStateFile = "cluster-regions.json"

// DefaultMoveTimeout bounds how long a leadership move waits for the followers to drain.
const DefaultMoveTimeout = 30 * time.Second

// region returns the current shape of region i of db.
func (cs *clusterState) region(db string, i int) (cluster.Region, error) {
	if _, err := cs.c.Region(db, i); err != nil {
		return cluster.Region{}, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.regions[cluster.RegionName(db, i)], nil
}

// placement returns the current shape of every region of db, by index.
func (cs *clusterState) placement(db string) ([]cluster.Region, error) {
	pl, err := cs.c.Placement(db)
	if err != nil {
		return nil, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i, r := range pl {
		pl[i] = cs.regions[r.Name]
	}
	return pl, nil
}

// regionByName returns the current shape of a region named "root.demo/1".
func (cs *clusterState) regionByName(name string) (cluster.Region, error) {
	k := strings.LastIndexByte(name, '/')
	if k < 0 {
		return cluster.Region{}, fmt.Errorf("region %q: want DATABASE/INDEX, e.g. root.demo/1", name)
	}
	i, err := strconv.Atoi(name[k+1:])
	if err != nil || strconv.Itoa(i) != name[k+1:] {
		// one spelling per region: its name keys the region's replica set and changes
		return cluster.Region{}, fmt.Errorf("region %q: the index %q is not a number (as in root.demo/1)", name, name[k+1:])
	}
	return cs.region(name[:k], i)
}

// checkRegion checks a region shape told by another node against the cluster file.
func (cs *clusterState) checkRegion(r cluster.Region) error {
	if _, err := cs.c.Region(r.Database, r.Index); err != nil {
		return err
	}
	if r.Name != cluster.RegionName(r.Database, r.Index) {
		return fmt.Errorf("region %q is not region %d of %s", r.Name, r.Index, r.Database)
	}
	if len(r.Replicas) == 0 {
		return fmt.Errorf("region %s: no replicas", r.Name)
	}
	seen := map[uint32]bool{}
	for _, id := range r.Replicas {
		if _, ok := cs.c.Node(id); !ok || seen[id] {
			return fmt.Errorf("region %s: replica %d is not a node of the cluster, or listed twice", r.Name, id)
		}
		seen[id] = true
	}
	return nil
}

// merge takes r if its term is higher than the region's; it reports whether it did.
func (cs *clusterState) merge(r cluster.Region) (bool, error) { return cs.mergeSet(r, nil) }

// mergeSet is merge that also installs ls, the replica set of a region this node now
// leads, with the new shape (so that no write sees one without the other).
func (cs *clusterState) mergeSet(r cluster.Region, ls *leaderSet) (bool, error) {
	if err := cs.checkRegion(r); err != nil {
		return false, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cur, ok := cs.regions[r.Name]; ok && cur.Term >= r.Term {
		return false, nil
	}
	r.Replicas = slices.Clone(r.Replicas)
	cs.regions[r.Name] = r
	if ls != nil {
		cs.sets[r.Name] = ls
	}
	return true, nil
}

// saveRegions writes the regions changed on the running cluster (terms > 0).
func (n *Node) saveRegions() error {
	cs := n.cl
	cs.saving.Lock()
	defer cs.saving.Unlock()
	cs.mu.Lock()
	var out []cluster.Region
	for _, r := range cs.regions {
		if r.Term > 0 {
			out = append(out, r)
		}
	}
	cs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := vfs.WriteFileAtomic(vfs.Default, filepath.Join(n.dir, regionStateFile), append(b, '\n')); err != nil {
		return fmt.Errorf("node: save %s: %w", regionStateFile, err)
	}
	return nil
}

// loadRegions sets every region's shape: the placement of the cluster file, then the
// changes this node saved, then those the other nodes that answer know (highest term wins).
func (n *Node) loadRegions(ctx context.Context) error {
	cs := n.cl
	cs.regions = map[string]cluster.Region{}
	for _, d := range cs.c.Databases {
		pl, err := cs.c.Placement(d.Name)
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		for _, r := range pl {
			cs.regions[r.Name] = r
		}
	}
	path := filepath.Join(n.dir, regionStateFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("node: %w", err)
	default:
		var saved []cluster.Region
		if err := json.Unmarshal(data, &saved); err != nil {
			return fmt.Errorf("node: %s: %w", path, err)
		}
		for _, r := range saved {
			if _, err := cs.merge(r); err != nil {
				return fmt.Errorf("node: %s: %w", path, err)
			}
		}
	}
	var mu sync.Mutex
	changed := false
	cs.eachPeer(ctx, time.Second, 0, func(ctx context.Context, peer cluster.Node) {
		var info api.Cluster
		if err := cs.call(ctx, peer, http.MethodGet, "/v1/cluster", nil, "", nil, &info); err != nil {
			return // down or starting: its changes were told to us, or will be
		}
		for _, r := range regionsOf(info) {
			ok, err := cs.merge(r)
			if err != nil {
				n.log.Warn("ignoring a region shape another node told", "from", peer.ID, "err", err)
			}
			mu.Lock()
			changed = changed || ok
			mu.Unlock()
		}
	})
	if changed {
		return n.saveRegions()
	}
	return nil
}

// regionsOf lists the regions of a cluster description.
func regionsOf(info api.Cluster) []cluster.Region {
	var out []cluster.Region
	for _, d := range info.Databases {
		for _, r := range d.Regions {
			out = append(out, cluster.Region{Database: d.Name, Index: r.Index, Name: r.Region, Replicas: r.Replicas, Term: r.Term})
		}
	}
	return out
}

// openSet opens the replica set of a region this node leads: one pipe per follower.
// caughtUp says the followers hold everything this node holds (it takes over from a
// drained leader): new pipes then ship from now on.
func (n *Node) openSet(reg cluster.Region, caughtUp bool) (*leaderSet, error) {
	cs := n.cl
	d, ok := n.Database(reg.Database)
	if !ok {
		return nil, fmt.Errorf("node: cluster: no database %s", reg.Database)
	}
	var fs []consensus.Follower
	for _, id := range reg.Followers() {
		f := n.follower(id)
		f.CaughtUp = caughtUp
		fs = append(fs, f)
	}
	set, err := consensus.Open(consensus.SetOptions{
		Name:      reg.Name,
		Protocol:  cs.protos[reg.Database],
		Leader:    d.Region(reg.Index),
		Followers: fs,
		PipesDir:  filepath.Join(n.dir, "replication", reg.Database, strconv.Itoa(reg.Index)),
		Logger:    n.log.With("replica_set", reg.Name),
	})
	if err != nil {
		return nil, fmt.Errorf("node: cluster: region %s: %w", reg.Name, err)
	}
	return &leaderSet{region: reg, proto: cs.protos[reg.Database], set: set}, nil
}

// follower is node id as a follower of this node's replica sets: the peer sink to its
// Flight receiver.
func (n *Node) follower(id uint32) consensus.Follower {
	peer, _ := n.cl.c.Node(id)
	return consensus.Follower{ID: FollowerID(id), Sink: pipe.PluginSpec{Plugin: "peer",
		Params: map[string]string{"node-urls": peer.Flight}}}
}

// apply takes a region shape told by its leader (or decided here): it is saved, and this
// node opens the region's replica set if it now leads it, closes it if it no longer does,
// and follows the change of followers if it still does.
func (n *Node) apply(r cluster.Region, cks map[string]pipe.Checkpoint) (bool, error) {
	cs := n.cl
	if err := cs.checkRegion(r); err != nil {
		return false, err
	}
	cs.mu.Lock()
	cur, known := cs.regions[r.Name]
	ls := cs.sets[r.Name]
	cs.mu.Unlock()
	if known && cur.Term >= r.Term {
		return false, nil
	}
	var opened *leaderSet
	var added []uint32 // the new followers of a region this node still leads
	if ls != nil && r.Leader() == cs.self.ID {
		// their pipes are created (as New: they ship every origin's writes) before the
		// shape is taken or saved: if one cannot be, the region stays as it was here, is
		// told to no one, and the change can be asked again; and once the shape is saved,
		// a restarted leader finds the pipe as it was created (AddPeer keeps an existing
		// pipe's spec), not an ordinary one that ships this node's own writes only
		for _, id := range r.Followers() {
			if slices.Contains(ls.region.Followers(), id) {
				continue
			}
			if err := n.addFollower(ls, id); err != nil {
				n.dropFollowers(ls, added)
				return false, err
			}
			added = append(added, id)
		}
	}
	if ls == nil && r.Leader() == cs.self.ID {
		// the replica set opens before the shape is taken: if it cannot, the region stays
		// as it was here, and the old leader keeps it (or hands it again)
		var err error
		if opened, err = n.openSet(r, true); err != nil {
			return false, err
		}
	}
	ok, err := cs.mergeSet(r, opened)
	if err != nil || !ok {
		if opened != nil {
			opened.set.Close()
		}
		n.dropFollowers(ls, added)
		return ok, err
	}
	if err := n.saveRegions(); err != nil {
		if ls != nil && r.Leader() == cs.self.ID {
			// a change of followers not saved is not made (nor told): the shape goes
			// back, the new pipes are dropped, and the change can be asked again
			cs.mu.Lock()
			if now := cs.regions[r.Name]; now.Term == r.Term && known {
				cs.regions[r.Name] = cur
			}
			cs.mu.Unlock()
			n.dropFollowers(ls, added)
			return false, err
		}
		return true, err
	}
	n.log.Info("region changed", "region", r.Name, "leader", r.Leader(), "replicas", r.Replicas, "term", r.Term)
	switch {
	case opened != nil:
		n.restartPipesOver(r, cks) // the user pipes' tasks of the region run here now
	case ls != nil && r.Leader() != cs.self.ID:
		ls.wmu.Lock()
		ls.closed = true
		cs.mu.Lock()
		delete(cs.sets, r.Name)
		cs.mu.Unlock()
		err := ls.set.Close()
		ls.wmu.Unlock()
		n.restartPipesOver(r, nil) // and no longer here
		if err != nil {
			return true, fmt.Errorf("node: close replica set %s: %w", r.Name, err)
		}
	case ls != nil:
		var errs []error // (the new followers' pipes were added above)
		for _, id := range ls.region.Followers() {
			if !slices.Contains(r.Followers(), id) {
				errs = append(errs, ls.set.RemovePeer(FollowerID(id)))
			}
		}
		cs.mu.Lock() // ReplicaSets reads it
		ls.region = r
		cs.mu.Unlock()
		return true, errors.Join(errs...)
	}
	return true, nil
}

// addFollowerHook, when set (by tests), is called by addFollower before it adds a pipe;
// an error it returns is addFollower's.
var addFollowerHook atomic.Pointer[func(id uint32) error]

// addFollower starts the pipe of node id, a replica added to a region this node leads: it
// ships everything the leader holds, whatever the origin (New).
func (n *Node) addFollower(ls *leaderSet, id uint32) error {
	if h := addFollowerHook.Load(); h != nil {
		if err := (*h)(id); err != nil {
			return err
		}
	}
	f := n.follower(id)
	f.New = true
	if err := ls.set.AddPeer(f); err != nil {
		// a pipe created but not started is dropped too (AddPeer with New would drop it
		// first anyway, and a restarted leader drops the pipes of non-followers)
		_ = ls.set.RemovePeer(f.ID)
		return fmt.Errorf("node: region %s: add replica %d: %w", ls.region.Name, id, err)
	}
	return nil
}

// dropFollowers drops the pipes addFollower added for a change that was not made.
func (n *Node) dropFollowers(ls *leaderSet, ids []uint32) {
	for _, id := range ids {
		if err := ls.set.RemovePeer(FollowerID(id)); err != nil {
			n.log.Warn("dropping the pipe of a replica not added", "region", ls.region.Name, "replica", id, "err", err)
		}
	}
}

// tell sends a region's new shape to every other node; it returns the nodes it could not
// reach (they learn it when they start).
func (n *Node) tell(ctx context.Context, r cluster.Region, skip uint32) []string {
	cs := n.cl
	body, _ := json.Marshal(api.RegionTell{Region: regionInfo(r)})
	var mu sync.Mutex
	var missed []string
	cs.eachPeer(ctx, 5*time.Second, skip, func(ctx context.Context, peer cluster.Node) {
		if err := cs.call(ctx, peer, http.MethodPut, "/v1/cluster/regions", nil, "application/json", body, nil); err != nil {
			mu.Lock()
			missed = append(missed, fmt.Sprintf("node %d: %v", peer.ID, err))
			mu.Unlock()
		}
	})
	sort.Strings(missed)
	return missed
}

func regionInfo(r cluster.Region) api.ClusterRegion {
	return api.ClusterRegion{Database: r.Database, Region: r.Name, Index: r.Index, Leader: r.Leader(), Replicas: r.Replicas, Term: r.Term}
}

// ---------------------------------------------------------------- changes

// changeLock serializes the changes of one region on its leader.
func (cs *clusterState) changeLock(name string) *sync.Mutex {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.changing == nil {
		cs.changing = map[string]*sync.Mutex{}
	}
	m := cs.changing[name]
	if m == nil {
		m = &sync.Mutex{}
		cs.changing[name] = m
	}
	return m
}

// lockRegion takes the change lock of a region (by name) and returns its current shape.
func (cs *clusterState) lockRegion(name string) (cluster.Region, func(), error) {
	mu := cs.changeLock(name)
	mu.Lock()
	reg, err := cs.regionByName(name)
	if err != nil {
		mu.Unlock()
		return cluster.Region{}, nil, badRequest("region", "%v", err)
	}
	return reg, mu.Unlock, nil
}

// MoveLeader moves the leadership of a region this node leads to another of its replicas:
// client writes of the region stop here, the replication pipes drain (within timeout;
// every follower must be caught up), the replica set closes, and the new leader takes the
// region. The answer says how long writes waited.
func (n *Node) MoveLeader(ctx context.Context, name string, to uint32, timeout time.Duration) (api.RegionChange, error) {
	cs := n.cl
	if cs == nil {
		return api.RegionChange{}, notInCluster(n.o.ID)
	}
	if timeout <= 0 {
		timeout = DefaultMoveTimeout
	}
	reg, unlock, err := cs.lockRegion(name)
	if err != nil {
		return api.RegionChange{}, err
	}
	defer unlock()
	out := api.RegionChange{Region: name, Before: regionInfo(reg)}
	if reg.Leader() == to {
		out.After = out.Before
		return out, nil
	}
	if !reg.Has(to) {
		return out, badRequest("node", "node %d holds no replica of %s (replicas %v): add it first", to, name, reg.Replicas)
	}
	ls := cs.leader(name)
	if ls == nil {
		return out, notLeader(n.o.ID, reg)
	}
	peer, _ := cs.c.Node(to)
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = cs.call(hctx, peer, http.MethodGet, "/v1/cluster", nil, "", nil, nil)
	cancel()
	if err != nil {
		return out, fmt.Errorf("move %s to node %d: %w", name, to, err)
	}
	start := time.Now()
	ls.wmu.Lock() // writes in flight finish; new ones wait
	dctx, cancel := context.WithTimeout(ctx, timeout)
	err = ls.set.WaitCaughtUp(dctx)
	cancel()
	if err != nil {
		ls.wmu.Unlock()
		return out, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
			Message: fmt.Sprintf("move %s to node %d: the followers did not catch up within %s (%s); writes go on at node %d",
				name, to, timeout, lagging(ls.set.Status()), n.o.ID)}
	}
	next := reg.WithLeader(to)
	next.Term = reg.Term + 1
	// the user pipes' tasks of the region stop here; their checkpoints go with the region
	cks, err := n.handOff(reg)
	if err != nil {
		n.keep(reg)
		ls.wmu.Unlock()
		return out, fmt.Errorf("move %s to node %d: %w", name, to, err)
	}
	// the new leader first: if it refuses, this node keeps the region
	err = cs.handTo(ctx, peer, mustJSON(api.RegionTell{Region: regionInfo(next), Checkpoints: cks}))
	if err != nil {
		n.keep(reg)
		ls.wmu.Unlock()
		return out, fmt.Errorf("move %s to node %d: %w", name, to, err)
	}
	ls.closed = true
	cerr := ls.set.Close()
	// the new shape is taken before the set goes: a write that finds no set here then
	// finds the new leader in this node's view (not itself, which would send it back here)
	_, merr := cs.merge(next)
	cs.mu.Lock()
	delete(cs.sets, name)
	cs.mu.Unlock()
	if merr != nil {
		ls.wmu.Unlock()
		return out, merr
	}
	cs.mu.Lock()
	delete(cs.leaving, name)
	cs.mu.Unlock()
	serr := n.saveRegions()
	ls.wmu.Unlock() // writes that waited are refused: not_leader, the router sends them on
	out.WritesPausedMS = float64(time.Since(start).Microseconds()) / 1000
	// the other nodes after the writes resume (one that hangs would hold them)
	out.Missed = n.tell(ctx, next, to)
	out.After = regionInfo(next)
	n.log.Info("leadership moved", "region", name, "from", n.o.ID, "to", to, "term", next.Term, "paused", time.Since(start))
	return out, errors.Join(cerr, serr)
}

// handTo tells a region's new shape to its new leader. The new leader takes a shape once
// (a term it holds already is answered as taken), so the request is sent again when its
// answer is lost, and the caller giving up does not interrupt it: an answer lost after the
// new leader took the region would leave two leaders.
func (cs *clusterState) handTo(ctx context.Context, peer cluster.Node, body []byte) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	for try := 0; try < 3; try++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = cs.call(cctx, peer, http.MethodPut, "/v1/cluster/regions", nil, "application/json", body, nil)
		cancel()
		if err == nil || !retryable(err) {
			return err
		}
	}
	return err
}

// ChangeReplicas adds node add to the replicas of a region this node leads (its pipe
// ships the history as files, then realtime) or removes node remove (its pipe and pins
// are dropped; the removed node keeps its copy, which nothing reads any more).
func (n *Node) ChangeReplicas(ctx context.Context, name string, add, remove uint32) (api.RegionChange, error) {
	cs := n.cl
	if cs == nil {
		return api.RegionChange{}, notInCluster(n.o.ID)
	}
	if (add == 0) == (remove == 0) {
		return api.RegionChange{}, badRequest("add", "give one of add and remove (a node id)")
	}
	reg, unlock, err := cs.lockRegion(name)
	if err != nil {
		return api.RegionChange{}, err
	}
	defer unlock()
	out := api.RegionChange{Region: name, Before: regionInfo(reg)}
	if cs.leader(name) == nil {
		return out, notLeader(n.o.ID, reg)
	}
	next := reg
	next.Replicas = slices.Clone(reg.Replicas)
	switch {
	case add != 0:
		if _, ok := cs.c.Node(add); !ok {
			return out, badRequest("add", "node %d is not in the cluster file", add)
		}
		if reg.Has(add) {
			out.After = out.Before
			return out, nil
		}
		if cs.protos[reg.Database].Name() == consensus.Simple {
			return out, badRequest("add", "database %s uses protocol simple, which keeps one replica", reg.Database)
		}
		next.Replicas = append(next.Replicas, add)
	default:
		if !reg.Has(remove) {
			out.After = out.Before
			return out, nil
		}
		if remove == reg.Leader() {
			return out, badRequest("remove", "node %d leads %s: move the leadership first (pipectl region leader %s --node ID)", remove, name, name)
		}
		next.Replicas = slices.DeleteFunc(next.Replicas, func(x uint32) bool { return x == remove })
	}
	next.Term = reg.Term + 1
	if _, err := n.apply(next, nil); err != nil {
		return out, err
	}
	out.Missed = n.tell(ctx, next, 0)
	out.After = regionInfo(next)
	n.log.Info("replicas changed", "region", name, "replicas", next.Replicas, "term", next.Term)
	return out, nil
}

// lagging names the followers that are not caught up.
func lagging(st consensus.Status) string {
	var out []string
	for _, f := range st.Followers {
		if f.LagEvents > 0 || f.Phase != pipe.PhaseRunning {
			s := fmt.Sprintf("%s: %s, %d events behind", f.ID, f.Phase, f.LagEvents)
			if f.LastError != "" {
				s += ", " + f.LastError
			}
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return "no follower lags now"
	}
	return strings.Join(out, "; ")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func notInCluster(id uint32) *api.Error {
	return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("node %d is not in a cluster (start it with --cluster FILE)", id)}
}

func notLeader(self uint32, reg cluster.Region) error {
	return &api.Error{Status: http.StatusConflict, Code: api.CodeNotLeader,
		Message: fmt.Sprintf("node %d does not lead %s (node %d does): send it without local=true, or to node %d", self, reg.Name, reg.Leader(), reg.Leader())}
}

// ---------------------------------------------------------------- HTTP

// handleRegionChange serves POST /v1/cluster/regions/leader and /replicas: any node takes
// it and sends it to the region's leader, which makes the change.
func (n *Node) handleRegionChange(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n.cl == nil {
			writeError(w, notInCluster(n.o.ID))
			return
		}
		var req api.RegionChangeRequest
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, apiError(err))
			return
		}
		reg, err := n.cl.regionByName(req.Region)
		if err != nil {
			writeError(w, badRequest("region", "%v", err))
			return
		}
		var timeout time.Duration
		if err := checkRegionChange(kind, req, &timeout); err != nil {
			writeError(w, err)
			return
		}
		if reg.Leader() != n.o.ID {
			to, _ := n.cl.c.Node(reg.Leader())
			var out api.RegionChange
			if err := n.cl.call(r.Context(), to, http.MethodPost, r.URL.Path, nil, "application/json", mustJSON(req), &out); err != nil {
				writeError(w, apiError(err))
				return
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		var out api.RegionChange
		switch kind {
		case "leader":
			out, err = n.MoveLeader(r.Context(), req.Region, req.Node, timeout)
		default:
			out, err = n.ChangeReplicas(r.Context(), req.Region, req.Add, req.Remove)
		}
		if err != nil {
			writeError(w, apiError(err))
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// checkRegionChange checks the fields of a region change of kind leader or replicas (a
// field of the other kind is refused, not ignored) and reads the timeout of a move.
func checkRegionChange(kind string, req api.RegionChangeRequest, timeout *time.Duration) *api.Error {
	if kind == "leader" {
		switch {
		case req.Add != 0:
			return badRequest("add", "not a field of a leadership move (POST /v1/cluster/regions/replicas adds a replica)")
		case req.Remove != 0:
			return badRequest("remove", "not a field of a leadership move (POST /v1/cluster/regions/replicas removes a replica)")
		case req.Node == 0:
			return badRequest("node", "the id of the new leader is required")
		}
		if req.Timeout != "" {
			d, err := time.ParseDuration(req.Timeout)
			if err != nil || d <= 0 {
				return badRequest("timeout", "%q is not a positive duration", req.Timeout)
			}
			*timeout = d
		}
		return nil
	}
	switch {
	case req.Node != 0:
		return badRequest("node", "not a field of a change of replicas (POST /v1/cluster/regions/leader moves the leadership)")
	case req.Timeout != "":
		return badRequest("timeout", "not a field of a change of replicas")
	case (req.Add == 0) == (req.Remove == 0):
		return badRequest("add", "give one of add and remove (a node id)")
	}
	return nil
}

// handleTellRegion serves PUT /v1/cluster/regions: a region's new shape from its leader.
func (n *Node) handleTellRegion(w http.ResponseWriter, r *http.Request) {
	if n.cl == nil {
		writeError(w, notInCluster(n.o.ID))
		return
	}
	var tell api.RegionTell
	if err := decodeJSON(r, &tell); err != nil {
		writeError(w, apiError(err))
		return
	}
	cr := tell.Region
	reg := cluster.Region{Database: cr.Database, Index: cr.Index, Name: cr.Region, Replicas: cr.Replicas, Term: cr.Term}
	if len(reg.Replicas) == 0 || reg.Replicas[0] != cr.Leader {
		writeError(w, badRequest("leader", "%d is not the first of the replicas %v", cr.Leader, cr.Replicas))
		return
	}
	if err := n.cl.checkRegion(reg); err != nil {
		writeError(w, badRequest("region", "%v", err))
		return
	}
	// one shape at a time (a hand-off sent again must not open a second replica set)
	mu := n.cl.changeLock(reg.Name)
	mu.Lock()
	defer mu.Unlock()
	if _, err := n.apply(reg, tell.Checkpoints); err != nil {
		writeError(w, apiError(err))
		return
	}
	writeJSON(w, http.StatusOK, regionInfo(reg))
}
