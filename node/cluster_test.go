package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/node/client"
)

// freeAddrs returns n distinct free 127.0.0.1 addresses.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

// clusterFile writes a cluster file of n nodes on free ports with the given databases.
func clusterFile(t *testing.T, n int, dbs string) (string, *cluster.Cluster) {
	t.Helper()
	addrs := freeAddrs(t, 2*n)
	var b strings.Builder
	b.WriteString("nodes:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {id: %d, http: %s, flight: %s}\n", i+1, addrs[2*i], addrs[2*i+1])
	}
	b.WriteString("databases:\n" + dbs)
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, c
}

func TestClusterConfig(t *testing.T) {
	path, c := clusterFile(t, 2, "  - {name: root.demo}\n")
	o, err := node.Config{ID: 2, Data: t.TempDir(), Cluster: path}.Options()
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := c.Node(2)
	if o.Cluster == nil || o.HTTPAddr != n2.HTTP || o.FlightAddr != n2.Flight {
		t.Errorf("addresses not taken from the cluster file: %+v", o)
	}
	if d, _ := o.Cluster.Database("root.demo"); d.Replication != 2 || d.Protocol != "iotv2" {
		t.Errorf("database: %+v", d)
	}
	for _, tc := range []struct {
		c    node.Config
		want string
	}{
		{node.Config{ID: 3, Data: "d", Cluster: path}, "cluster: node 3 is not in " + path},
		{node.Config{ID: 1, Data: "d", Cluster: path, HTTP: "127.0.0.1:1"}, "http: 127.0.0.1:1: node 1 listens on"},
		{node.Config{ID: 1, Data: "d", Cluster: filepath.Join(t.TempDir(), "none.yaml")}, "cluster: cluster: open"},
	} {
		if _, err := tc.c.Options(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.c, err, tc.want)
		}
	}
	if _, err := node.Open(node.Options{ID: 3, DataDir: t.TempDir(), Cluster: c}); err == nil || !strings.Contains(err.Error(), "node 3 is not in the cluster file") {
		t.Errorf("open a node not in the cluster: %v", err)
	}
}

// startClusterNodes opens and starts every node of c in this process.
func startClusterNodes(t *testing.T, c *cluster.Cluster) map[uint32]*client.Client {
	t.Helper()
	out := map[uint32]*client.Client{}
	for _, cn := range c.Nodes {
		n, err := node.Open(node.Options{ID: cn.ID, DataDir: t.TempDir(), HTTPAddr: cn.HTTP, FlightAddr: cn.Flight, AutoCreate: true,
			Cluster: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			n.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Error(err)
			}
		})
		out[cn.ID] = client.New(cn.URL())
	}
	return out
}

// getJSON decodes the JSON answer of a GET (2xx) into out.
func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}

// Three nodes in one process, a database of three regions with two replicas each (so no
// node holds every region): writes in either format and deletions through any node reach
// the leaders; queries (limit, CSV) and digests through any node are the same; a write sent
// with local=true to a node that does not lead its region is refused.
func TestClusterRouting(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 3}\n")
	cs := startClusterNodes(t, c)
	var body strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&body, "root.demo.d%02d temp=%d.5,n=%di %d\n", i%12, i, i, 1000+i)
		if i == 30 {
			body.WriteString("root.demo.d00 temp=\"text\" 5\n") // line 32: a type conflict
		}
	}
	_, err := cs[1].Write(c0, strings.NewReader(body.String()))
	e, ok := client.AsError(err)
	if !ok || e.Code != api.CodeBadLines || e.Write.Points != 120 || len(e.Write.LineErrors) != 1 || e.Write.LineErrors[0].Line != 32 {
		t.Fatalf("write with a bad line: %v %+v", err, e)
	}
	res, err := cs[2].WriteTablets(c0, []api.Tablet{{Device: "root.demo.j1", Columns: []api.Column{{Name: "temp", Type: "DOUBLE"}},
		Times: []int64{1, 2}, Values: [][]any{{1.5, 2.5}}}, {Device: "root.demo.j2", Columns: []api.Column{{Name: "temp", Type: "DOUBLE"}},
		Times: []int64{1}, Values: [][]any{{3.5}}}})
	if err != nil || res.Points != 3 || res.Tablets != 2 {
		t.Fatalf("tablets: %+v %v", res, err)
	}
	del, err := cs[3].Delete(c0, api.Delete{Pattern: "root.demo.d01.**", Start: 1000, End: 1030})
	if err != nil || del.Regions != 3 {
		t.Fatalf("delete: %+v %v", del, err)
	}
	// 123 points written, d01 lost 3 rows (times 1001, 1013, 1025) of 2 points
	var want api.Digest
	for id, cl := range cs {
		d, err := cl.Digest(c0, "root.demo")
		if err != nil || d.Points != 117 || len(d.Regions) != 3 {
			t.Fatalf("digest through node %d: %+v %v", id, d, err)
		}
		if want.Digest == "" {
			want = d
		} else if d.Digest != want.Digest {
			t.Errorf("digest through node %d: %s, through another %s", id, d.Digest, want.Digest)
		}
	}
	q, err := cs[3].Query(c0, api.Query{Pattern: "root.demo.**", Measurements: []string{"temp"}, Limit: 7})
	if err != nil || q.Rows != 7 || len(q.Series) != 2 || q.Series[0].Device != "root.demo.d00" || len(q.Series[0].Rows) != 5 {
		t.Fatalf("query with limit: %+v %v", q, err)
	}
	var csv strings.Builder
	if err := cs[2].QueryTo(c0, api.Query{Pattern: "root.demo.j1"}, "csv", &csv); err != nil {
		t.Fatal(err)
	}
	if got := csv.String(); got != "device,time,temp\nroot.demo.j1,1,1.5\nroot.demo.j1,2,2.5\n" {
		t.Errorf("csv:\n%s", got)
	}
	// local=true to a node that does not lead the region
	reg, _ := c.Region("root.demo", node.RegionIndex("root.demo.d03", 3))
	var other uint32
	for _, n := range c.Nodes {
		if n.ID != reg.Leader() {
			other = n.ID
		}
	}
	on, _ := c.Node(other)
	resp, err := http.Post(on.URL()+"/v1/write?local=true", "text/plain", strings.NewReader("root.demo.d03 temp=1 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	var ae api.Error
	json.NewDecoder(resp.Body).Decode(&ae)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || ae.Code != api.CodeNotLeader || !strings.Contains(ae.Message, fmt.Sprintf("node %d does", reg.Leader())) {
		t.Errorf("local write to node %d: %d %+v", other, resp.StatusCode, ae)
	}
	// every region's replicas become equal
	var info api.Cluster
	getJSON(t, c.Nodes[0].URL()+"/v1/cluster", &info)
	if len(info.Databases) != 1 || len(info.Databases[0].Regions) != 3 || info.Self != 1 {
		t.Fatalf("cluster: %+v", info)
	}
	for _, r := range info.Databases[0].Regions {
		waitFor(t, "replicas of "+r.Region+" equal", 30*time.Second, func() (bool, string) {
			var ds []string
			for _, id := range r.Replicas {
				n, _ := c.Node(id)
				var d api.Digest
				getJSON(t, fmt.Sprintf("%s/v1/digest?db=root.demo&regions=%d&local=true", n.URL(), r.Index), &d)
				ds = append(ds, d.Digest)
			}
			return ds[0] == ds[1], fmt.Sprint(ds)
		})
	}
	sets, err := cs[1].ReplicaSets(c0)
	if err != nil || len(sets) != 1 || sets[0].Region != "root.demo/0" || len(sets[0].FollowerNodes) != 1 || sets[0].FollowerNodes[0] != 2 {
		t.Errorf("replica sets of node 1: %+v %v", sets, err)
	}
	http.DefaultClient.CloseIdleConnections()
}
