package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/node/client"
	"github.com/weir-dev/weir/pipe"
)

// clusterMember is an in-process node of a test cluster that can be stopped and opened again
// on its data directory.
type clusterMember struct {
	t   *testing.T
	c   *cluster.Cluster
	id  uint32
	dir string
	n   *node.Node
}

func (m *clusterMember) open() {
	m.t.Helper()
	cn, _ := m.c.Node(m.id)
	m.n = openNode(m.t, m.c, m.id, m.dir, cn.HTTP)
}

// nodeRequest sends method path (and body, if any) to node id of c and returns the HTTP
// status; a request that cannot be sent is a test error (t.Error: callable from goroutines)
// and returns 0.
func nodeRequest(t *testing.T, ctx context.Context, c *cluster.Cluster, id uint32, method, path, body string) int {
	t.Helper()
	n, _ := c.Node(id)
	req, err := http.NewRequestWithContext(ctx, method, n.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// demoCluster starts a cluster of three nodes holding root.demo (iotv2, replication 3, two
// regions) and returns it, its members and a client of each node, by id.
func demoCluster(t *testing.T) (*cluster.Cluster, map[uint32]*clusterMember, map[uint32]*client.Client) {
	t.Helper()
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 3, regions: 2}\n")
	ms := startMembers(t, c)
	return c, ms, clientsOf(c)
}

// openNode opens and starts node id of c on dir with its HTTP API on httpAddr (the cluster
// file's address, or another one behind a proxy standing at that address).
func openNode(t *testing.T, c *cluster.Cluster, id uint32, dir, httpAddr string, opts ...func(*node.Options)) *node.Node {
	t.Helper()
	cn, _ := c.Node(id)
	o := node.Options{ID: cn.ID, DataDir: dir, HTTPAddr: httpAddr, FlightAddr: cn.Flight, AutoCreate: true,
		Cluster: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range opts {
		f(&o)
	}
	n, err := node.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

func (m *clusterMember) close() {
	m.t.Helper()
	if m.n == nil {
		return
	}
	if err := m.n.Close(); err != nil {
		m.t.Error(err)
	}
	m.n = nil
}

func startMembers(t *testing.T, c *cluster.Cluster) map[uint32]*clusterMember {
	out := map[uint32]*clusterMember{}
	for _, cn := range c.Nodes {
		m := &clusterMember{t: t, c: c, id: cn.ID, dir: t.TempDir()}
		m.open()
		t.Cleanup(m.close)
		out[cn.ID] = m
	}
	return out
}

// clientsOf returns a client of every node of c, by id.
// startCopy creates the copy pipe (copySpec) through cl, started.
func startCopy(t *testing.T, c0 context.Context, cl *client.Client) {
	t.Helper()
	if _, err := cl.CreatePipe(c0, []byte(copySpec), client.CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
}

// copyPipe returns the copy pipe as cl's node describes it.
func copyPipe(t *testing.T, c0 context.Context, cl *client.Client) api.Pipe {
	t.Helper()
	p, err := cl.Pipe(c0, "copy")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func clientsOf(c *cluster.Cluster) map[uint32]*client.Client {
	out := map[uint32]*client.Client{}
	for _, n := range c.Nodes {
		out[n.ID] = client.New(n.URL())
	}
	return out
}

// deviceIn returns a device of root.demo that lives in region i of n.
func deviceIn(i, n int) string {
	for k := 0; ; k++ {
		d := fmt.Sprintf("root.demo.dev%d", k)
		if node.RegionIndex(d, n) == i {
			return d
		}
	}
}

// regionOf returns region name as node c describes it.
func regionOf(t *testing.T, c *client.Client, name string) api.ClusterRegion {
	t.Helper()
	info, err := c.Cluster(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range info.Databases {
		for _, r := range d.Regions {
			if r.Region == name {
				return r
			}
		}
	}
	t.Fatalf("no region %s in %+v", name, info)
	return api.ClusterRegion{}
}

// waitReplicasEqual waits until every replica of region i of root.demo has the same digest
// with points points.
func waitReplicasEqual(t *testing.T, c *cluster.Cluster, r api.ClusterRegion, points int64) {
	t.Helper()
	waitFor(t, "replicas of "+r.Region+" equal", 30*time.Second, func() (bool, string) {
		var ds []string
		ok := true
		var first string
		for k, id := range r.Replicas {
			n, _ := c.Node(id)
			var d api.Digest
			getJSON(t, fmt.Sprintf("%s/v1/digest?db=root.demo&regions=%d&local=true", n.URL(), r.Index), &d)
			ds = append(ds, fmt.Sprintf("node %d: %s %d", id, d.Digest, d.Points))
			if k == 0 {
				first = d.Digest
			}
			ok = ok && d.Points == points && d.Digest == first
		}
		return ok, strings.Join(ds, "; ")
	})
}

// A region's leadership moves while a client writes to it through another node: every
// write is acknowledged (the ones that waited are sent on to the new leader) and present
// on every replica; every node, including one that was down during the move, learns the
// new leader. A replica is removed and added back; bad changes are refused naming the key.
func TestLeaderMoveAndReplicas(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	dev := deviceIn(0, 2)
	if r := regionOf(t, cl[1], "root.demo/0"); r.Leader != 1 || r.Term != 0 {
		t.Fatalf("root.demo/0 before: %+v", r)
	}

	// a writer through node 3 while the leadership of root.demo/0 moves from node 1 to node 2
	var (
		wg     sync.WaitGroup
		acked  int64
		werr   error
		stop   = make(chan struct{})
		moving = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20000; i++ {
			if i == 50 {
				close(moving)
			}
			select {
			case <-stop:
				return
			default:
			}
			res, err := cl[3].Write(c0, strings.NewReader(fmt.Sprintf("%s v=%di %d\n", dev, i, 1000+i)))
			if err != nil {
				werr = fmt.Errorf("write %d: %w", i, err)
				return
			}
			acked += res.Points
		}
	}()
	<-moving
	ch, err := cl[3].MoveLeader(c0, "root.demo/0", 2, 20*time.Second)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	if werr != nil {
		t.Fatalf("a write during the move: %v", werr)
	}
	if ch.Before.Leader != 1 || ch.After.Leader != 2 || ch.After.Term != 1 || !slices.Equal(ch.After.Replicas, []uint32{2, 1, 3}) || len(ch.Missed) != 0 {
		t.Errorf("change: %+v", ch)
	}
	for id := range ms {
		if r := regionOf(t, cl[id], "root.demo/0"); r.Leader != 2 || r.Term != 1 {
			t.Errorf("node %d: root.demo/0 is %+v", id, r)
		}
	}
	// writes through the old leader reach the new one
	res, err := cl[1].Write(c0, strings.NewReader(dev+" v=-1i 1\n"))
	if err != nil || res.Points != 1 {
		t.Fatalf("write through node 1: %+v %v", res, err)
	}
	acked++
	sets, _ := cl[2].ReplicaSets(c0)
	found := false
	for _, s := range sets {
		if s.Region == "root.demo/0" {
			found = slices.Equal(s.FollowerNodes, []uint32{1, 3})
		}
	}
	if !found {
		t.Errorf("node 2 does not lead root.demo/0 with followers 1, 3: %+v", sets)
	}
	waitReplicasEqual(t, c, regionOf(t, cl[1], "root.demo/0"), acked)

	// node 3 is down while the leadership moves back to node 1; it learns it when it starts
	ms[3].close()
	if _, err := cl[2].Write(c0, strings.NewReader(dev+" v=-3i 3\n")); err != nil {
		t.Fatal(err)
	}
	acked++
	if _, err := cl[2].MoveLeader(c0, "root.demo/0", 1, 2*time.Second); err == nil || !strings.Contains(err.Error(), "node-3") {
		t.Errorf("move with a follower down: %v", err)
	}
	if _, err := cl[2].ChangeReplicas(c0, "root.demo/0", 0, 3); err != nil {
		t.Fatalf("remove node 3: %v", err)
	}
	ch, err = cl[1].MoveLeader(c0, "root.demo/0", 1, 20*time.Second)
	if err != nil || ch.After.Leader != 1 || ch.After.Term != 3 || len(ch.Missed) != 1 {
		t.Fatalf("move back: %+v %v", ch, err)
	}
	ms[3].open()
	if r := regionOf(t, cl[3], "root.demo/0"); r.Leader != 1 || r.Term != 3 || !slices.Equal(r.Replicas, []uint32{1, 2}) {
		t.Errorf("node 3 after its restart: root.demo/0 is %+v", r)
	}
	// node 3 back among the replicas: its pipe ships the history
	res, err = cl[3].Write(c0, strings.NewReader(dev+" v=-2i 2\n"))
	if err != nil || res.Points != 1 {
		t.Fatalf("write through node 3: %+v %v", res, err)
	}
	acked++
	ch, err = cl[3].ChangeReplicas(c0, "root.demo/0", 3, 0)
	if err != nil || !slices.Equal(ch.After.Replicas, []uint32{1, 2, 3}) || ch.After.Term != 4 {
		t.Fatalf("add node 3: %+v %v", ch, err)
	}
	waitReplicasEqual(t, c, regionOf(t, cl[2], "root.demo/0"), acked)

	// bad changes
	for _, tc := range []struct {
		do   func() error
		want string
	}{
		{func() error { _, err := cl[1].MoveLeader(c0, "root.demo/9", 2, 0); return err }, "region: cluster: database root.demo has 2 regions, not region 9"},
		{func() error { _, err := cl[1].MoveLeader(c0, "demo", 2, 0); return err }, "region: region \"demo\""},
		{func() error { _, err := cl[1].ChangeReplicas(c0, "root.demo/0", 7, 0); return err }, "add: node 7 is not in the cluster file"},
		{func() error { _, err := cl[2].ChangeReplicas(c0, "root.demo/0", 0, 1); return err }, "remove: node 1 leads root.demo/0"},
	} {
		err := tc.do()
		if e, ok := client.AsError(err); !ok || e.Code != api.CodeBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want a bad_request with %q", err, tc.want)
		}
	}
}

// copiedRows returns the (device, time) rows of root.copy on every node, and how many
// points the nodes hold in all.
func copiedRows(t *testing.T, c *cluster.Cluster) (map[string]bool, int64) {
	t.Helper()
	rows := map[string]bool{}
	var points int64
	for _, cn := range c.Nodes {
		var q api.QueryResult
		getJSON(t, cn.URL()+"/v1/query?pattern=root.copy.**&local=true", &q)
		for _, s := range q.Series {
			for _, r := range s.Rows {
				rows[fmt.Sprintf("%s@%v", strings.TrimPrefix(s.Device, "root.copy."), r[0])] = true
			}
		}
		points += q.Points
	}
	return rows, points
}

// waitRowsCopied waits until every row of want is in root.copy on some node.
func waitRowsCopied(t *testing.T, c *cluster.Cluster, want map[string]bool, limit time.Duration, what string) {
	t.Helper()
	waitFor(t, what, limit, func() (bool, string) {
		got, _ := copiedRows(t, c)
		missing := 0
		for k := range want {
			if !got[k] {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d rows missing", missing, len(want))
	})
}

// localPipes returns the pipes node id holds (GET /v1/pipes?local=true).
func localPipes(t *testing.T, c *cluster.Cluster, id uint32) []pipe.Status {
	t.Helper()
	n, _ := c.Node(id)
	var sts []pipe.Status
	getJSON(t, n.URL()+"/v1/pipes?local=true", &sts)
	return sts
}

// A user pipe created through a node that leads nothing runs on every region's leader; the
// cluster-wide list shows each region's task with its node; when a region's leadership
// moves, its task moves with its checkpoint: every row written before and after the move is
// copied (at-least-once: nothing missing). Dropping it through another node drops it
// everywhere.
func TestClusterPipeFollowsLeader(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	spec := copySpec
	if _, err := cl[3].CreatePipe(c0, []byte(spec), client.CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
	for id := range ms {
		n, _ := c.Node(id)
		var sts []map[string]any
		getJSON(t, n.URL()+"/v1/pipes?local=true", &sts)
		if len(sts) != 1 || sts[0]["name"] != "copy" || sts[0]["state"] != "RUNNING" {
			t.Fatalf("node %d pipes: %v", id, sts)
		}
	}
	want := map[string]bool{}
	write := func(via uint32, from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "root.demo.d%d v=%di %d\n", i%8, i, 1000+i)
			want[fmt.Sprintf("d%d@%d", i%8, 1000+i)] = true
		}
		if _, err := cl[via].Write(c0, strings.NewReader(b.String())); err != nil {
			t.Fatal(err)
		}
	}
	waitCopied := func(what string) { waitRowsCopied(t, c, want, 30*time.Second, what) }
	write(3, 0, 200)
	waitCopied("rows before the move copied")
	owner := func() map[string]uint32 {
		sts, err := cl[1].Pipes(c0)
		if err != nil || len(sts) != 1 {
			t.Fatalf("cluster-wide list: %+v %v", sts, err)
		}
		out := map[string]uint32{}
		for _, r := range sts[0].Regions {
			out[r.Region] = r.Node
		}
		return out
	}
	if o := owner(); o["root.demo/0"] != 1 || o["root.demo/1"] != 2 || len(o) != 2 {
		t.Errorf("tasks before the move: %v", o)
	}
	write(2, 200, 300) // not yet shipped by the pipe, maybe, when the region moves
	if _, err := cl[2].MoveLeader(c0, "root.demo/0", 3, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	write(1, 300, 500)
	waitCopied("rows after the move copied")
	if o := owner(); o["root.demo/0"] != 3 || o["root.demo/1"] != 2 || len(o) != 2 {
		t.Errorf("tasks after the move: %v", o)
	}
	_, points := copiedRows(t, c)
	t.Logf("%d rows written, %d points copied across the nodes (duplicates: %d)", len(want), points, points-int64(len(want)))
	res, err := cl[1].SQL(c0, "SHOW PIPES")
	if err != nil || len(res.Pipes) != 1 || len(res.Pipes[0].Regions) != 2 {
		t.Errorf("SHOW PIPES: %+v %v", res, err)
	}
	if _, err := cl[2].SQL(c0, "DROP PIPE copy"); err != nil {
		t.Fatal(err)
	}
	for id := range ms {
		if sts := localPipes(t, c, id); len(sts) != 0 {
			t.Errorf("node %d still has %v", id, sts)
		}
	}
}

// A node down when a cluster pipe is created gets it (running) when it starts again, from
// another node; a drop through it then drops the pipe everywhere.
func TestClusterPipeLearntAtStart(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	ms[3].close()
	spec := copySpec
	_, err := cl[1].CreatePipe(c0, []byte(spec), client.CreateOptions{Start: true})
	if e, ok := client.AsError(err); !ok || e.Code != api.CodeUnavailable || !strings.Contains(e.Message, "node 3") {
		t.Fatalf("create with node 3 down: %v", err)
	}
	ms[3].open()
	if sts := localPipes(t, c, 3); len(sts) != 1 || sts[0].Name != "copy" || sts[0].State != pipe.StateRunning {
		t.Fatalf("node 3 after its restart: %v", sts)
	}
	if _, err := cl[3].DropPipe(c0, "copy", false); err != nil {
		t.Fatal(err)
	}
	for id := range ms {
		if sts := localPipes(t, c, id); len(sts) != 0 {
			t.Errorf("node %d still has %v", id, sts)
		}
	}
}

// A node down when a cluster pipe is dropped drops its copy when it starts again, and no
// node learns the pipe back from it; a pipe created again under that name while the node
// was down (another generation) replaces the node's copy.
func TestClusterPipeDroppedWhileDown(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	described := func(id uint32) []api.Pipe {
		t.Helper()
		var out []api.Pipe
		for _, st := range localPipes(t, c, id) {
			p, err := cl[id].Pipe(c0, st.Name)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	startCopy(t, c0, cl[1])
	first := described(1)
	if len(first) != 1 || first[0].Generation == "" {
		t.Fatalf("node 1 after create: %+v", first)
	}
	for _, id := range []uint32{2, 3} {
		if got := described(id); len(got) != 1 || got[0].Generation != first[0].Generation {
			t.Fatalf("node %d after create: %+v, want generation %s", id, got, first[0].Generation)
		}
	}

	// dropped while node 3 is down: node 3 drops it when it starts; node 2, restarted
	// after, does not learn it back
	ms[3].close()
	if _, err := cl[1].SQL(c0, "DROP PIPE copy"); err == nil {
		t.Fatal("drop with node 3 down: no error naming it")
	}
	ms[3].open()
	ms[2].close()
	ms[2].open()
	for id := range ms {
		if got := described(id); len(got) != 0 {
			t.Errorf("node %d after the drop and the restarts: %+v", id, got)
		}
	}

	// node 3 holds one generation; while it is down, that one is dropped and the pipe
	// created again: node 3 replaces its copy with the new generation when it starts
	startCopy(t, c0, cl[2])
	g2 := described(2)[0].Generation
	ms[3].close()
	if _, err := cl[1].DropPipe(c0, "copy", false); err == nil {
		t.Fatal("drop with node 3 down: no error naming it")
	}
	if _, err := cl[1].CreatePipe(c0, []byte(copySpec), client.CreateOptions{Start: true}); err == nil {
		t.Fatal("create with node 3 down: no error naming it")
	}
	g3 := described(1)[0].Generation
	if g3 == g2 {
		t.Fatalf("created again: generation %s, the same as the dropped one", g3)
	}
	ms[3].open()
	for id := range ms {
		got := described(id)
		if len(got) != 1 || got[0].Generation != g3 || got[0].State != pipe.StateRunning {
			t.Errorf("node %d after the second drop and create: %+v, want generation %s running", id, got, g3)
		}
	}
}

// A node down when a cluster pipe is stopped (or started) stops (starts) it when it starts
// again; a node's stale state never overrides a later request.
func TestClusterPipeStateWhileDown(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	stateOn := func(id uint32) pipe.PipeState {
		t.Helper()
		sts := localPipes(t, c, id)
		if len(sts) != 1 {
			t.Fatalf("node %d holds %+v", id, sts)
		}
		return sts[0].State
	}
	startCopy(t, c0, cl[1])
	ms[3].close()
	if _, err := cl[1].StopPipe(c0, "copy"); err == nil {
		t.Fatal("stop with node 3 down: no error naming it")
	}
	ms[3].open()
	for id := range ms {
		if got := stateOn(id); got != pipe.StateStopped {
			t.Errorf("node %d after the stop and node 3's restart: %s", id, got)
		}
	}
	ms[2].close()
	if _, err := cl[3].SQL(c0, "START PIPE copy"); err == nil {
		t.Fatal("start with node 2 down: no error naming it")
	}
	ms[2].open()
	for id := range ms {
		if got := stateOn(id); got != pipe.StateRunning {
			t.Errorf("node %d after the start and node 2's restart: %s", id, got)
		}
	}
}

// A node whose drop of a cluster pipe was lost (here: the drop done with local=true on the
// other nodes only) replaces its stale copy when the pipe is created again through another
// node; a create through the stale node itself is refused by the others, naming the drop.
func TestClusterPipeStaleCopy(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	dropLocally := func(ids ...uint32) {
		t.Helper()
		for _, id := range ids {
			if code := nodeRequest(t, c0, c, id, http.MethodDelete, "/v1/pipes/copy?local=true", ""); code != http.StatusOK {
				t.Fatalf("drop on node %d: %d", id, code)
			}
		}
	}
	startCopy(t, c0, cl[1])
	old := copyPipe(t, c0, cl[3])
	dropLocally(1, 2)
	// through the stale node: its copy keeps the dropped generation, which the others refuse
	_, err := cl[3].CreatePipe(c0, []byte(copySpec), client.CreateOptions{Start: true, IfNotExists: true})
	if e, ok := client.AsError(err); !ok || e.Code != api.CodeUnavailable || !strings.Contains(e.Message, "stale copy") {
		t.Fatalf("create through the stale node: %v", err)
	}
	for _, id := range []uint32{1, 2} {
		if sts := localPipes(t, c, id); len(sts) != 0 {
			t.Fatalf("node %d took the dropped generation back: %+v", id, sts)
		}
	}
	// through another node: a new generation, which replaces the stale copy
	startCopy(t, c0, cl[2])
	p2 := copyPipe(t, c0, cl[2])
	if p2.Generation == old.Generation {
		t.Fatalf("created again with the dropped generation %s", old.Generation)
	}
	for id := range ms {
		p, err := cl[id].Pipe(c0, "copy")
		if err != nil || p.Generation != p2.Generation || len(localPipes(t, c, id)) != 1 {
			t.Errorf("node %d: %+v %v, want generation %s", id, p.Generation, err, p2.Generation)
		}
	}
}

// A running node that missed a drop and then a start (the fan-out to it lost; here: both
// done with local=true on the other nodes only) catches up by its periodic pipe sync,
// without a restart.
func TestClusterPipePeriodicSync(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 3, regions: 2}\n")
	for _, cn := range c.Nodes {
		n := openNode(t, c, cn.ID, t.TempDir(), cn.HTTP, func(o *node.Options) { o.PipeSyncInterval = 50 * time.Millisecond })
		t.Cleanup(func() { n.Close() })
	}
	cl := clientsOf(c)
	onNodes := func(method, path string, ids ...uint32) {
		t.Helper()
		for _, id := range ids {
			if code := nodeRequest(t, c0, c, id, method, path, ""); code != http.StatusOK {
				t.Fatalf("%s %s on node %d: %d", method, path, id, code)
			}
		}
	}
	if _, err := cl[1].CreatePipe(c0, []byte(copySpec), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	onNodes(http.MethodPost, "/v1/pipes/copy/start?local=true", 1, 2)
	waitFor(t, "node 3 following the start it missed", 10*time.Second, func() (bool, string) {
		sts := localPipes(t, c, 3)
		return len(sts) == 1 && sts[0].State == pipe.StateRunning, fmt.Sprint(sts)
	})
	// (node 2's own sync may learn node 1's drop before it is asked: if_exists)
	onNodes(http.MethodDelete, "/v1/pipes/copy?local=true&if_exists=true", 1, 2)
	waitFor(t, "node 3 dropping the pipe whose drop it missed", 10*time.Second, func() (bool, string) {
		sts := localPipes(t, c, 3)
		return len(sts) == 0, fmt.Sprint(sts)
	})
	for _, id := range []uint32{1, 2} {
		if sts := localPipes(t, c, id); len(sts) != 0 {
			t.Errorf("node %d learnt the dropped pipe back: %+v", id, sts)
		}
	}
}

// A late fanned-out stop or drop about a generation that was dropped (the pipe created
// again since) is refused and leaves the new generation alone.
func TestClusterPipeLateRequestForOldGeneration(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 2, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 1}\n")
	startMembers(t, c)
	cl := clientsOf(c)
	startCopy(t, c0, cl[1])
	p1 := copyPipe(t, c0, cl[1])
	if _, err := cl[1].DropPipe(c0, "copy", false); err != nil {
		t.Fatal(err)
	}
	startCopy(t, c0, cl[1])
	for _, req := range []struct{ method, path string }{
		{http.MethodPost, "/v1/pipes/copy/stop?local=true&generation=" + p1.Generation},
		{http.MethodDelete, "/v1/pipes/copy?local=true&if_exists=true&generation=" + p1.Generation},
	} {
		if code := nodeRequest(t, c0, c, 2, req.method, req.path, ""); code != http.StatusConflict {
			t.Errorf("%s %s: %d, want 409", req.method, req.path, code)
		}
	}
	if sts := localPipes(t, c, 2); len(sts) != 1 || sts[0].State != pipe.StateRunning {
		t.Fatalf("node 2 after the late requests: %+v", sts)
	}
}

// A flush through a node while another is down flushes that node and the others that
// answer, and names the one that did not.
func TestClusterFlushWithANodeDown(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	if _, err := cl[1].Write(c0, strings.NewReader("root.demo.d1 v=1i 1\nroot.demo.d2 v=2i 2\nroot.demo.d3 v=3i 3\n")); err != nil {
		t.Fatal(err)
	}
	ms[3].close()
	err := cl[1].Flush(c0, "root.demo")
	if e, ok := client.AsError(err); !ok || e.Code != api.CodeUnavailable || !strings.Contains(e.Message, "node 3") {
		t.Fatalf("flush with node 3 down: %v", err)
	}
	for _, id := range []uint32{1, 2} {
		n, _ := c.Node(id)
		var regs []api.Region
		getJSON(t, n.URL()+"/v1/regions?db=root.demo&local=true", &regs)
		var flushes int64
		for _, r := range regs {
			flushes += r.Stats.Flushes
		}
		if len(regs) == 0 || flushes == 0 {
			t.Errorf("node %d did not flush: %+v", id, regs)
		}
	}
}

// A write-back pipe cannot write into a replicated database (it would write into one
// replica, past the region's leader): its task fails, naming the database.
func TestWriteBackIntoReplicatedRefused(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 2, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 1}\n  - {name: root.other, protocol: iotv2, replication: 2, regions: 1}\n")
	startMembers(t, c)
	n1, _ := c.Node(1)
	cl := client.New(n1.URL())
	spec := "name: into\nsource: {plugin: hybrid, pattern: root.other.**}\nsink: {plugin: write-back, database: root.demo}\n"
	if _, err := cl.CreatePipe(c0, []byte(spec), client.CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Write(c0, strings.NewReader("root.other.d1 v=1i 1\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pipe's error", 20*time.Second, func() (bool, string) {
		p, err := cl.Pipe(c0, "into")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(p.LastError, "database root.demo is replicated by the cluster"), p.LastError
	})
}

// A node that lacks a cluster pipe the others hold (the create's fan-out to it failed) and
// is asked to create it again with if_not_exists (as the create's error advises) takes the
// cluster's pipe and generation: the others keep their copies (and progress), not replace
// them with a new generation. So does CREATE PIPE IF NOT EXISTS through SQL.
func TestClusterPipeCreateThroughNodeWithout(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	const gen = "0123456789abcdef"
	createOn := func(body, name string, ids ...uint32) {
		t.Helper()
		for _, id := range ids {
			if code := nodeRequest(t, c0, c, id, http.MethodPost, "/v1/pipes?local=true&start=true&generation="+gen, body); code != http.StatusCreated {
				t.Fatalf("create %s on node %d: %d", name, id, code)
			}
		}
	}
	check := func(name string) {
		t.Helper()
		for id := range ms {
			p, err := cl[id].Pipe(c0, name)
			if err != nil || p.Generation != gen || p.State != pipe.StateRunning {
				t.Errorf("pipe %s on node %d: generation %q state %s %v, want generation %s running", name, id, p.Generation, p.State, err, gen)
			}
		}
	}
	// the fan-out reached nodes 1 and 2 only
	createOn(copySpec, "copy", 1, 2)
	if _, err := cl[3].CreatePipe(c0, []byte(copySpec), client.CreateOptions{Start: true, IfNotExists: true}); err != nil {
		t.Fatal(err)
	}
	check("copy")
	other := strings.Replace(copySpec, "name: copy", "name: other", 1)
	createOn(other, "other", 1, 2)
	if _, err := cl[3].SQL(c0, "CREATE PIPE IF NOT EXISTS other WITH SOURCE ('pattern'='root.demo.**') WITH SINK ('sink'='do-nothing')"); err != nil {
		t.Fatal(err)
	}
	check("other")
}

// Concurrent starts and stops of a cluster pipe (e.g. the fan-outs of a start and a stop
// asked through two nodes at once) leave it as the later one asked, and the book says so.
func TestClusterPipeConcurrentStartStop(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 3, regions: 2}\n")
	startMembers(t, c)
	cl := clientsOf(c)
	startCopy(t, c0, cl[1])
	n1, _ := c.Node(1)
	op := func(what string, at time.Time) {
		code := nodeRequest(t, c0, c, 1, http.MethodPost, "/v1/pipes/copy/"+what+"?local=true&intent_at="+at.Format(time.RFC3339Nano), "")
		if code != 0 && code != http.StatusOK {
			t.Errorf("%s: %d", what, code)
		}
	}
	base := time.Now().UTC()
	deadline := time.Now().Add(15 * time.Second)
	for k := 0; k < 300 && time.Now().Before(deadline); k++ {
		early, late := "start", "stop"
		want := pipe.StateStopped
		if k%2 == 1 {
			early, late, want = "stop", "start", pipe.StateRunning
		}
		at := base.Add(time.Duration(2*k) * time.Millisecond)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); op(late, at.Add(time.Millisecond)) }()
		go func() { defer wg.Done(); op(early, at) }()
		wg.Wait()
		var cps api.ClusterPipes
		getJSON(t, n1.URL()+"/v1/cluster/pipes", &cps)
		if len(cps.Pipes) != 1 || cps.Pipes[0].State != want || cps.Pipes[0].Intent != want {
			t.Fatalf("round %d: %s then %s at once: %+v, want %s", k, early, late, cps.Pipes, want)
		}
	}
}

// intent_at and generation are set by the node that fans a request out (local=true): a
// request to the cluster that carries them is refused, so that a client's time (here far
// ahead) cannot make every later start or stop of the pipe do nothing, and a client's
// generation cannot replace the cluster's copies.
func TestClusterPipeFanOutParamsRefused(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 3, regions: 2}\n")
	startMembers(t, c)
	cl := clientsOf(c)
	startCopy(t, c0, cl[1])
	before := copyPipe(t, c0, cl[1])
	post := func(path, body string) int {
		t.Helper()
		return nodeRequest(t, c0, c, 1, http.MethodPost, path, body)
	}
	if code := post("/v1/pipes/copy/stop?intent_at=3000-01-01T00:00:00Z", ""); code != http.StatusBadRequest {
		t.Errorf("stop with a client's intent_at: %d", code)
	}
	if _, err := cl[2].StopPipe(c0, "copy"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl[3].StartPipe(c0, "copy"); err != nil {
		t.Fatal(err)
	}
	for id := range cl {
		if sts := localPipes(t, c, id); len(sts) != 1 || sts[0].State != pipe.StateRunning {
			t.Errorf("node %d after a stop and a start: %+v, want it running", id, sts)
		}
	}
	if code := post("/v1/pipes?if_not_exists=true&generation=abcd", copySpec); code != http.StatusBadRequest {
		t.Errorf("create with a client's generation: %d", code)
	}
	for id := range cl {
		if p, err := cl[id].Pipe(c0, "copy"); err != nil || p.Generation != before.Generation {
			t.Errorf("node %d: generation %q %v, want %s", id, p.Generation, err, before.Generation)
		}
	}
}

// A pipe created through two nodes at once (e.g. two scripts' create if_not_exists) is not
// lost: no node replaces its copy with the other create's generation (which would record
// its own as dropped, so that every node drops its copy when it next starts); when the
// creates conflict, they say so, and when they succeed, every node holds one generation.
func TestClusterPipeConcurrentCreates(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 3, regions: 2}\n")
	startMembers(t, c)
	cl := clientsOf(c)
	deadline := time.Now().Add(15 * time.Second)
	for k := 0; k < 20 && time.Now().Before(deadline); k++ {
		var wg sync.WaitGroup
		errs := map[uint32]error{}
		var mu sync.Mutex
		for _, id := range []uint32{1, 2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := cl[id].CreatePipe(c0, []byte(copySpec), client.CreateOptions{Start: true, IfNotExists: true})
				mu.Lock()
				errs[id] = err
				mu.Unlock()
			}()
		}
		wg.Wait()
		gens := map[uint32]string{}
		dropped := map[string]bool{}
		for _, n := range c.Nodes {
			var cps api.ClusterPipes
			getJSON(t, n.URL()+"/v1/cluster/pipes", &cps)
			for _, p := range cps.Pipes {
				gens[n.ID] = p.Generation
			}
			for _, d := range cps.Dropped {
				dropped[d.Generation] = true
			}
		}
		for id, g := range gens {
			if dropped[g] {
				t.Fatalf("round %d: node %d holds generation %s, dropped by a node (creates: %v; generations %v)", k, id, g, errs, gens)
			}
		}
		if errs[1] == nil && errs[2] == nil && (len(gens) != 3 || gens[1] != gens[2] || gens[2] != gens[3]) {
			t.Fatalf("round %d: both creates succeeded, generations %v", k, gens)
		}
		for id, err := range errs {
			if e, ok := client.AsError(err); err != nil && (!ok || !strings.Contains(e.Message, "two nodes at once")) {
				t.Fatalf("round %d: create through node %d: %v", k, id, err)
			}
		}
		if _, err := cl[1].DropPipe(c0, "copy", true); err != nil {
			t.Fatal(err)
		}
	}
}
