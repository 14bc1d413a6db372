package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/cluster"
)

const three = `
nodes:
  - {id: 3, http: 127.0.0.1:7090, flight: 127.0.0.1:7091}
  - {id: 1, http: 127.0.0.1:7070, flight: 127.0.0.1:7071}
  - {id: 2, http: 127.0.0.1:7080, flight: 127.0.0.1:7081}
databases:
  - {name: root.demo, protocol: iot, replication: 2, regions: 4, backlog-limit: 4MiB, backlog-timeout: 1s}
  - {name: root.other}
`

func TestParseAndPlacement(t *testing.T) {
	c, err := cluster.Parse([]byte(three))
	if err != nil {
		t.Fatal(err)
	}
	if c.Nodes[0].ID != 1 || c.Nodes[2].ID != 3 {
		t.Fatalf("nodes not ordered by id: %+v", c.Nodes)
	}
	d, ok := c.Database("root.demo")
	if !ok || d.Options.BacklogLimit != 4<<20 || d.Options.BacklogTimeout != time.Second {
		t.Fatalf("root.demo: %+v", d)
	}
	o, _ := c.Database("root.other")
	if o.Protocol != "iotv2" || o.Replication != 3 || o.Regions != 4 {
		t.Fatalf("defaults: %+v", o)
	}
	p, err := c.Placement("root.demo")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]uint32{{1, 2}, {2, 3}, {3, 1}, {1, 2}}
	for i, r := range p {
		if r.Name != "root.demo/"+string(rune('0'+i)) || r.Leader() != want[i][0] || r.Followers()[0] != want[i][1] {
			t.Errorf("region %d: %+v, want replicas %v", i, r, want[i])
		}
	}
	if !p[2].Has(1) || p[2].Has(2) {
		t.Errorf("Has: %+v", p[2])
	}
	// the file written back parses to the same cluster
	b, err := c.File().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := cluster.Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if d2, _ := c2.Database("root.demo"); d2 != d {
		t.Errorf("round trip: %+v != %+v", d2, d)
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{`nodes: []`, "nodes: missing"},
		{"nodes: [{id: 1, http: 127.0.0.1:1}]\nbogus: 1", "bogus"},
		{"nodes: [{id: 0, http: 127.0.0.1:1}]", "nodes[0].id: must be 1-65535"},
		{"nodes: [{id: 1, http: x}]", `nodes[0].http: "x" is not host:port`},
		{"nodes: [{id: 1, http: 127.0.0.1:1, flight: 127.0.0.1:2}, {id: 1, http: 127.0.0.1:3, flight: 127.0.0.1:4}]", "nodes[1].id: 1 is also the id of nodes[0]"},
		{"nodes: [{id: 1, http: 127.0.0.1:1, flight: 127.0.0.1:2}, {id: 2, http: 127.0.0.1:3}]", "nodes[1].flight: missing"},
		{"nodes: [{id: 1, http: 127.0.0.1:1, flight: 127.0.0.1:1}]", "nodes[0].flight: 127.0.0.1:1 is also the address of nodes[0].http"},
		{"nodes: [{id: 1, http: 127.0.0.1:1}]\ndatabases: [{name: demo}]", `databases[0].name: "demo" is not a database name`},
		{"nodes: [{id: 1, http: 127.0.0.1:1}]\ndatabases: [{name: root.a, protocol: raft2}]", `databases[0].protocol: "raft2" is not one of simple, iot, fast, iotv2`},
		{"nodes: [{id: 1, http: 127.0.0.1:1}]\ndatabases: [{name: root.a, replication: 2}]", "databases[0].replication: 2 is more than the 1 nodes"},
		{"nodes: [{id: 1, http: 127.0.0.1:1}]\ndatabases: [{name: root.a, regions: 5000}]", "databases[0].regions: must be 1-1024"},
		{"nodes: [{id: 1, http: 127.0.0.1:1}]\ndatabases: [{name: root.a, seal-interval: soon}]", `databases[0].seal-interval: "soon"`},
		{"nodes: [{id: 1, http: 127.0.0.1:1}]\ndatabases: [{name: root.a, backlog-limit: lots}]", `databases[0].backlog-limit: "lots"`},
		{"nodes: [{id: 1, http: 127.0.0.1:1}]\ndatabases: [{name: root.a}, {name: root.a}]", "databases[1].name: root.a is also declared by databases[0]"},
	} {
		_, err := cluster.Parse([]byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.file, err, tc.want)
		}
	}
}
