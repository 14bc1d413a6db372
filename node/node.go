// Package node is Weir's node: one process hosting databases (each split into regions), the
// pipe manager that runs the pipes reading them, an HTTP JSON API (package node/api for its
// types, node/client for a Go client), Prometheus metrics and, when one is compiled in, the
// Arrow Flight receiver of the peer connector (see FlightFunc). docs/node.md describes it.
//
// A node's data directory holds:
//
//	node.json                          the node's id and the next origin to allocate
//	databases/<db>/database.json       the database's regions and their origins
//	databases/<db>/<i>/                region i (engine.Region; name "<db>/<i>")
//	pipes/                             the pipe manager's store (pipe.Store)
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// MaxNodeID is the largest node id: a region's origin is the node id in the high 16 bits
// and a sequence number of the node in the low 16.
const MaxNodeID = 1<<16 - 1

// Options configure a node (Config.Options builds them from a YAML file).
type Options struct {
	ID         uint32 // 1-65535, unique among nodes that exchange data
	DataDir    string
	HTTPAddr   string // host:port of the HTTP API; port 0 picks a free port
	FlightAddr string // host:port of the Flight receiver; "" for none
	// Regions is the number of regions of a database created on this node (default 4).
	Regions      int
	Durability   wal.Durability
	Compression  tsfile.Compression
	MemtableSize int64
	FlushAge     time.Duration
	// MaxBodyBytes bounds request bodies (default 64 MiB); larger ones get HTTP 413.
	MaxBodyBytes int64
	// AutoCreate creates a database on its first write (Config defaults it to true).
	AutoCreate bool
	// Databases are created at start when missing.
	Databases []DatabaseConfig
	// ShutdownTimeout bounds the wait for in-flight requests at shutdown (default 30s).
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Flight starts the Flight receiver; nil means the one registered with RegisterFlight.
	Flight FlightFunc
	// OnStart, if set, is called by Start once the node listens, with the bound addresses.
	OnStart func(httpAddr, flightAddr string)
	// Cluster, when set, makes the node a member of that cluster (its ID must be one of the
	// cluster's nodes): it holds the replicated databases, leads the regions the placement
	// gives it (a consensus replica set each, shipping to the followers' Flight addresses
	// with the peer sink, which must be registered) and routes writes and reads by region.
	// See docs/cluster.md.
	Cluster *cluster.Cluster
	// PipeSyncInterval is how often a node of a cluster compares its cluster pipes with the
	// other nodes' while it runs, as it does when it starts (default 30s; < 0: only then).
	PipeSyncInterval time.Duration
}

// Node is a running node. Open it, Start it (or Run it), and Shutdown (or Close) it.
type Node struct {
	o       Options
	log     *slog.Logger
	dir     string
	started time.Time

	mu      sync.Mutex // guards dbs, meta and the lifecycle fields
	dbs     map[string]*Database
	meta    nodeMeta
	closed  bool
	running bool

	mgr     *pipe.Manager
	metrics *metrics
	cl      *clusterState // nil when the node runs alone

	httpSrv    *http.Server
	httpLn     net.Listener
	serveErr   chan error
	syncing    sync.WaitGroup // the periodic pipe sync
	flightAddr string
	flightStop func() error
	cancel     context.CancelFunc
}

// nodeMeta is node.json.
type nodeMeta struct {
	ID         uint32 `json:"id"`
	NextOrigin uint32 `json:"next_origin"` // low 16 bits of the next region's origin
}

// Open opens the node's data directory (creating it), its databases and its pipe manager,
// which restarts the pipes that were running. It does not listen yet: see Start.
func Open(o Options) (*Node, error) {
	if o.ID == 0 || o.ID > MaxNodeID {
		return nil, fmt.Errorf("node: id must be 1-%d, got %d", MaxNodeID, o.ID)
	}
	if o.DataDir == "" {
		return nil, errors.New("node: data directory is empty")
	}
	if o.Regions == 0 {
		o.Regions = DefaultRegions
	}
	if o.Regions < 1 || o.Regions > MaxRegions {
		return nil, fmt.Errorf("node: regions must be 1-%d, got %d", MaxRegions, o.Regions)
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = DefaultHTTPAddr
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodySize
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.PipeSyncInterval == 0 {
		o.PipeSyncInterval = DefaultPipeSyncInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Flight == nil {
		o.Flight = RegisteredFlight()
	}
	n := &Node{o: o, log: o.Logger.With("node", o.ID), dir: o.DataDir, dbs: map[string]*Database{}, started: time.Now()}
	if o.Cluster != nil {
		cs, err := newClusterState(o.Cluster, o.ID)
		if err != nil {
			return nil, err
		}
		n.cl = cs
	}
	if err := os.MkdirAll(filepath.Join(o.DataDir, "databases"), 0o755); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := n.loadMeta(); err != nil {
		return nil, err
	}
	if err := n.openDatabases(); err != nil {
		n.closeDatabases()
		return nil, err
	}
	for _, dc := range o.Databases {
		if _, err := n.CreateDatabase(dc.Name, dc.Regions); err != nil {
			n.closeDatabases()
			return nil, err
		}
	}
	if n.cl != nil {
		// the replicated databases and the regions' shapes first: pipes resume over the
		// regions this node leads
		if err := n.prepareCluster(); err != nil {
			n.closeDatabases()
			return nil, err
		}
	}
	mgr, err := pipe.NewManager(pipe.ManagerOptions{
		Dir:           filepath.Join(o.DataDir, "pipes"),
		SourceRegions: n.sourceRegions,
		Databases:     n.writeBackTarget,
		Logger:        n.log,
		// in a cluster, the pipes resume once they agree with the other nodes' (syncPipes):
		// a pipe dropped or stopped while this node was down never runs here meanwhile
		Hold: n.cl != nil,
	})
	if err != nil {
		n.closeDatabases()
		return nil, fmt.Errorf("node: %w", err)
	}
	n.mgr = mgr
	if n.cl != nil {
		if err := n.openCluster(); err != nil {
			n.closeCluster()
			mgr.Close()
			n.closeDatabases()
			return nil, err
		}
	}
	if n.cl != nil {
		n.syncPipes(context.Background())
		mgr.Resume()
	}
	n.metrics = newMetrics(n)
	n.log.Info("node opened", "data", o.DataDir, "databases", len(n.dbs), "pipes", len(mgr.List()))
	return n, nil
}

func (n *Node) loadMeta() error {
	p := filepath.Join(n.dir, "node.json")
	data, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		n.meta = nodeMeta{ID: n.o.ID, NextOrigin: 1}
		return n.saveMeta()
	case err != nil:
		return fmt.Errorf("node: %w", err)
	}
	if err := json.Unmarshal(data, &n.meta); err != nil {
		return fmt.Errorf("node: %s: %w", p, err)
	}
	if n.meta.ID != n.o.ID {
		return fmt.Errorf("node: data directory %s belongs to node %d, not %d", n.dir, n.meta.ID, n.o.ID)
	}
	return nil
}

func (n *Node) saveMeta() error {
	b, _ := json.MarshalIndent(n.meta, "", "  ")
	if err := vfs.WriteFileAtomic(vfs.Default, filepath.Join(n.dir, "node.json"), append(b, '\n')); err != nil {
		return fmt.Errorf("node: save node.json: %w", err)
	}
	return nil
}

func (n *Node) regionOptions() engine.Options {
	return engine.Options{
		Durability: n.o.Durability, Compression: n.o.Compression, MemtableSize: n.o.MemtableSize,
		FlushAge: n.o.FlushAge, Logger: n.log,
	}
}

func (n *Node) openDatabases() error {
	ents, err := os.ReadDir(filepath.Join(n.dir, "databases"))
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || CheckDatabaseName(e.Name()) != nil {
			continue
		}
		d, err := openDatabase(filepath.Join(n.dir, "databases", e.Name()), e.Name(), nil, n.dbRegionOptions(e.Name()))
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		n.dbs[d.name] = d
	}
	return nil
}

// ErrNoDatabase is returned for a database the node does not have.
var ErrNoDatabase = errors.New("no such database")

// ErrClosed is returned by a node that is shutting down.
var ErrClosed = errors.New("node closed")

// Database returns a database of the node.
func (n *Node) Database(name string) (*Database, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, ok := n.dbs[name]
	return d, ok
}

// Databases returns the node's databases by name.
func (n *Node) Databases() []*Database {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Database, 0, len(n.dbs))
	for _, d := range n.dbs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// CreateDatabase returns database name, creating it with the given number of regions
// (0: the node's default) when it does not exist. An existing database with another
// (non-zero) number of regions is an error.
func (n *Node) CreateDatabase(name string, regions int) (*Database, error) {
	if err := CheckDatabaseName(name); err != nil {
		return nil, err
	}
	if regions < 0 || regions > MaxRegions {
		return nil, fmt.Errorf("database %s: regions must be 1-%d, got %d", name, MaxRegions, regions)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if d, ok := n.dbs[name]; ok {
		if regions != 0 && regions != len(d.regions) {
			return nil, fmt.Errorf("database %s has %d regions, not %d: %w", name, len(d.regions), regions, ErrDatabaseShape)
		}
		return d, nil
	}
	if regions == 0 {
		regions = n.o.Regions
	}
	if int(n.meta.NextOrigin)+regions > 1<<16 {
		return nil, fmt.Errorf("database %s: node %d has no origins left for %d regions", name, n.o.ID, regions)
	}
	meta := &databaseMeta{Name: name, Regions: regions}
	for i := 0; i < regions; i++ {
		meta.Origins = append(meta.Origins, n.o.ID<<16|(n.meta.NextOrigin+uint32(i)))
	}
	// the origins are spent before they are used: a crash wastes them, never reuses them
	n.meta.NextOrigin += uint32(regions)
	if err := n.saveMeta(); err != nil {
		return nil, err
	}
	d, err := openDatabase(filepath.Join(n.dir, "databases", name), name, meta, n.dbRegionOptions(name))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.dbs[name] = d
	n.log.Info("database created", "database", name, "regions", regions)
	return d, nil
}

// ErrDatabaseShape is wrapped by errors about a database's number of regions.
var ErrDatabaseShape = errors.New("database has another number of regions")

// databasesFor returns the databases a pattern may select: the one it names (created
// when create is set and it is missing), or every database when its second node is a
// wildcard.
func (n *Node) databasesFor(p tsfile.Pattern, create bool) ([]*Database, error) {
	if name, ok := patternDatabase(p); ok {
		{
			if create {
				d, err := n.CreateDatabase(name, 0)
				if err != nil {
					return nil, err
				}
				return []*Database{d}, nil
			}
			if d, ok := n.Database(name); ok {
				return []*Database{d}, nil
			}
			return nil, nil
		}
	}
	return n.Databases(), nil
}

// sourceRegions gives the pipe manager the regions a pipe reads: those of the database
// its source pattern names (created if missing), or of every database for a pattern like
// root.** (databases created later are read once the pipe restarts).
func (n *Node) sourceRegions(spec *pipe.Spec) ([]*engine.Region, error) {
	pat := spec.ParamsOf(pipe.RoleSource, 0).Pattern("pattern")
	dbs, err := n.databasesFor(pat, true)
	if err != nil {
		return nil, err
	}
	if len(dbs) == 0 {
		return nil, fmt.Errorf("pattern %s: no database yet", pat)
	}
	var out []*engine.Region
	for _, d := range dbs {
		if n.cl != nil {
			if _, ok := n.cl.c.Database(d.name); ok {
				// a replicated database: the regions this node leads (clusterpipes.go)
				for i, r := range d.regions {
					if n.cl.runsPipes(d.name, i) {
						out = append(out, r)
					}
				}
				continue
			}
		}
		out = append(out, d.regions...)
	}
	return out, nil
}

// writeBackTarget opens the database a write-back sink writes into. The write-back sink
// writes into one region, so its target is a one-region database (created so if missing).
func (n *Node) writeBackTarget(name string) (*engine.Region, error) {
	if n.cl != nil {
		if _, replicated := n.cl.c.Database(name); replicated {
			// its writes must go through its leaders; a write-back writes into this node's copy
			return nil, fmt.Errorf("database %s is replicated by the cluster: a write-back target must be a database of this node alone: %w", name, ErrDatabaseShape)
		}
	}
	d, ok := n.Database(name)
	if !ok {
		var err error
		if d, err = n.CreateDatabase(name, 1); err != nil {
			return nil, err
		}
	}
	if len(d.regions) != 1 {
		return nil, fmt.Errorf("database %s has %d regions; a write-back target needs one (create it with regions 1): %w", name, len(d.regions), ErrDatabaseShape)
	}
	return d.regions[0], nil
}

// Pipes returns the node's pipe manager.
func (n *Node) Pipes() *pipe.Manager { return n.mgr }

// ID returns the node's id.
func (n *Node) ID() uint32 { return n.o.ID }

// HTTPAddr returns the address the HTTP API listens on (after Start).
func (n *Node) HTTPAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// FlightAddr returns the address the Flight receiver listens on (after Start; "" if none).
func (n *Node) FlightAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.flightAddr
}

// Start listens on the HTTP address (and starts the Flight receiver on the Flight
// address) and serves in the background until Shutdown.
func (n *Node) Start() error {
	n.mu.Lock()
	if n.closed || n.running {
		n.mu.Unlock()
		return fmt.Errorf("node: start: %w", ErrClosed)
	}
	n.running = true
	n.mu.Unlock()
	ln, err := net.Listen("tcp", n.o.HTTPAddr)
	if err != nil {
		return fmt.Errorf("node: http: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var flightAddr string
	var flightStop func() error
	if n.o.FlightAddr != "" {
		if n.o.Flight == nil {
			n.log.Warn("no Flight receiver compiled in; not listening on the flight address", "flight", n.o.FlightAddr)
		} else {
			bound, stop, err := n.o.Flight(ctx, FlightEnv{Addr: n.o.FlightAddr, Databases: n, NodeID: n.o.ID, Logger: n.log.With("component", "flight"), Admit: n.admitPeer})
			if err != nil {
				cancel()
				ln.Close()
				return fmt.Errorf("node: flight receiver: %w", err)
			}
			flightAddr, flightStop = bound, stop
		}
	}
	srv := &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
	n.mu.Lock()
	n.httpSrv, n.httpLn, n.flightAddr, n.flightStop, n.cancel = srv, ln, flightAddr, flightStop, cancel
	n.serveErr = make(chan error, 1)
	n.mu.Unlock()
	go func() { n.serveErr <- srv.Serve(ln) }()
	if n.cl != nil && n.o.PipeSyncInterval > 0 {
		n.syncing.Add(1)
		go n.syncPipesEvery(ctx, n.o.PipeSyncInterval)
	}
	n.log.Info("node listening", "http", ln.Addr().String(), "flight", flightAddr)
	if n.o.OnStart != nil {
		n.o.OnStart(ln.Addr().String(), flightAddr)
	}
	return nil
}

// Run starts the node and serves until ctx ends (e.g. on SIGTERM), then shuts it down.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(); err != nil {
		n.Close()
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		n.log.Info("stopping", "cause", context.Cause(ctx))
	case serveErr = <-n.serveErr:
		n.serveErr <- serveErr // Shutdown reads it too
		n.log.Error("http server failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), n.o.ShutdownTimeout)
	defer cancel()
	err := n.Shutdown(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return errors.Join(fmt.Errorf("node: http: %w", serveErr), err)
	}
	return err
}

// Shutdown stops the node gracefully: the HTTP API stops accepting requests and finishes
// those in flight (until ctx ends, then they are cut), the Flight receiver stops, every
// pipe's tasks stop and save their progress (running pipes restart with the next Open),
// and every region syncs its WAL and closes.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	srv, stop, cancel, serveErr := n.httpSrv, n.flightStop, n.cancel, n.serveErr
	n.mu.Unlock()
	var errs []error
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			n.log.Warn("in-flight requests cut at shutdown", "err", err)
			srv.Close()
		}
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	if cancel != nil {
		cancel()
	}
	n.syncing.Wait()
	if stop != nil {
		if err := stop(); err != nil {
			errs = append(errs, fmt.Errorf("flight: %w", err))
		}
	}
	if err := n.mgr.Close(); err != nil {
		errs = append(errs, fmt.Errorf("pipes: %w", err))
	}
	if err := n.closeCluster(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: %w", err))
	}
	if err := n.closeDatabases(); err != nil {
		errs = append(errs, err)
	}
	n.log.Info("node stopped")
	if len(errs) > 0 {
		return fmt.Errorf("node: shutdown: %w", errors.Join(errs...))
	}
	return nil
}

// Close shuts the node down within its ShutdownTimeout.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), n.o.ShutdownTimeout)
	defer cancel()
	return n.Shutdown(ctx)
}

func (n *Node) closeDatabases() error {
	n.mu.Lock()
	dbs := n.dbs
	n.dbs = map[string]*Database{}
	n.closed = true
	n.mu.Unlock()
	var errs []error
	for _, d := range dbs {
		if err := d.close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
