package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sourcegraph/conc/pool"
	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/node/api"
)

// A node of a cluster (Options.Cluster) holds a replica of every region of each
// replicated database (the cluster file's databases; regions it does not replicate stay
// empty), leads the regions the placement gives it, and runs a consensus.ReplicaSet for
// each: one pipe per follower, whose sink is the peer sink to the follower's Flight
// address. Followers apply what their leaders ship through their Flight receiver; the
// writes keep their origin, so nothing is shipped back.
//
// The HTTP API routes by region: a write or deletion is split by region and each part
// goes to the region's leader (this node, or the leader's /v1/write or /v1/delete with
// local=true); a query or digest fans out to the regions (the leader answers, another
// replica when it cannot) and merges the answers; a flush reaches every node. local=true
// on any of them keeps the request on this node (its own replicas; a write or deletion
// only in the regions it leads).

// FollowerID is the follower id of node id in its leaders' replica sets ("node-2"); the
// replication pipe to it is consensus.PipeName(protocol, FollowerID(id)).
func FollowerID(id uint32) string { return "node-" + strconv.FormatUint(uint64(id), 10) }

// admitPeer refuses a peer stream into a database the cluster replicates, unless it is a
// replication pipe to this node (consensus.PipeName of this node's FollowerID) from
// another node of the cluster (the sender region's origin carries its node's id): the
// receiver writes into this node's own replica, which a stream from outside the cluster
// would make differ from the others (at a follower), or never reach them (at a leader,
// whose replication pipes ship no other origin's writes).
func (n *Node) admitPeer(database, pipeName string, origin uint32) error {
	if n.cl == nil {
		return nil
	}
	if _, replicated := n.cl.c.Database(database); !replicated {
		return nil
	}
	from := origin >> 16
	to, replication := consensus.PipeFollower(pipeName)
	if _, member := n.cl.c.Node(from); member && from != n.o.ID && replication && to == FollowerID(n.o.ID) {
		return nil
	}
	return fmt.Errorf("database %s is replicated by the cluster, and only its replication pipes write into a replica: send the pipe into a database of this node alone (not in the cluster file), or write through the HTTP API, which routes to the leaders", database)
}

// leaderSet is a region this node leads. Client writes of the region hold wmu for reading
// while they are admitted and applied; a leadership move holds it for writing while the
// followers drain, and sets closed.
type leaderSet struct {
	region cluster.Region
	proto  consensus.Protocol
	set    *consensus.ReplicaSet
	wmu    sync.RWMutex
	closed bool
}

// clusterState is what a node of a cluster keeps: the cluster, the current shape of every
// region, its replica sets and the HTTP client that reaches the other nodes.
type clusterState struct {
	c      *cluster.Cluster
	self   cluster.Node
	protos map[string]consensus.Protocol // by database
	hc     *http.Client
	tr     *http.Transport

	mu       sync.Mutex
	sets     map[string]*leaderSet     // by region name
	regions  map[string]cluster.Region // current shapes, by region name
	changing map[string]*sync.Mutex    // serializes a region's changes on its leader
	leaving  map[string]bool           // regions whose leadership is being handed off
	book     *pipeBook                 // the cluster pipes' generations, and those dropped
	// pipeOps serializes the cluster pipes' starts, stops and drops with what the book
	// records of them (a start and a stop at once leave the pipe as the later one asked)
	pipeOps sync.Mutex
	// saving serializes saveRegions' copy and write, so that the last write holds the last
	// change (two regions changed at once could otherwise land the older copy last)
	saving sync.Mutex
}

func newClusterState(c *cluster.Cluster, id uint32) (*clusterState, error) {
	self, ok := c.Node(id)
	if !ok {
		return nil, fmt.Errorf("node: cluster: node %d is not in the cluster file", id)
	}
	cs := &clusterState{c: c, self: self, protos: map[string]consensus.Protocol{}, sets: map[string]*leaderSet{}}
	for _, d := range c.Databases {
		p, err := consensus.New(d.Protocol, d.Options)
		if err != nil {
			return nil, fmt.Errorf("node: cluster: database %s: %w", d.Name, err)
		}
		cs.protos[d.Name] = p
	}
	cs.tr = http.DefaultTransport.(*http.Transport).Clone()
	cs.tr.MaxIdleConnsPerHost = 16
	cs.hc = &http.Client{Transport: cs.tr}
	return cs, nil
}

// eachPeer runs fn for every other node of the cluster but skip (0: none), several at once
// (fanOut), each with its own timeout, and waits for them all. fn's calls run concurrently.
func (cs *clusterState) eachPeer(ctx context.Context, timeout time.Duration, skip uint32, fn func(ctx context.Context, peer cluster.Node)) {
	p := pool.New().WithMaxGoroutines(fanOut)
	for _, peer := range cs.c.Nodes {
		if peer.ID == cs.self.ID || peer.ID == skip {
			continue
		}
		p.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			fn(cctx, peer)
		})
	}
	p.Wait()
}

// Cluster returns the cluster the node is a member of (nil when it runs alone).
func (n *Node) Cluster() *cluster.Cluster {
	if n.cl == nil {
		return nil
	}
	return n.cl.c
}

// dbRegionOptions are the options of the regions of database name: the node's, adjusted by
// the protocol of a replicated database (fast: the seal interval). They apply to every
// replica of the region (a fast follower only receives sealed files, so its memtable stays
// empty and the interval does nothing there).
func (n *Node) dbRegionOptions(name string) engine.Options {
	o := n.regionOptions()
	if n.cl != nil {
		if p := n.cl.protos[name]; p != nil {
			p.LeaderOptions(&o)
		}
	}
	return o
}

// prepareCluster creates the replicated databases (with the cluster file's regions),
// installs the write gate and learns the regions' current shapes.
func (n *Node) prepareCluster() error {
	cs := n.cl
	for _, cd := range cs.c.Databases {
		d, err := n.CreateDatabase(cd.Name, cd.Regions)
		if err != nil {
			return fmt.Errorf("node: cluster: %w", err)
		}
		d.gate = func(ctx context.Context, region int) (func(), error) { return n.admit(ctx, cd.Name, region) }
		n.log.Info("replicated database", "database", cd.Name, "protocol", cd.Protocol, "replication", cd.Replication, "regions", cd.Regions)
	}
	book, err := loadPipeBook(n.dir)
	if err != nil {
		return err
	}
	cs.book = book
	return n.loadRegions(context.Background())
}

// openCluster opens a replica set for every region this node leads.
func (n *Node) openCluster() error {
	cs := n.cl
	for _, cd := range cs.c.Databases {
		pl, err := cs.placement(cd.Name)
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		for _, reg := range pl {
			if reg.Leader() != cs.self.ID {
				continue
			}
			ls, err := n.openSet(reg, false)
			if err != nil {
				return err
			}
			cs.mu.Lock()
			cs.sets[reg.Name] = ls
			cs.mu.Unlock()
		}
	}
	return nil
}

// closeCluster stops the replica sets (their pipes save their progress).
func (n *Node) closeCluster() error {
	if n.cl == nil {
		return nil
	}
	cs := n.cl
	cs.mu.Lock()
	sets := cs.sets
	cs.sets = map[string]*leaderSet{}
	cs.mu.Unlock()
	var errs []error
	for name, ls := range sets {
		if err := ls.set.Close(); err != nil {
			errs = append(errs, fmt.Errorf("replica set %s: %w", name, err))
		}
	}
	cs.tr.CloseIdleConnections()
	return errors.Join(errs...)
}

func (cs *clusterState) leader(region string) *leaderSet {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.sets[region]
}

// admit is the write gate of a replicated database: only the region's leader takes client
// writes, once its protocol admits them (iot: the follower backlog). The write must call
// release once applied (a leadership move waits for it).
func (n *Node) admit(ctx context.Context, db string, region int) (release func(), err error) {
	name := RegionName(db, region)
	ls := n.cl.leader(name)
	if ls != nil {
		ls.wmu.RLock()
		if ls.closed {
			ls.wmu.RUnlock()
			ls = nil
		}
	}
	if ls == nil {
		reg, err := n.cl.region(db, region)
		if err != nil {
			return nil, err
		}
		return nil, notLeader(n.o.ID, reg)
	}
	if err := ls.proto.Admit(ctx, ls.set); err != nil {
		ls.wmu.RUnlock()
		if errors.Is(err, consensus.ErrBacklog) {
			return nil, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeBacklog, Message: fmt.Sprintf("%s: %v", name, err)}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ls.wmu.RUnlock, nil
}

// routed reports whether requests about database db are routed by region (the node is in
// a cluster that replicates db, and the request does not ask for local=true).
func (n *Node) routed(db string, local bool) bool {
	if n.cl == nil || local {
		return false
	}
	_, ok := n.cl.c.Database(db)
	return ok
}

// localParam reads ?local=true.
func localParam(r *http.Request) (bool, error) { return boolParam(r, "local") }

// ---------------------------------------------------------------- calls to other nodes

// call sends a request to another node of the cluster and decodes its JSON answer into out;
// an error answer is returned as its *api.Error, an unreachable node as an unavailable one.
func (cs *clusterState) call(ctx context.Context, to cluster.Node, method, path string, q url.Values, contentType string, body []byte, out any) error {
	u := to.URL() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("node %d: %w", to.ID, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := cs.hc.Do(req)
	if err != nil {
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
			Message: fmt.Sprintf("node %d (%s) is unreachable: %v", to.ID, to.HTTP, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
			Message: fmt.Sprintf("node %d (%s): reading the answer: %v", to.ID, to.HTTP, err)}
	}
	if resp.StatusCode/100 != 2 {
		e := &api.Error{}
		if err := json.Unmarshal(data, e); err != nil || e.Code == "" {
			e = &api.Error{Code: api.CodeInternal, Message: strings.TrimSpace(string(data))}
		}
		e.Status = resp.StatusCode
		e.Message = fmt.Sprintf("node %d: %s", to.ID, e.Message)
		return e
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("node %d %s %s: decoding the answer: %w", to.ID, method, path, err)
	}
	return nil
}

// readOrder is the order in which the replicas of a region are asked to answer a read:
// the leader first (it has every acknowledged write), then this node if it holds a
// replica, then the others.
func (cs *clusterState) readOrder(reg cluster.Region) []uint32 {
	out := []uint32{reg.Leader()}
	if reg.Leader() != cs.self.ID && reg.Has(cs.self.ID) {
		out = append(out, cs.self.ID)
	}
	for _, id := range reg.Followers() {
		if id != cs.self.ID {
			out = append(out, id)
		}
	}
	return out
}

// retryable reports whether another replica may answer a read that failed with err.
func retryable(err error) bool {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status >= 500
	}
	return true
}

// ---------------------------------------------------------------- cluster API

func (n *Node) handleCluster(w http.ResponseWriter, r *http.Request) {
	if n.cl == nil {
		writeError(w, notInCluster(n.o.ID))
		return
	}
	writeJSON(w, http.StatusOK, n.ClusterInfo())
}

// ClusterInfo describes the node's cluster: nodes and each replicated database's
// placement (zero when the node is not in a cluster).
func (n *Node) ClusterInfo() api.Cluster {
	if n.cl == nil {
		return api.Cluster{}
	}
	c := n.cl.c
	out := api.Cluster{Self: n.o.ID, Nodes: []api.ClusterNode{}, Databases: []api.ClusterDatabase{}}
	for _, x := range c.Nodes {
		out.Nodes = append(out.Nodes, api.ClusterNode{ID: x.ID, HTTP: x.HTTP, Flight: x.Flight})
	}
	for _, d := range c.Databases {
		cd := api.ClusterDatabase{Name: d.Name, Protocol: d.Protocol, Replication: d.Replication}
		pl, _ := n.cl.placement(d.Name)
		for _, reg := range pl {
			cd.Regions = append(cd.Regions, regionInfo(reg))
		}
		out.Databases = append(out.Databases, cd)
	}
	return out
}

// ReplicaSets returns the replication state of the regions this node leads, by region.
func (n *Node) ReplicaSets() []api.ReplicaSet {
	out := []api.ReplicaSet{}
	if n.cl == nil {
		return out
	}
	type led struct {
		region cluster.Region
		set    *consensus.ReplicaSet
	}
	n.cl.mu.Lock() // guards each set's region too (a change of replicas sets it)
	sets := make([]led, 0, len(n.cl.sets))
	for _, ls := range n.cl.sets {
		sets = append(sets, led{ls.region, ls.set})
	}
	n.cl.mu.Unlock()
	sort.Slice(sets, func(i, j int) bool {
		a, b := sets[i].region, sets[j].region
		if a.Database != b.Database {
			return a.Database < b.Database
		}
		return a.Index < b.Index
	})
	for _, ls := range sets {
		st := ls.set.Status()
		rs := api.ReplicaSet{Status: st, Database: ls.region.Database, Index: ls.region.Index, Leader: n.o.ID, FollowerNodes: []uint32{}}
		if rs.Followers == nil {
			rs.Followers = []consensus.FollowerStatus{}
		}
		for _, f := range st.Followers {
			id, _ := strconv.ParseUint(strings.TrimPrefix(f.ID, "node-"), 10, 32)
			rs.FollowerNodes = append(rs.FollowerNodes, uint32(id))
		}
		out = append(out, rs)
	}
	return out
}

func (n *Node) handleReplicaSets(w http.ResponseWriter, r *http.Request) {
	if n.cl == nil {
		writeError(w, notInCluster(n.o.ID))
		return
	}
	writeJSON(w, http.StatusOK, n.ReplicaSets())
}
