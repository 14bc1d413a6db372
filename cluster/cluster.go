// Package cluster is Weir's cluster file and region placement. A cluster file lists the
// nodes (id, HTTP and Flight addresses) and the replicated databases (consensus protocol,
// replication factor, regions); every node reads the same file, and the placement of each
// region on the nodes follows from it deterministically, so no node has to ask another
// where a region lives.
//
//	nodes:
//	  - {id: 1, http: 127.0.0.1:7070, flight: 127.0.0.1:7071}
//	  - {id: 2, http: 127.0.0.1:7080, flight: 127.0.0.1:7081}
//	  - {id: 3, http: 127.0.0.1:7090, flight: 127.0.0.1:7091}
//	databases:
//	  - name: root.demo
//	    protocol: iotv2        # simple | iot | fast | iotv2
//	    replication: 3         # replicas of each region (≤ the number of nodes)
//	    regions: 4
//
// Placement: with the nodes ordered by id, region i of a database is held by the nodes
// (i+k) mod N for k < replication, and the first of them is the region's preferred
// leader. Leaders are thus spread over the nodes round-robin.
//
// The package is the file format and the placement only; package node runs a node of a
// cluster (docs/cluster.md).
package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// Limits and defaults of the cluster file.
const (
	MaxNodeID          = 1<<16 - 1
	MaxRegions         = 1024
	DefaultRegions     = 4
	DefaultProtocol    = consensus.IoTV2
	DefaultReplication = 3 // or the number of nodes, when fewer
)

// File is a cluster file as written in YAML (keys as in the tags); Parse checks it and
// turns it into a Cluster. Unknown keys are errors.
type File struct {
	Nodes     []NodeFile     `yaml:"nodes" json:"nodes"`
	Databases []DatabaseFile `yaml:"databases" json:"databases"`
}

// NodeFile is a node of the cluster file.
type NodeFile struct {
	ID     uint32 `yaml:"id" json:"id"`         // 1-65535, unique
	HTTP   string `yaml:"http" json:"http"`     // host:port of the node's HTTP API
	Flight string `yaml:"flight" json:"flight"` // host:port of its Flight receiver (followers are reached there)
}

// DatabaseFile is a replicated database of the cluster file. The protocol's options are
// optional (empty: the protocol's defaults, see package consensus).
type DatabaseFile struct {
	Name             string `yaml:"name" json:"name"`                                                 // root.x
	Protocol         string `yaml:"protocol" json:"protocol"`                                         // simple | iot | fast | iotv2 (default iotv2)
	Replication      int    `yaml:"replication" json:"replication"`                                   // replicas per region (default min(3, nodes); simple: 1)
	Regions          int    `yaml:"regions" json:"regions"`                                           // default 4
	SealInterval     string `yaml:"seal-interval,omitempty" json:"seal-interval,omitempty"`           // fast: the leader seals this often (default 5s)
	BacklogLimit     string `yaml:"backlog-limit,omitempty" json:"backlog-limit,omitempty"`           // iot: WAL a follower may hold back (default 1GiB)
	BacklogTimeout   string `yaml:"backlog-timeout,omitempty" json:"backlog-timeout,omitempty"`       // iot: how long a write waits over the limit (default 5s)
	MaxPendingEvents int    `yaml:"max-pending-events,omitempty" json:"max-pending-events,omitempty"` // iotv2: the hybrid selector's degrade threshold
}

// Node is a node of a cluster.
type Node struct {
	ID     uint32 `json:"id"`
	HTTP   string `json:"http"`
	Flight string `json:"flight,omitempty"`
}

// URL is the base URL of the node's HTTP API.
func (n Node) URL() string { return "http://" + n.HTTP }

// Database is a replicated database of a cluster.
type Database struct {
	Name        string            `json:"name"`
	Protocol    string            `json:"protocol"`
	Replication int               `json:"replication"`
	Regions     int               `json:"regions"`
	Options     consensus.Options `json:"-"` // the protocol's options (zero fields: its defaults)
}

// Cluster is a checked cluster file: nodes by id, databases by name.
type Cluster struct {
	Nodes     []Node     `json:"nodes"` // ordered by id
	Databases []Database `json:"databases"`
}

// Region is the placement of one region: its replicas, the preferred leader first.
type Region struct {
	Database string   `json:"database"`
	Index    int      `json:"index"`
	Name     string   `json:"region"`   // root.demo/3, as package node names it
	Replicas []uint32 `json:"replicas"` // node ids, leader first
	// Term counts the changes of leader or replicas made on a running cluster (0: the
	// placement the file gives); a higher term wins.
	Term uint64 `json:"term,omitempty"`
}

// Leader is the id of the region's preferred leader.
func (r Region) Leader() uint32 { return r.Replicas[0] }

// Followers are the ids of the region's other replicas.
func (r Region) Followers() []uint32 { return r.Replicas[1:] }

// WithLeader returns the region led by id (one of its replicas), the others in order.
func (r Region) WithLeader(id uint32) Region {
	out := r
	out.Replicas = []uint32{id}
	for _, x := range r.Replicas {
		if x != id {
			out.Replicas = append(out.Replicas, x)
		}
	}
	return out
}

// Has reports whether node id holds a replica of the region.
func (r Region) Has(id uint32) bool {
	for _, x := range r.Replicas {
		if x == id {
			return true
		}
	}
	return false
}

// RegionName names region i of database db ("root.demo/3").
func RegionName(db string, i int) string { return db + "/" + strconv.Itoa(i) }

// Load reads and checks a cluster file.
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("cluster file %s: %w", path, err)
	}
	return c, nil
}

// Parse parses a cluster file (strictly: unknown keys are errors) and checks it; every
// problem names its key, e.g. "databases[0].replication: 4 is more than the 3 nodes".
func Parse(data []byte) (*Cluster, error) {
	var f File
	if err := yaml.UnmarshalWithOptions(data, &f, yaml.Strict()); err != nil {
		return nil, errors.New(yaml.FormatError(err, false, false))
	}
	return f.Check()
}

// Marshal returns the file as YAML.
func (f File) Marshal() ([]byte, error) { return yaml.Marshal(f) }

// Check checks the file and returns its Cluster; the error joins every problem, each
// naming its key.
func (f File) Check() (*Cluster, error) {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	c := &Cluster{}
	if len(f.Nodes) == 0 {
		bad("nodes", "missing: list the nodes ({id, http, flight})")
	}
	ids := map[uint32]string{}
	addrs := map[string]string{}
	for i, n := range f.Nodes {
		key := fmt.Sprintf("nodes[%d]", i)
		if n.ID == 0 || n.ID > MaxNodeID {
			bad(key+".id", "must be 1-%d, got %d", MaxNodeID, n.ID)
		} else if other, dup := ids[n.ID]; dup {
			bad(key+".id", "%d is also the id of %s", n.ID, other)
		} else {
			ids[n.ID] = key
		}
		checkAddr := func(field, addr string, required bool) {
			if addr == "" {
				if required {
					bad(key+"."+field, "missing: host:port")
				}
				return
			}
			host, port, err := net.SplitHostPort(addr)
			if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
				bad(key+"."+field, "%q is not host:port with a port in 1-65535", addr)
				return
			}
			if other, dup := addrs[addr]; dup {
				bad(key+"."+field, "%s is also the address of %s", addr, other)
				return
			}
			addrs[addr] = key + "." + field
		}
		checkAddr("http", n.HTTP, true)
		checkAddr("flight", n.Flight, len(f.Nodes) > 1)
		c.Nodes = append(c.Nodes, Node{ID: n.ID, HTTP: n.HTTP, Flight: n.Flight})
	}
	sort.Slice(c.Nodes, func(i, j int) bool { return c.Nodes[i].ID < c.Nodes[j].ID })
	names := map[string]string{}
	for i, d := range f.Databases {
		key := fmt.Sprintf("databases[%d]", i)
		db := Database{Name: d.Name, Protocol: d.Protocol, Replication: d.Replication, Regions: d.Regions}
		if err := checkDatabaseName(d.Name); err != nil {
			bad(key+".name", "%v", err)
		} else if other, dup := names[d.Name]; dup {
			bad(key+".name", "%s is also declared by %s", d.Name, other)
		} else {
			names[d.Name] = key
		}
		if db.Protocol == "" {
			db.Protocol = DefaultProtocol
		}
		if _, err := consensus.New(db.Protocol, consensus.Options{}); err != nil {
			bad(key+".protocol", "%q is not one of %s", d.Protocol, strings.Join(consensus.Protocols, ", "))
		}
		if db.Replication == 0 {
			db.Replication = min(DefaultReplication, max(len(f.Nodes), 1))
			if db.Protocol == consensus.Simple {
				db.Replication = 1
			}
		}
		switch {
		case db.Replication < 1:
			bad(key+".replication", "must be at least 1, got %d", d.Replication)
		case len(f.Nodes) > 0 && db.Replication > len(f.Nodes):
			bad(key+".replication", "%d is more than the %d nodes", db.Replication, len(f.Nodes))
		case db.Protocol == consensus.Simple && db.Replication != 1:
			bad(key+".replication", "protocol simple has one replica, got %d (use iot, fast or iotv2)", db.Replication)
		}
		if db.Regions == 0 {
			db.Regions = DefaultRegions
		}
		if db.Regions < 1 || db.Regions > MaxRegions {
			bad(key+".regions", "must be 1-%d, got %d", MaxRegions, d.Regions)
		}
		dur := func(field, s string, dst *time.Duration) {
			if s == "" {
				return
			}
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				bad(key+"."+field, "%q is not a positive duration (e.g. 5s)", s)
				return
			}
			*dst = v
		}
		dur("seal-interval", d.SealInterval, &db.Options.SealInterval)
		dur("backlog-timeout", d.BacklogTimeout, &db.Options.BacklogTimeout)
		if d.BacklogLimit != "" {
			v, err := pipe.ParseBytes(d.BacklogLimit)
			if err != nil || v <= 0 {
				bad(key+".backlog-limit", "%q is not a positive byte size (e.g. 1GiB)", d.BacklogLimit)
			}
			db.Options.BacklogLimit = v
		}
		if d.MaxPendingEvents < 0 {
			bad(key+".max-pending-events", "must be >= 0, got %d", d.MaxPendingEvents)
		}
		db.Options.MaxPendingEvents = d.MaxPendingEvents
		c.Databases = append(c.Databases, db)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// checkDatabaseName checks a database name: root and one node (root.factory), as package
// node does.
func checkDatabaseName(name string) error {
	if name == "" {
		return errors.New("missing: a database name like root.factory")
	}
	if err := tsfile.ValidateDevice(name); err != nil || strings.Count(name, ".") != 1 {
		return fmt.Errorf("%q is not a database name like root.factory", name)
	}
	return nil
}

// Node returns the node of that id.
func (c *Cluster) Node(id uint32) (Node, bool) {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// Database returns the replicated database of that name.
func (c *Cluster) Database(name string) (Database, bool) {
	for _, d := range c.Databases {
		if d.Name == name {
			return d, true
		}
	}
	return Database{}, false
}

// Region returns the placement of region i of database db (which must be in the cluster
// and have more than i regions; Placement lists them all).
func (c *Cluster) Region(db string, i int) (Region, error) {
	d, ok := c.Database(db)
	if !ok {
		return Region{}, fmt.Errorf("cluster: database %s is not in the cluster file", db)
	}
	if i < 0 || i >= d.Regions {
		return Region{}, fmt.Errorf("cluster: database %s has %d regions, not region %d", db, d.Regions, i)
	}
	r := Region{Database: db, Index: i, Name: RegionName(db, i)}
	n := len(c.Nodes)
	for k := 0; k < d.Replication; k++ {
		r.Replicas = append(r.Replicas, c.Nodes[(i+k)%n].ID)
	}
	return r, nil
}

// Placement returns the placement of every region of database db, by index.
func (c *Cluster) Placement(db string) ([]Region, error) {
	d, ok := c.Database(db)
	if !ok {
		return nil, fmt.Errorf("cluster: database %s is not in the cluster file", db)
	}
	out := make([]Region, d.Regions)
	for i := range out {
		r, err := c.Region(db, i)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// File returns the cluster as a file (with every default written out).
func (c *Cluster) File() File {
	var f File
	for _, n := range c.Nodes {
		f.Nodes = append(f.Nodes, NodeFile{ID: n.ID, HTTP: n.HTTP, Flight: n.Flight})
	}
	for _, d := range c.Databases {
		df := DatabaseFile{Name: d.Name, Protocol: d.Protocol, Replication: d.Replication, Regions: d.Regions, MaxPendingEvents: d.Options.MaxPendingEvents}
		if d.Options.SealInterval > 0 {
			df.SealInterval = d.Options.SealInterval.String()
		}
		if d.Options.BacklogLimit > 0 {
			df.BacklogLimit = strconv.FormatInt(d.Options.BacklogLimit, 10) + "B"
		}
		if d.Options.BacklogTimeout > 0 {
			df.BacklogTimeout = d.Options.BacklogTimeout.String()
		}
		f.Databases = append(f.Databases, df)
	}
	return f
}
