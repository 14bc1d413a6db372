// Package api holds the types of the node's HTTP JSON API (version 1, under /v1), shared by
// the node (package node) and its Go client (package node/client). docs/node.md describes
// every route.
package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
)

// Error codes of Error.Code.
const (
	CodeBadRequest   = "bad_request"    // malformed request: bad JSON, a bad parameter
	CodeBadLines     = "bad_lines"      // line format errors (see Error.Lines); good lines were written
	CodeTypeConflict = "type_conflict"  // a measurement written with another type than stored
	CodeInvalidSpec  = "invalid_spec"   // a pipe spec or statement with problems (see Error.Problems)
	CodeNotFound     = "not_found"      // no such pipe, database or route
	CodeConflict     = "conflict"       // the pipe (or database) already exists, or has another shape
	CodeTooLarge     = "body_too_large" // the body is over the node's limit (HTTP 413)
	CodeMethod       = "method_not_allowed"
	CodeUnavailable  = "unavailable" // the node is stopping, or (in a cluster) a region's leader is unreachable
	CodeInternal     = "internal"
	// CodeNotLeader (HTTP 409): a write or deletion sent with local=true to a node that does
	// not lead the region (cluster mode).
	CodeNotLeader = "not_leader"
	// CodeBacklog (HTTP 503): an iot write rejected because a follower holds back more WAL
	// than the database's backlog-limit for longer than its backlog-timeout; the message
	// names the follower.
	CodeBacklog = "follower_backlog"
)

// Error is the body of every error response: a code and a message, and for some codes
// details. It is also the error the client returns (with Status set).
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request field or parameter at fault, when there is one.
	Field string `json:"field,omitempty"`
	// Problems lists the problems of a pipe spec (CodeInvalidSpec).
	Problems []Problem `json:"problems,omitempty"`
	// Write is what a write with bad lines (CodeBadLines), a type conflict or too large a
	// body still accepted.
	Write *WriteResult `json:"write,omitempty"`
}

func (e *Error) Error() string {
	s := e.Message
	if e.Status != 0 {
		s = fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
	}
	return s
}

// Problem is one problem of a pipe spec: the key it is about and where it was written.
type Problem struct {
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	}
	b.WriteString(p.Message)
	return b.String()
}

// WriteResult is the answer to a write: how many points, lines and tablets were written,
// and the bad lines of a line-format body (first 100; Omitted counts the rest).
type WriteResult struct {
	Points     int64       `json:"points"`
	Lines      int64       `json:"lines,omitempty"`
	Tablets    int64       `json:"tablets"`
	Databases  []string    `json:"databases,omitempty"`
	LineErrors []LineError `json:"line_errors,omitempty"`
	Omitted    int         `json:"omitted,omitempty"`
}

// LineError is a bad line of a line-format write (1-based line and column).
type LineError struct {
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

func (e LineError) String() string {
	if e.Column > 0 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Message)
}

// Tablets is the JSON body of a tablet write (Content-Type application/json).
type Tablets struct {
	Tablets []Tablet `json:"tablets"`
}

// Tablet is one device's rows in a JSON write: Values holds one array per column, each as
// long as Times, with null for a missing value. INT64 values beyond 2^53 may be written as
// strings of digits.
type Tablet struct {
	Device  string   `json:"device"`
	Columns []Column `json:"columns"`
	Times   []int64  `json:"times"`
	Values  [][]any  `json:"values"`
}

// Column names a measurement and its type (BOOLEAN, INT32, INT64, FLOAT, DOUBLE, TEXT).
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Query selects points: series matching Pattern, optionally only the named measurements,
// in [Start, End] (unix ms, inclusive; both zero: all time).
type Query struct {
	Pattern      string   `json:"pattern"`
	Measurements []string `json:"measurements,omitempty"`
	Start        int64    `json:"start,omitempty"`
	End          int64    `json:"end,omitempty"`
	// Limit stops after this many rows (0: no limit).
	Limit int64 `json:"limit,omitempty"`
}

// QueryResult is the JSON answer to a query (streamed in this shape).
type QueryResult struct {
	Series []Series `json:"series"`
	Rows   int64    `json:"rows"`
	Points int64    `json:"points"`
	// Error is set when the query failed after the answer had started.
	Error string `json:"error,omitempty"`
}

// Series is one device's rows: Columns[0] is "time"; each row has one value per column.
type Series struct {
	Device  string   `json:"device"`
	Columns []string `json:"columns"`
	Types   []string `json:"types"`
	Rows    [][]any  `json:"rows"`
}

// Delete removes the points of series matching Pattern in [Start, End] (unix ms,
// inclusive; both zero: all time).
type Delete struct {
	Pattern string `json:"pattern"`
	Start   int64  `json:"start,omitempty"`
	End     int64  `json:"end,omitempty"`
}

// DeleteResult tells which databases a delete reached.
type DeleteResult struct {
	Databases []string `json:"databases"`
	Regions   int      `json:"regions"`
}

// Digest is a database's digest: a stable hash of all its live points, the same for two
// databases holding the same points whatever their regions, files and names.
type Digest struct {
	Database string         `json:"database"`
	Digest   string         `json:"digest"`
	Points   int64          `json:"points"`
	Regions  []RegionDigest `json:"regions,omitempty"`
}

// RegionDigest is one region's digest.
type RegionDigest struct {
	Region string `json:"region"`
	Digest string `json:"digest"`
	Points int64  `json:"points"`
	// Node is the replica that answered, in a cluster digest.
	Node uint32 `json:"node,omitempty"`
}

// Database describes a database of the node.
type Database struct {
	Name    string `json:"name"`
	Regions int    `json:"regions"`
}

// CreateDatabase is the body of POST /v1/databases.
type CreateDatabase struct {
	Name string `json:"name"`
	// Regions is the number of regions (0: the node's default).
	Regions int `json:"regions,omitempty"`
}

// Region describes one region: its database, index, origin and counters.
type Region struct {
	Database string       `json:"database"`
	Region   string       `json:"region"`
	Index    int          `json:"index"`
	Origin   uint32       `json:"origin"`
	Dir      string       `json:"dir"`
	Stats    engine.Stats `json:"stats"`
}

// Status describes the node.
type Status struct {
	ID        uint32     `json:"id"`
	HTTP      string     `json:"http"`
	Flight    string     `json:"flight,omitempty"`
	Data      string     `json:"data"`
	Databases []Database `json:"databases"`
	Pipes     int        `json:"pipes"`
	Uptime    float64    `json:"uptime_seconds"`
}

// Pipe is a pipe's status and its normalized spec.
type Pipe struct {
	pipe.Status
	Spec *pipe.Spec `json:"spec,omitempty"`
	// Generation tells apart the pipes a cluster has had under this name (a cluster pipe
	// dropped and created again is another generation); "" outside a cluster.
	Generation string `json:"generation,omitempty"`
}

// SQLResult is the answer to POST /v1/sql: the statement's kind and name, and the pipes
// it concerns (the created one; every pipe for SHOW PIPES, one for SHOW PIPE name).
type SQLResult struct {
	Statement string        `json:"statement"`
	Name      string        `json:"name,omitempty"`
	Pipes     []pipe.Status `json:"pipes,omitempty"`
	// Done is false when IF EXISTS / IF NOT EXISTS made the statement do nothing.
	Done bool `json:"done"`
}

// Cluster is the answer to GET /v1/cluster: the cluster file as the node read it, with each
// replicated database's placement (docs/cluster.md).
type Cluster struct {
	// Self is the id of the node that answered.
	Self      uint32            `json:"self"`
	Nodes     []ClusterNode     `json:"nodes"`
	Databases []ClusterDatabase `json:"databases"`
}

// ClusterNode is a node of the cluster.
type ClusterNode struct {
	ID     uint32 `json:"id"`
	HTTP   string `json:"http"`
	Flight string `json:"flight,omitempty"`
}

// ClusterDatabase is a replicated database and the placement of its regions.
type ClusterDatabase struct {
	Name        string          `json:"name"`
	Protocol    string          `json:"protocol"`
	Replication int             `json:"replication"`
	Regions     []ClusterRegion `json:"regions"`
}

// ClusterPipes is a node's record of its cluster pipes (GET /v1/cluster/pipes, between
// nodes): the generation of each it holds, and the generations dropped (oldest first).
type ClusterPipes struct {
	Pipes   []ClusterPipe `json:"pipes"`
	Dropped []DroppedPipe `json:"dropped"`
}

// ClusterPipe is a cluster pipe a node holds: its state, and the last start or stop asked
// of it (Intent, RUNNING or STOPPED) with the time the node it was asked of stamped on it.
type ClusterPipe struct {
	Name       string         `json:"name"`
	Generation string         `json:"generation,omitempty"`
	State      pipe.PipeState `json:"state"`
	Intent     pipe.PipeState `json:"intent,omitempty"`
	IntentAt   time.Time      `json:"intent_at,omitempty"`
}

// DroppedPipe is a generation of a cluster pipe that was dropped.
type DroppedPipe struct {
	Name       string    `json:"name"`
	Generation string    `json:"generation,omitempty"`
	At         time.Time `json:"at"`
}

// ClusterRegion is a region's current shape: its replicas, the leader first, and the term
// of the last change made on the running cluster (0: as the cluster file places it).
type ClusterRegion struct {
	Database string   `json:"database,omitempty"`
	Region   string   `json:"region"`
	Index    int      `json:"index"`
	Leader   uint32   `json:"leader"`
	Replicas []uint32 `json:"replicas"`
	Term     uint64   `json:"term"`
}

// RegionTell is a region's new shape, sent by its leader to every node (PUT
// /v1/cluster/regions); with a leadership move, the new leader also gets the checkpoints of
// the user pipes' tasks of the region, by pipe.
type RegionTell struct {
	Region      ClusterRegion              `json:"region"`
	Checkpoints map[string]pipe.Checkpoint `json:"checkpoints,omitempty"`
}

// RegionChangeRequest asks a region's leader for a change (POST /v1/cluster/regions/leader:
// Node and Timeout; /v1/cluster/regions/replicas: Add or Remove).
type RegionChangeRequest struct {
	Region  string `json:"region"`            // root.demo/1
	Node    uint32 `json:"node,omitempty"`    // the new leader
	Timeout string `json:"timeout,omitempty"` // how long the followers may take to drain (default 30s)
	Add     uint32 `json:"add,omitempty"`     // a node to add to the replicas
	Remove  uint32 `json:"remove,omitempty"`  // a node to remove from the replicas
}

// RegionChange is the answer to a region change: the region before and after.
type RegionChange struct {
	Region string        `json:"region"`
	Before ClusterRegion `json:"before"`
	After  ClusterRegion `json:"after"`
	// WritesPausedMS is how long the region's writes waited during a leadership move.
	WritesPausedMS float64 `json:"writes_paused_ms,omitempty"`
	// Missed lists the nodes that could not be told (they learn the change when they start).
	Missed []string `json:"missed,omitempty"`
}

// ReplicaSet is the replication state of a region the answering node leads (GET
// /v1/cluster/replicasets): the consensus status (per follower: carrier, phase, lag,
// pinned WAL, bytes per carrier, last error) and the nodes involved.
type ReplicaSet struct {
	consensus.Status
	Database string `json:"database"`
	Index    int    `json:"index"`
	Leader   uint32 `json:"leader"`
	// FollowerNodes are the follower node ids, in the order of Status.Followers.
	FollowerNodes []uint32 `json:"follower_nodes"`
}
