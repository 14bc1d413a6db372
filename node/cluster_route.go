package node

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/sourcegraph/conc/pool"
	"github.com/zeebo/xxh3"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/tsfile"
)

// fanOut bounds the concurrent calls of one routed request.
const fanOut = 8

// regionOf returns the placement of the region of db that holds device.
func (n *Node) regionOf(d *Database, device string) cluster.Region {
	reg, _ := n.cl.region(d.name, d.RegionIndex(device))
	return reg
}

// prefixed returns err with its message prefixed (an *api.Error keeps its status and code).
func prefixed(prefix string, err error) error {
	var e *api.Error
	if errors.As(err, &e) {
		c := *e
		c.Message = prefix + ": " + e.Message
		return &c
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// regionList names the regions of a leader's part of a request ("root.demo/0, root.demo/3").
func regionList(db string, idx map[int]bool) string {
	var is []int
	for i := range idx {
		is = append(is, i)
	}
	sort.Ints(is)
	names := make([]string, len(is))
	for k, i := range is {
		names[k] = RegionName(db, i)
	}
	return strings.Join(names, ", ")
}

// routeLines writes the points of replicated database d: each region's points go to its
// leader (this node, or the leader's /v1/write with local=true), the leaders in parallel.
// It returns what was written and the bad lines the leaders found (numbered as in the
// client's body; the result's Omitted counts those they did not list).
func (n *Node) routeLines(ctx context.Context, d *Database, lps []linePoint) (api.WriteResult, []api.LineError, error) {
	return n.routeLinesTry(ctx, d, lps, 0)
}

// reroutes bounds how often a part of a request is sent again after its leader answered
// not_leader (the region's leadership moved meanwhile). From the second time on, a pause
// that doubles (rerouteBackoff, up to rerouteBackoffMax) comes first: moves made back to
// back can bounce a write between the nodes, each answering while it hands the region on.
const (
	reroutes          = 8
	rerouteBackoff    = 10 * time.Millisecond
	rerouteBackoffMax = 200 * time.Millisecond
)

// rerouting reports whether a part of a request that got err from leader is to be sent
// again (its try'th sending failed: the region's leadership moved meanwhile). Before it
// says so, it takes the region shapes leader knows and, from the second reroute on, waits
// (rerouteBackoff doubling up to rerouteBackoffMax), or until ctx ends.
func (n *Node) rerouting(ctx context.Context, err error, leader uint32, try int) bool {
	var e *api.Error
	if try >= reroutes || !errors.As(err, &e) || e.Code != api.CodeNotLeader {
		return false
	}
	n.relearn(ctx, leader)
	if try == 0 {
		return true
	}
	t := time.NewTimer(min(rerouteBackoff<<(try-1), rerouteBackoffMax))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// relearn takes the region shapes that node from knows: it answered not_leader, so this
// node's view is older than its (this node was down or could not be told of a change).
func (n *Node) relearn(ctx context.Context, from uint32) {
	peer, ok := n.cl.c.Node(from)
	if !ok || from == n.o.ID {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var info api.Cluster
	if err := n.cl.call(cctx, peer, http.MethodGet, "/v1/cluster", nil, "", nil, &info); err != nil {
		return
	}
	for _, r := range regionsOf(info) {
		if cur, err := n.cl.region(r.Database, r.Index); err != nil || len(r.Replicas) == 0 || cur.Term >= r.Term {
			continue // (not waiting on a change of this node's own)
		}
		mu := n.cl.changeLock(r.Name)
		mu.Lock()
		if _, err := n.apply(r, nil); err != nil {
			n.log.Warn("a region shape learnt from another node", "from", from, "region", r.Name, "err", err)
		}
		mu.Unlock()
	}
}

func (n *Node) routeLinesTry(ctx context.Context, d *Database, lps []linePoint, try int) (api.WriteResult, []api.LineError, error) {
	byLeader := map[uint32][]linePoint{}
	regions := map[uint32]map[int]bool{}
	for _, lp := range lps {
		reg := n.regionOf(d, lp.p.Device)
		l := reg.Leader()
		byLeader[l] = append(byLeader[l], lp)
		if regions[l] == nil {
			regions[l] = map[int]bool{}
		}
		regions[l][reg.Index] = true
	}
	var (
		mu  sync.Mutex
		res api.WriteResult
		bad []api.LineError
	)
	// reroute sends a part again, its region's leadership having moved
	reroute := func(part []linePoint) error {
		r, les, err := n.routeLinesTry(ctx, d, part, try+1)
		mu.Lock()
		res.Points += r.Points
		res.Tablets += r.Tablets
		res.Omitted += r.Omitted
		bad = append(bad, les...)
		mu.Unlock()
		return err
	}
	p := pool.New().WithErrors().WithMaxGoroutines(fanOut)
	for leader, part := range byLeader {
		prefix := fmt.Sprintf("write to %s (leader: node %d)", regionList(d.name, regions[leader]), leader)
		p.Go(func() error {
			if leader == n.o.ID {
				pts := make([]tsfile.Point, len(part))
				for i, lp := range part {
					pts[i] = lp.p
				}
				sort.SliceStable(pts, func(i, j int) bool { return pts[i].Device < pts[j].Device })
				tablets, err := tsfile.PointsToTablets(memory.DefaultAllocator, pts)
				if err != nil {
					return fmt.Errorf("database %s: %w", d.name, err)
				}
				k, err := d.WriteTablets(ctx, tablets)
				for _, t := range tablets {
					t.Release()
				}
				if n.rerouting(ctx, err, leader, try) {
					return reroute(part)
				}
				mu.Lock()
				res.Points += k
				res.Tablets += int64(len(tablets))
				mu.Unlock()
				if err != nil {
					return prefixed(prefix, err)
				}
				return nil
			}
			to, _ := n.cl.c.Node(leader)
			var body bytes.Buffer
			for _, lp := range part {
				body.WriteString(tsfile.FormatLine(lp.p))
				body.WriteByte('\n')
			}
			var r api.WriteResult
			err := n.cl.call(ctx, to, http.MethodPost, "/v1/write", url.Values{"local": {"true"}}, "text/plain", body.Bytes(), &r)
			if n.rerouting(ctx, err, leader, try) {
				return reroute(part)
			}
			var e *api.Error
			if errors.As(err, &e) && e.Write != nil {
				r = *e.Write
			}
			mu.Lock()
			res.Points += r.Points
			res.Tablets += r.Tablets
			res.Omitted += r.Omitted // bad lines past those the leader lists
			for _, le := range r.LineErrors {
				if le.Line >= 1 && le.Line <= len(part) {
					le.Line = part[le.Line-1].line
				}
				le.Column = 0 // of the forwarded line, not the client's
				bad = append(bad, le)
			}
			mu.Unlock()
			if err != nil && (e == nil || e.Code != api.CodeBadLines) {
				return prefixed(prefix, err)
			}
			return nil
		})
	}
	err := p.Wait()
	return res, bad, err
}

// routeTablets writes the tablets of replicated database d: each region's tablets go to
// its leader (this node, or the leader's /v1/write with local=true as JSON tablets).
func (n *Node) routeTablets(ctx context.Context, d *Database, tablets []*tsfile.Tablet, jsonOf map[*tsfile.Tablet]api.Tablet) (api.WriteResult, error) {
	return n.routeTabletsTry(ctx, d, tablets, jsonOf, 0)
}

func (n *Node) routeTabletsTry(ctx context.Context, d *Database, tablets []*tsfile.Tablet, jsonOf map[*tsfile.Tablet]api.Tablet, try int) (api.WriteResult, error) {
	byLeader := map[uint32][]*tsfile.Tablet{}
	regions := map[uint32]map[int]bool{}
	for _, t := range tablets {
		reg := n.regionOf(d, t.Device)
		l := reg.Leader()
		byLeader[l] = append(byLeader[l], t)
		if regions[l] == nil {
			regions[l] = map[int]bool{}
		}
		regions[l][reg.Index] = true
	}
	var (
		mu  sync.Mutex
		res api.WriteResult
	)
	p := pool.New().WithErrors().WithMaxGoroutines(fanOut)
	for leader, part := range byLeader {
		prefix := fmt.Sprintf("write to %s (leader: node %d)", regionList(d.name, regions[leader]), leader)
		p.Go(func() error {
			var r api.WriteResult
			var err error
			if leader == n.o.ID {
				r.Points, err = d.WriteTablets(ctx, part)
				r.Tablets = int64(len(part))
			} else {
				to, _ := n.cl.c.Node(leader)
				req := api.Tablets{}
				for _, t := range part {
					req.Tablets = append(req.Tablets, jsonOf[t])
				}
				body, _ := json.Marshal(req)
				err = n.cl.call(ctx, to, http.MethodPost, "/v1/write", url.Values{"local": {"true"}}, "application/json", body, &r)
				var e *api.Error
				if errors.As(err, &e) && e.Write != nil {
					r = *e.Write
				}
			}
			if n.rerouting(ctx, err, leader, try) {
				r, err = n.routeTabletsTry(ctx, d, part, jsonOf, try+1)
			}
			mu.Lock()
			res.Points += r.Points
			res.Tablets += r.Tablets
			mu.Unlock()
			if err != nil {
				return prefixed(prefix, err)
			}
			return nil
		})
	}
	err := p.Wait()
	return res, err
}

// ledRegions returns the indexes of the regions of db this node leads.
func (n *Node) ledRegions(db string) []int {
	pl, _ := n.cl.placement(db)
	var out []int
	for _, reg := range pl {
		if reg.Leader() == n.o.ID {
			out = append(out, reg.Index)
		}
	}
	return out
}

// routeDelete applies a deletion to replicated database d: each leader deletes in the
// regions it leads (this node directly, the others through /v1/delete with local=true).
// It returns the number of regions reached.
func (n *Node) routeDelete(ctx context.Context, d *Database, req api.Delete, p tsfile.Pattern, minT, maxT int64) (int, error) {
	// the regions of d (all of them, or those ?regions= asked), in the whole database,
	// whose gate admits the deletion
	full, ok := n.Database(d.name)
	if !ok {
		return 0, fmt.Errorf("database %s: %w", d.name, ErrNoDatabase)
	}
	return n.routeDeleteTry(ctx, full, d.indexes(), req, p, minT, maxT, 0)
}

// routeDeleteTry applies the deletion in the regions idx of d.
func (n *Node) routeDeleteTry(ctx context.Context, d *Database, idx []int, req api.Delete, p tsfile.Pattern, minT, maxT int64, try int) (int, error) {
	byLeader := map[uint32][]int{}
	for _, i := range idx {
		reg, err := n.cl.region(d.name, i)
		if err != nil {
			return 0, err
		}
		byLeader[reg.Leader()] = append(byLeader[reg.Leader()], i)
	}
	var (
		mu      sync.Mutex
		reached int
	)
	pp := pool.New().WithErrors().WithMaxGoroutines(fanOut)
	for leader, is := range byLeader {
		set := map[int]bool{}
		for _, i := range is {
			set[i] = true
		}
		prefix := fmt.Sprintf("delete in %s (leader: node %d)", regionList(d.name, set), leader)
		pp.Go(func() error {
			var err error
			if leader == n.o.ID {
				err = d.deleteIn(ctx, is, p, minT, maxT)
			} else {
				to, _ := n.cl.c.Node(leader)
				body, _ := json.Marshal(req)
				ss := make([]string, len(is))
				for k, i := range is {
					ss[k] = strconv.Itoa(i)
				}
				err = n.cl.call(ctx, to, http.MethodPost, "/v1/delete", url.Values{"local": {"true"}, "db": {d.name}, "regions": {strings.Join(ss, ",")}}, "application/json", body, nil)
			}
			if n.rerouting(ctx, err, leader, try) {
				k, err := n.routeDeleteTry(ctx, d, is, req, p, minT, maxT, try+1)
				mu.Lock()
				reached += k
				mu.Unlock()
				return err
			}
			if err != nil {
				return prefixed(prefix, err)
			}
			mu.Lock()
			reached += len(is)
			mu.Unlock()
			return nil
		})
	}
	return reached, pp.Wait()
}

// regionsParam reads ?regions=0,2 (region indexes of the one database the request names).
func regionsParam(r *http.Request, d *Database) ([]int, error) {
	s := r.URL.Query().Get("regions")
	if s == "" {
		return nil, nil
	}
	if d == nil {
		return nil, badRequest("regions", "needs db (the database whose regions these are)")
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || i < 0 || i >= len(d.regions) {
			return nil, badRequest("regions", "%q is not a region index of %s (0-%d)", f, d.name, len(d.regions)-1)
		}
		out = append(out, i)
	}
	return out, nil
}

// narrow restricts the databases of a read to ?db= (when given) and its regions to
// ?regions= (when given).
func (n *Node) narrow(r *http.Request, dbs []*Database) ([]*Database, error) {
	name := r.URL.Query().Get("db")
	if name == "" {
		if r.URL.Query().Get("regions") != "" {
			return nil, badRequest("regions", "needs db (the database whose regions these are)")
		}
		return dbs, nil
	}
	var d *Database
	for _, x := range dbs {
		if x.name == name {
			d = x
		}
	}
	if d == nil {
		return nil, nil
	}
	idx, err := regionsParam(r, d)
	if err != nil {
		return nil, err
	}
	if idx != nil {
		d = d.view(idx)
	}
	return []*Database{d}, nil
}

// ---------------------------------------------------------------- reads

// scanJSON runs a query on the local database d and returns its JSON answer, decoded.
func scanJSON(ctx context.Context, d *Database, eq engine.Query, limit int64) (api.QueryResult, error) {
	var buf bytes.Buffer
	jw := &jsonQueryWriter{w: &buf}
	jw.begin()
	var rows int64
	err := d.Scan(ctx, eq, func(dev string, rec arrow.Record) error {
		k := rec.NumRows()
		if limit > 0 && rows+k > limit {
			k = limit - rows
		}
		if err := jw.record(dev, rec, int(k)); err != nil {
			return err
		}
		rows += k
		if limit > 0 && rows >= limit {
			return errLimit
		}
		return nil
	})
	if errors.Is(err, errLimit) {
		err = nil
	}
	if err != nil {
		return api.QueryResult{}, err
	}
	jw.end(nil)
	var res api.QueryResult
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		return api.QueryResult{}, fmt.Errorf("query %s: %w", d.name, err)
	}
	return res, nil
}

// queryRegion asks the replicas of region reg, in read order, for its part of a query.
func (n *Node) queryRegion(ctx context.Context, d *Database, reg cluster.Region, q api.Query, eq engine.Query) (api.QueryResult, error) {
	var errs []error
	for _, id := range n.cl.readOrder(reg) {
		var res api.QueryResult
		var err error
		if id == n.o.ID {
			res, err = scanJSON(ctx, d.view([]int{reg.Index}), eq, q.Limit)
		} else {
			to, _ := n.cl.c.Node(id)
			v := url.Values{"pattern": {q.Pattern}, "db": {d.name}, "regions": {strconv.Itoa(reg.Index)}, "local": {"true"}, "format": {"json"}}
			if len(q.Measurements) > 0 {
				v.Set("measurements", strings.Join(q.Measurements, ","))
			}
			if q.Start != 0 {
				v.Set("start", strconv.FormatInt(q.Start, 10))
			}
			if q.End != 0 {
				v.Set("end", strconv.FormatInt(q.End, 10))
			}
			if q.Limit > 0 {
				v.Set("limit", strconv.FormatInt(q.Limit, 10))
			}
			err = n.cl.call(ctx, to, http.MethodGet, "/v1/query", v, "", nil, &res)
			if err == nil && res.Error != "" {
				err = &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: fmt.Sprintf("node %d: %s", id, res.Error)}
			}
		}
		if err == nil {
			return res, nil
		}
		errs = append(errs, err)
		if !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return api.QueryResult{}, prefixed(fmt.Sprintf("query %s: no replica answered", reg.Name), errors.Join(errs...))
}

// clusterQuery answers a query over replicated (and local) databases: each region of a
// replicated database is asked of one replica, the answers are merged by device and the
// limit applied. The answer is built whole before it is written (unlike a local query,
// which streams).
func (n *Node) clusterQuery(w http.ResponseWriter, r *http.Request, q api.Query, eq engine.Query, format string, dbs []*Database) {
	ctx := r.Context()
	var (
		mu  sync.Mutex
		all []api.Series
	)
	p := pool.New().WithErrors().WithMaxGoroutines(fanOut)
	add := func(res api.QueryResult) {
		mu.Lock()
		all = append(all, res.Series...)
		mu.Unlock()
	}
	for _, d := range dbs {
		if !n.routed(d.name, false) {
			p.Go(func() error {
				res, err := scanJSON(ctx, d, eq, q.Limit)
				if err != nil {
					return err
				}
				add(res)
				return nil
			})
			continue
		}
		// the regions of d (all of them, or those ?regions= asked), of the whole database
		full, ok := n.Database(d.name)
		if !ok {
			continue
		}
		for _, i := range d.indexes() {
			reg, err := n.cl.region(d.name, i)
			if err != nil {
				p.Go(func() error { return err })
				continue
			}
			p.Go(func() error {
				res, err := n.queryRegion(ctx, full, reg, q, eq)
				if err != nil {
					return err
				}
				add(res)
				return nil
			})
		}
	}
	if err := p.Wait(); err != nil {
		writeError(w, apiError(err))
		return
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Device < all[j].Device })
	var rows, points int64
	out := make([]api.Series, 0, len(all))
	for _, s := range all {
		if q.Limit > 0 && rows >= q.Limit {
			break
		}
		if q.Limit > 0 && rows+int64(len(s.Rows)) > q.Limit {
			s.Rows = s.Rows[:q.Limit-rows]
		}
		rows += int64(len(s.Rows))
		for _, row := range s.Rows {
			for _, v := range row[1:] {
				if v != nil {
					points++
				}
			}
		}
		out = append(out, s)
	}
	if format == "csv" {
		writeSeriesCSV(w, q.Measurements, out)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(api.QueryResult{Series: out, Rows: rows, Points: points})
}

// writeSeriesCSV writes merged series as a local query's CSV: device,time,<measurements>
// (those asked for, or every measurement of the series).
func writeSeriesCSV(w http.ResponseWriter, cols []string, series []api.Series) {
	if len(cols) == 0 {
		set := map[string]bool{}
		for _, s := range series {
			for _, c := range s.Columns[1:] {
				if !set[c] {
					set[c] = true
					cols = append(cols, c)
				}
			}
		}
		sort.Strings(cols)
	}
	pos := map[string]int{}
	for i, c := range cols {
		pos[c] = i + 2
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	_ = cw.Write(append([]string{"device", "time"}, cols...))
	row := make([]string, len(cols)+2)
	for _, s := range series {
		for _, vals := range s.Rows {
			clear(row)
			row[0] = s.Device
			row[1] = fmt.Sprint(vals[0])
			for c := 1; c < len(vals) && c < len(s.Columns); c++ {
				p, ok := pos[s.Columns[c]]
				if !ok || vals[c] == nil {
					continue
				}
				row[p] = fmt.Sprint(vals[c])
			}
			_ = cw.Write(row)
		}
	}
	cw.Flush()
}

// digestRegion asks the replicas of region reg, in read order, for its digest.
func (n *Node) digestRegion(ctx context.Context, d *Database, reg cluster.Region) (api.RegionDigest, error) {
	var errs []error
	for _, id := range n.cl.readOrder(reg) {
		var dg api.Digest
		var err error
		if id == n.o.ID {
			dg, err = d.view([]int{reg.Index}).Digest(ctx)
		} else {
			to, _ := n.cl.c.Node(id)
			v := url.Values{"db": {d.name}, "regions": {strconv.Itoa(reg.Index)}, "local": {"true"}}
			err = n.cl.call(ctx, to, http.MethodGet, "/v1/digest", v, "", nil, &dg)
			if err == nil && len(dg.Regions) != 1 {
				err = fmt.Errorf("node %d: digest of %s has %d regions", id, reg.Name, len(dg.Regions))
			}
		}
		if err == nil {
			rd := dg.Regions[0]
			rd.Node = id
			return rd, nil
		}
		errs = append(errs, err)
		if !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return api.RegionDigest{}, prefixed(fmt.Sprintf("digest %s: no replica answered", reg.Name), errors.Join(errs...))
}

// clusterDigest is the digest of a replicated database: each region's digest from one of
// its replicas (the leader first), and a digest over the regions' (xxh3-128 of
// "region digest\n" lines in region order). It equals another cluster's when both hold
// the same points in the same number of regions; it is not the digest a single node
// computes over the same points (compare regions, or each replica's local digest).
func (n *Node) clusterDigest(ctx context.Context, d *Database) (api.Digest, error) {
	// the regions of d (all of them, or those ?regions= asked), of the whole database
	full, ok := n.Database(d.name)
	if !ok {
		return api.Digest{}, fmt.Errorf("database %s: %w", d.name, ErrNoDatabase)
	}
	var pl []cluster.Region
	for _, i := range d.indexes() {
		reg, err := n.cl.region(d.name, i)
		if err != nil {
			return api.Digest{}, err
		}
		pl = append(pl, reg)
	}
	d = full
	rds := make([]api.RegionDigest, len(pl))
	p := pool.New().WithErrors().WithMaxGoroutines(fanOut)
	for i, reg := range pl {
		p.Go(func() error {
			rd, err := n.digestRegion(ctx, d, reg)
			rds[i] = rd
			return err
		})
	}
	if err := p.Wait(); err != nil {
		return api.Digest{}, err
	}
	h := xxh3.New()
	out := api.Digest{Database: d.name, Regions: rds}
	for _, rd := range rds {
		h.WriteString(rd.Region + " " + rd.Digest + "\n")
		out.Points += rd.Points
	}
	out.Digest = hexSum(h)
	return out, nil
}

// clusterFlush asks every other node of the cluster to flush (local=true); db narrows it.
func (n *Node) clusterFlush(ctx context.Context, db string) error {
	// every node is asked, whichever fail (their errors joined)
	p := pool.New().WithErrors().WithMaxGoroutines(fanOut)
	for _, to := range n.cl.c.Nodes {
		if to.ID == n.o.ID {
			continue
		}
		p.Go(func() error {
			v := url.Values{"local": {"true"}}
			if db != "" {
				v.Set("db", db)
			}
			return n.cl.call(ctx, to, http.MethodPost, "/v1/flush", v, "", nil, nil)
		})
	}
	return p.Wait()
}
