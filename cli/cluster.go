package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/node/client"
)

func init() { register(newClusterCmd) }

// ClusterFile is the name of the cluster file `cluster up` writes in its directory.
const ClusterFile = "cluster.yaml"

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Run a cluster of nodes on this machine, and show a cluster's replication"}
	cmd.AddCommand(newClusterUpCmd(), newClusterStatusCmd(), newClusterDigestCmd())
	return cmd
}

// clusterUp is what `cluster up` starts.
type clusterUp struct {
	dir         string
	nodes       int
	protocol    string
	db          string
	regions     int
	replication int
	durability  string
	extra       cluster.DatabaseFile // protocol options
}

func newClusterUpCmd() *cobra.Command {
	var c clusterUp
	cmd := &cobra.Command{
		Use:   "up [--nodes N] [--consensus P] [--dir D]",
		Short: "Start N node processes on free 127.0.0.1 ports as a cluster; Ctrl-C stops them",
		Long: `Start a cluster on this machine: N node processes (this binary's "node run") on free
127.0.0.1 ports, and a database replicated with a consensus protocol. The cluster file is
written to DIR/cluster.yaml, each node's data to DIR/n<id> and its log to DIR/n<id>.log; the
endpoints are printed once every node listens. Ctrl-C (or SIGTERM) stops the nodes
gracefully.

A DIR that already holds a cluster.yaml starts that cluster again (same nodes, ports and
databases; the flags that shape a new cluster are then ignored).`,
		Example: `  pipectl cluster up --nodes 3 --consensus iotv2 --dir /tmp/weir-cluster
  pipectl cluster up --nodes 3 --consensus iot --backlog-limit 4MiB --backlog-timeout 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.nodes < 1 || c.nodes > 64 {
				return fmt.Errorf("--nodes must be 1-64, got %d", c.nodes)
			}
			if _, err := parseDurability(c.durability); err != nil {
				return err
			}
			if !slices.Contains(consensus.Protocols, c.protocol) {
				return fmt.Errorf("--consensus: %q is not one of %s", c.protocol, strings.Join(consensus.Protocols, "|"))
			}
			if c.dir == "" {
				var err error
				if c.dir, err = os.MkdirTemp("", "weir-cluster-"); err != nil {
					return err
				}
			}
			return runClusterUp(cmd, c)
		},
	}
	f := cmd.Flags()
	f.IntVar(&c.nodes, "nodes", 3, "number of node processes")
	f.StringVar(&c.protocol, "consensus", consensus.IoTV2, "replication protocol of the database: simple|iot|fast|iotv2")
	f.StringVar(&c.dir, "dir", "", "directory of the cluster file, the nodes' data and logs (default: a new temporary directory)")
	f.StringVar(&c.db, "db", "root.demo", "the replicated database")
	f.IntVar(&c.regions, "regions", cluster.DefaultRegions, "regions of the database")
	f.IntVar(&c.replication, "replication", 0, "replicas of each region (default: min(3, nodes); 1 for simple)")
	f.StringVar(&c.durability, "durability", "sync", "WAL durability of the nodes: sync|batch|async")
	f.StringVar(&c.extra.SealInterval, "seal-interval", "", "fast: how often the leader seals (default 5s)")
	f.StringVar(&c.extra.BacklogLimit, "backlog-limit", "", "iot: WAL a follower may hold back before writes wait (default 1GiB)")
	f.StringVar(&c.extra.BacklogTimeout, "backlog-timeout", "", "iot: how long a write waits over the backlog limit (default 5s)")
	return cmd
}

// freeAddrs returns n distinct free 127.0.0.1 addresses (held together while picked, so
// that they differ; another process may still take one before a node binds it).
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// writeClusterFile writes a new cluster file for c in c.dir, or reads the one there.
func writeClusterFile(c clusterUp) (*cluster.Cluster, string, bool, error) {
	path := filepath.Join(c.dir, ClusterFile)
	if _, err := os.Stat(path); err == nil {
		cl, err := cluster.Load(path)
		return cl, path, true, err
	}
	addrs, err := freeAddrs(2 * c.nodes)
	if err != nil {
		return nil, "", false, err
	}
	var f cluster.File
	for i := 0; i < c.nodes; i++ {
		f.Nodes = append(f.Nodes, cluster.NodeFile{ID: uint32(i + 1), HTTP: addrs[2*i], Flight: addrs[2*i+1]})
	}
	db := c.extra
	db.Name, db.Protocol, db.Replication, db.Regions = c.db, c.protocol, c.replication, c.regions
	f.Databases = []cluster.DatabaseFile{db}
	cl, err := f.Check()
	if err != nil {
		return nil, "", false, fmt.Errorf("the cluster asked for: %w", err)
	}
	for i, d := range cl.Databases { // the defaults, written out
		f.Databases[i].Protocol, f.Databases[i].Replication, f.Databases[i].Regions = d.Protocol, d.Replication, d.Regions
	}
	data, err := f.Marshal()
	if err != nil {
		return nil, "", false, err
	}
	data = append([]byte("# A Weir cluster, written by pipectl cluster up (docs/cluster.md).\n"), data...)
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, "", false, err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, "", false, err
	}
	return cl, path, false, nil
}

// nodeProc is a node process started by `cluster up`.
type nodeProc struct {
	id    uint32
	cmd   *exec.Cmd
	log   string
	ready chan string   // the node's first line (its addresses), or closed without one
	done  chan struct{} // closed once the process has exited
	err   error         // its exit, set before done is closed
	// reported is set once its unexpected exit has been reported (by the waiting loop).
	reported bool
}

// startNode runs `<exe> node run --id ID --data DIR/n<ID> --cluster FILE` with its log in
// DIR/n<ID>.log.
func startNode(exe string, id uint32, dir, file, durability string) (*nodeProc, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("n%d.log", id))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "node", "run", "--id", strconv.Itoa(int(id)), "--data", filepath.Join(dir, fmt.Sprintf("n%d", id)),
		"--cluster", file, "--durability", durability)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("node %d: %w", id, err)
	}
	p := &nodeProc{id: id, cmd: cmd, log: logPath, ready: make(chan string, 1), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				p.ready <- sc.Text()
				first = false
			}
		}
		if first {
			close(p.ready)
		}
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM and waits for the exit (SIGKILL after timeout).
func (p *nodeProc) stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("node %d did not stop within %s: killed", p.id, timeout)
	}
}

func runClusterUp(cmd *cobra.Command, c clusterUp) error {
	out := cmd.OutOrStdout()
	cl, path, reused, err := writeClusterFile(c)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to run the nodes: %w", err)
	}
	ctx, stopSignals := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
	defer stopSignals()
	var procs []*nodeProc
	stopAll := func() error {
		var errs []error
		for _, p := range procs {
			if p.reported {
				continue // it died before, and was reported then
			}
			if err := p.stop(30 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("node %d: %w (log %s)", p.id, err, p.log))
			} else {
				fmt.Fprintf(out, "node %d stopped\n", p.id)
			}
		}
		return errors.Join(errs...)
	}
	for _, n := range cl.Nodes {
		p, err := startNode(exe, n.ID, c.dir, path, c.durability)
		if err != nil {
			return errors.Join(err, stopAll())
		}
		procs = append(procs, p)
	}
	deadline := time.After(60 * time.Second)
	for _, p := range procs {
		select {
		case line, ok := <-p.ready:
			if !ok {
				<-p.done
				return errors.Join(fmt.Errorf("node %d did not start (%v): see %s", p.id, p.err, p.log), stopAll())
			}
			_ = line
		case <-deadline:
			return errors.Join(fmt.Errorf("node %d did not start within 60s: see %s", p.id, p.log), stopAll())
		case <-ctx.Done():
			return stopAll()
		}
	}
	what := "started"
	if reused {
		what = "restarted"
	}
	fmt.Fprintf(out, "Weir cluster %s: %s in %s\n", what, plural(len(cl.Nodes), "node"), c.dir)
	fmt.Fprintf(out, "  cluster file %s\n", path)
	for _, d := range cl.Databases {
		fmt.Fprintf(out, "  %s: %s consensus, %s × %s\n", d.Name, d.Protocol, plural(d.Regions, "region"), plural(d.Replication, "replica"))
		pl, _ := cl.Placement(d.Name)
		var ls []string
		for _, r := range pl {
			ls = append(ls, fmt.Sprintf("%s → node %d", r.Name, r.Leader()))
		}
		fmt.Fprintf(out, "    leaders: %s\n", strings.Join(ls, ", "))
	}
	for i, n := range cl.Nodes {
		fmt.Fprintf(out, "  node %d: http %s, flight %s, data %s, log %s, pid %d\n", n.ID, n.URL(), n.Flight,
			filepath.Join(c.dir, fmt.Sprintf("n%d", n.ID)), procs[i].log, procs[i].cmd.Process.Pid)
	}
	first := cl.Nodes[0].URL()
	db := "root.demo"
	if len(cl.Databases) > 0 {
		db = cl.Databases[0].Name
	}
	fmt.Fprintf(out, "\nTry (any node takes writes and reads):\n")
	fmt.Fprintf(out, "  echo '%s.d1 temp=21.5 1732530000000' | pipectl write --server %s\n", db, cl.Nodes[len(cl.Nodes)-1].URL())
	fmt.Fprintf(out, "  pipectl query '%s.**' --server %s\n", db, first)
	fmt.Fprintf(out, "  pipectl cluster status --server %s\n", first)
	fmt.Fprintf(out, "Ctrl-C stops the nodes.\n")
	// a node that dies is reported and left down (restart it with the command printed);
	// the others keep running until Ctrl-C
	exited := make(chan *nodeProc, len(procs))
	for _, p := range procs {
		go func() {
			select {
			case <-p.done:
				exited <- p
			case <-ctx.Done():
			}
		}()
	}
	for alive := len(procs); alive > 0; alive-- {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "stopping the nodes\n")
			return stopAll()
		case p := <-exited:
			p.reported = true
			fmt.Fprintf(out, "node %d exited (%v); log %s\n  restart it: %s node run --id %d --data %s --cluster %s\n",
				p.id, p.err, p.log, exe, p.id, filepath.Join(c.dir, fmt.Sprintf("n%d", p.id)), path)
		}
	}
	return errors.New("every node exited")
}

// ---------------------------------------------------------------- status

// ClusterNodeState is a node in `cluster status --json`.
type ClusterNodeState struct {
	ID    uint32 `json:"id"`
	HTTP  string `json:"http"`
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
}

// ClusterStatus is `cluster status --json`: the cluster, which nodes answered, and the
// replica sets of every region whose leader answered.
type ClusterStatus struct {
	Cluster     api.Cluster        `json:"cluster"`
	Nodes       []ClusterNodeState `json:"nodes"`
	ReplicaSets []api.ReplicaSet   `json:"replica_sets"`
}

// clusterInfo reads the cluster from a cluster file, or asks the node at cf.server.
func clusterInfo(ctx context.Context, file string, cf *clientFlags) (api.Cluster, error) {
	if file == "" {
		return cf.client().Cluster(ctx)
	}
	cl, err := cluster.Load(file)
	if err != nil {
		return api.Cluster{}, err
	}
	// a node that answers knows the regions' current shapes (moved leaders, changed
	// replicas); the file only their first placement
	for _, n := range cl.Nodes {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := client.New(n.URL()).Cluster(cctx)
		cancel()
		if err == nil {
			return info, nil
		}
	}
	out := api.Cluster{}
	for _, n := range cl.Nodes {
		out.Nodes = append(out.Nodes, api.ClusterNode{ID: n.ID, HTTP: n.HTTP, Flight: n.Flight})
	}
	for _, d := range cl.Databases {
		cd := api.ClusterDatabase{Name: d.Name, Protocol: d.Protocol, Replication: d.Replication}
		pl, _ := cl.Placement(d.Name)
		for _, r := range pl {
			cd.Regions = append(cd.Regions, api.ClusterRegion{Region: r.Name, Index: r.Index, Leader: r.Leader(), Replicas: r.Replicas})
		}
		out.Databases = append(out.Databases, cd)
	}
	return out, nil
}

// CollectClusterStatus asks every node of the cluster for the replica sets it leads.
func CollectClusterStatus(ctx context.Context, info api.Cluster) ClusterStatus {
	st := ClusterStatus{Cluster: info, ReplicaSets: []api.ReplicaSet{}}
	for _, n := range info.Nodes {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		sets, err := client.New(n.HTTP).ReplicaSets(cctx)
		cancel()
		ns := ClusterNodeState{ID: n.ID, HTTP: "http://" + n.HTTP, Up: err == nil}
		if err != nil {
			ns.Error = err.Error()
		}
		st.Nodes = append(st.Nodes, ns)
		st.ReplicaSets = append(st.ReplicaSets, sets...)
	}
	return st
}

func newClusterStatusCmd() *cobra.Command {
	var cf *clientFlags
	var file string
	cmd := &cobra.Command{
		Use:   "status [--server URL | --cluster FILE] [--json]",
		Short: "Show a cluster's regions, leaders, and per follower the carrier, lag and pinned WAL",
		Long: `Show the cluster a node belongs to (--server, or the nodes of a cluster file with
--cluster): which nodes answer, and for every region its leader, last index, WAL, and per
follower the replication pipe's carrier (tablet or tsfile), phase, lag and the WAL it pins.`,
		Example: `  pipectl cluster status --server http://127.0.0.1:7070
  pipectl cluster status --cluster examples/three-replicas/cluster.yaml --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, err := clusterInfo(cmd.Context(), file, cf)
			if err != nil {
				return err
			}
			st := CollectClusterStatus(cmd.Context(), info)
			out := cmd.OutOrStdout()
			if cf.asJSON {
				return printJSON(out, st)
			}
			printClusterStatus(out, st)
			return nil
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().StringVar(&file, "cluster", "", "read the nodes from this cluster file instead of asking --server")
	return cmd
}

func printClusterStatus(out io.Writer, st ClusterStatus) {
	up := map[uint32]bool{}
	var ns []string
	for _, n := range st.Nodes {
		up[n.ID] = n.Up
		s := "up"
		if !n.Up {
			s = "DOWN"
		}
		ns = append(ns, fmt.Sprintf("%d %s (%s)", n.ID, s, n.HTTP))
	}
	fmt.Fprintf(out, "nodes: %s\n", strings.Join(ns, ", "))
	sets := map[string]api.ReplicaSet{}
	for _, rs := range st.ReplicaSets {
		sets[rs.Region] = rs
	}
	for _, d := range st.Cluster.Databases {
		fmt.Fprintf(out, "\n%s: %s consensus, %s × %s\n", d.Name, d.Protocol, plural(len(d.Regions), "region"), plural(d.Replication, "replica"))
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REGION\tLEADER\tLAST INDEX\tWAL\tFOLLOWER\tCARRIER\tPHASE\tLAG EVENTS\tLAG S\tPINNED WAL\tSHIPPED (TABLET/FILE)\tERROR")
		for _, r := range d.Regions {
			rs, ok := sets[r.Region]
			if !ok {
				state := "-"
				if !up[r.Leader] {
					state = "leader down"
				}
				fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t-\t%s\t-\t-\t-\t-\t\n", r.Region, r.Leader, state)
				continue
			}
			if len(rs.Followers) == 0 {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t-\t-\t-\t-\t-\t-\t-\t\n", r.Region, r.Leader, rs.LastIndex, humanBytes(rs.WALBytes))
			}
			for i, f := range rs.Followers {
				region, leader, last, wal := r.Region, strconv.Itoa(int(r.Leader)), strconv.FormatUint(rs.LastIndex, 10), humanBytes(rs.WALBytes)
				if i > 0 {
					region, leader, last, wal = "", "", "", ""
				}
				fid := strings.TrimPrefix(f.ID, "node-")
				if i < len(rs.FollowerNodes) && !up[rs.FollowerNodes[i]] {
					fid += " (down)"
				}
				errText := ""
				if f.Phase != "running" || (i < len(rs.FollowerNodes) && !up[rs.FollowerNodes[i]]) {
					errText = f.LastError
				}
				if len(errText) > 80 {
					errText = errText[:77] + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.3f\t%s\t%s / %s\t%s\n", region, leader, last, wal, fid, orDash(f.Carrier), orDash(f.Phase),
					f.LagEvents, f.LagSeconds, humanBytes(f.PinnedWALBytes), humanBytes(f.TabletBytes), humanBytes(f.FileBytes), errText)
			}
		}
		tw.Flush()
	}
}

// ---------------------------------------------------------------- digest

// ReplicaDigest is one replica's digest of a region in `cluster digest --json`.
type ReplicaDigest struct {
	Node   uint32 `json:"node"`
	Digest string `json:"digest,omitempty"`
	Points int64  `json:"points"`
	Error  string `json:"error,omitempty"`
}

// RegionDigests are the digests of a region's replicas.
type RegionDigests struct {
	Region   string          `json:"region"`
	Leader   uint32          `json:"leader"`
	Replicas []ReplicaDigest `json:"replicas"`
	Equal    bool            `json:"equal"`
}

// CompareReplicas asks every node for the digests of its own replicas of db and compares
// them region by region; equal reports whether every region's replicas answered alike.
func CompareReplicas(ctx context.Context, info api.Cluster, db string) ([]RegionDigests, bool, error) {
	var cd *api.ClusterDatabase
	for i := range info.Databases {
		if info.Databases[i].Name == db {
			cd = &info.Databases[i]
		}
	}
	if cd == nil {
		return nil, false, fmt.Errorf("database %s is not replicated in this cluster", db)
	}
	byNode := map[uint32]map[string]api.RegionDigest{}
	errs := map[uint32]string{}
	for _, n := range info.Nodes {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := client.New(n.HTTP).LocalDigest(cctx, db)
		cancel()
		if err != nil {
			errs[n.ID] = err.Error()
			continue
		}
		byNode[n.ID] = map[string]api.RegionDigest{}
		for _, r := range d.Regions {
			byNode[n.ID][r.Region] = r
		}
	}
	all := true
	var out []RegionDigests
	for _, r := range cd.Regions {
		rd := RegionDigests{Region: r.Region, Leader: r.Leader, Equal: true}
		for _, id := range r.Replicas {
			x := ReplicaDigest{Node: id, Error: errs[id]}
			if d, ok := byNode[id][r.Region]; ok {
				x.Digest, x.Points = d.Digest, d.Points
			} else if x.Error == "" {
				x.Error = "no such region"
			}
			rd.Replicas = append(rd.Replicas, x)
		}
		for _, x := range rd.Replicas {
			if x.Error != "" || x.Digest != rd.Replicas[0].Digest {
				rd.Equal = false
			}
		}
		all = all && rd.Equal
		out = append(out, rd)
	}
	return out, all, nil
}

func newClusterDigestCmd() *cobra.Command {
	var cf *clientFlags
	var file, db string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "digest [--db root.demo] [--wait 60s] [--server URL | --cluster FILE] [--json]",
		Short: "Compare the replicas of every region of a database (exit 1 when they differ)",
		Long: `Ask every node for the digest of its own replicas of a replicated database and compare
them region by region. With --wait, ask again until every region's replicas are equal or
the time is up (for scripts: followers catching up). Exit 1 when they differ.`,
		Example: `  pipectl cluster digest --db root.demo --server http://127.0.0.1:7170
  pipectl cluster digest --cluster examples/three-replicas/cluster.yaml --wait 60s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, err := clusterInfo(cmd.Context(), file, cf)
			if err != nil {
				return err
			}
			deadline := time.Now().Add(wait)
			for {
				rds, equal, err := CompareReplicas(cmd.Context(), info, db)
				if err != nil {
					return err
				}
				if equal || !time.Now().Before(deadline) {
					out := cmd.OutOrStdout()
					if cf.asJSON {
						if err := printJSON(out, map[string]any{"database": db, "equal": equal, "regions": rds}); err != nil {
							return err
						}
					} else {
						printRegionDigests(out, rds)
					}
					if !equal {
						return &ExitError{Code: 1, Err: fmt.Errorf("the replicas of %s differ", db)}
					}
					if !cf.asJSON {
						fmt.Fprintf(out, "every region's replicas are equal\n")
					}
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
	cf = addClientFlags(cmd)
	cmd.Flags().StringVar(&file, "cluster", "", "read the nodes from this cluster file instead of asking --server")
	cmd.Flags().StringVar(&db, "db", "root.demo", "the replicated database")
	cmd.Flags().DurationVar(&wait, "wait", 0, "ask again until the replicas are equal, for at most this long")
	return cmd
}

func printRegionDigests(out io.Writer, rds []RegionDigests) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tLEADER\tREPLICA\tDIGEST\tPOINTS\tEQUAL")
	for _, r := range rds {
		for i, x := range r.Replicas {
			region, leader, eq := r.Region, strconv.Itoa(int(r.Leader)), "yes"
			if !r.Equal {
				eq = "NO"
			}
			if i > 0 {
				region, leader, eq = "", "", ""
			}
			dg := x.Digest
			if x.Error != "" {
				dg = "error: " + x.Error
				if len(dg) > 60 {
					dg = dg[:57] + "..."
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", region, leader, x.Node, dg, x.Points, eq)
		}
	}
	tw.Flush()
}
