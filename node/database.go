package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/sourcegraph/conc/pool"
	"github.com/zeebo/xxh3"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/tsfile"
)

// DatabaseFile is the name of a database's description in its directory.
const DatabaseFile = "database.json"

// CheckDatabaseName checks a database name: root and one node (root.factory).
func CheckDatabaseName(name string) error {
	if name == "" {
		return errors.New("empty database name")
	}
	if err := tsfile.ValidateDevice(name); err != nil || strings.Count(name, ".") != 1 {
		return fmt.Errorf("%q is not a database name like root.factory", name)
	}
	return nil
}

// databaseMeta is the content of database.json: the database's regions, fixed when it is
// created (device → region depends on their number), and each region's origin.
type databaseMeta struct {
	Name    string   `json:"name"`
	Regions int      `json:"regions"`
	Origins []uint32 `json:"origins"`
}

// Database is a database of a node: root.<name>, split into regions. A device lives in
// region FNV-1a(device) mod Regions, so its points are in one region only; the number of
// regions is fixed when the database is created. A measurement name has one type across
// the whole database.
type Database struct {
	name    string
	dir     string
	regions []*engine.Region
	origins []uint32
	// index is, in a view (a read narrowed to some regions), the index in the whole
	// database of each of its regions; nil in the database itself.
	index []int

	mu     sync.Mutex
	schema map[string]tsfile.DataType

	// gate, when set, is asked before a write or deletion reaches region i; an error keeps
	// it out (a replicated database: only the leader takes writes, once its protocol
	// admits them).
	// The write calls the release it returns once applied.
	gate func(ctx context.Context, region int) (release func(), err error)
}

// Name returns the database's name (root.x).
func (d *Database) Name() string { return d.name }

// Regions returns the database's regions, by index.
func (d *Database) Regions() []*engine.Region { return append([]*engine.Region(nil), d.regions...) }

// Region returns region i.
func (d *Database) Region(i int) *engine.Region { return d.regions[i] }

// RegionIndex returns the index of the region that holds device: FNV-1a (32 bits) of the
// device path modulo the number of regions.
func (d *Database) RegionIndex(device string) int { return RegionIndex(device, len(d.regions)) }

// RegionOf returns the region that holds device.
func (d *Database) RegionOf(device string) *engine.Region { return d.regions[d.RegionIndex(device)] }

// RegionIndex returns FNV-1a (32 bits) of device modulo n: the region of a database of n
// regions that holds device.
func RegionIndex(device string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(device))
	return int(h.Sum32() % uint32(n))
}

// RegionName names region i of database db: "root.demo/3". Pipes key their progress by it.
func RegionName(db string, i int) string { return db + "/" + strconv.Itoa(i) }

// Schema returns a copy of the database's measurement types.
func (d *Database) Schema() map[string]tsfile.DataType {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]tsfile.DataType, len(d.schema))
	for k, v := range d.schema {
		out[k] = v
	}
	return out
}

// TypeConflictError is a write whose measurement has another type in the database.
type TypeConflictError struct {
	Database, Device, Measurement string
	Have, Got                     tsfile.DataType
}

func (e *TypeConflictError) Error() string {
	return fmt.Sprintf("type conflict: %s.%s is %s in %s, this write has %s", e.Device, e.Measurement, e.Have, e.Database, e.Got)
}

// CheckTypes checks the columns of a write to device against the database's types and
// records the new ones. A failed write may leave its new types recorded (as IoTDB's
// auto-created series outlive a failed insert).
func (d *Database) CheckTypes(device string, cols []tsfile.Column) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range cols {
		if have, ok := d.schema[c.Name]; ok && have != c.Type {
			return &TypeConflictError{Database: d.name, Device: device, Measurement: c.Name, Have: have, Got: c.Type}
		}
	}
	for _, c := range cols {
		d.schema[c.Name] = c.Type
	}
	return nil
}

// WriteTablets writes tablets (all of this database) to their regions: the tablets of one
// device in order, devices concurrently (so that their WAL syncs are shared). It returns the
// points written; on error some tablets may have been written.
func (d *Database) WriteTablets(ctx context.Context, tablets []*tsfile.Tablet) (int64, error) {
	byDev := map[string][]*tsfile.Tablet{}
	var order []string
	for _, t := range tablets {
		if tsfile.Database(t.Device) != d.name {
			return 0, fmt.Errorf("device %s is not in database %s", t.Device, d.name)
		}
		if err := d.CheckTypes(t.Device, t.Columns()); err != nil {
			return 0, err
		}
		if _, ok := byDev[t.Device]; !ok {
			order = append(order, t.Device)
		}
		byDev[t.Device] = append(byDev[t.Device], t)
	}
	if d.gate != nil {
		// in region order, so that two writes never wait on each other's regions
		seen := map[int]bool{}
		var idx []int
		for _, dev := range order {
			if i := d.RegionIndex(dev); !seen[i] {
				seen[i] = true
				idx = append(idx, i)
			}
		}
		sort.Ints(idx)
		for _, i := range idx {
			release, err := d.gate(ctx, i)
			if err != nil {
				return 0, err
			}
			defer release()
		}
	}
	var mu sync.Mutex
	var points int64
	p := pool.New().WithErrors().WithContext(ctx).WithMaxGoroutines(32)
	for _, dev := range order {
		ts := byDev[dev]
		r := d.RegionOf(dev)
		p.Go(func(ctx context.Context) error {
			for _, t := range ts {
				if err := ctx.Err(); err != nil {
					return err
				}
				if _, err := r.Write(t); err != nil {
					return fmt.Errorf("write %s: %w", dev, err)
				}
				mu.Lock()
				points += int64(t.Points())
				mu.Unlock()
			}
			return nil
		})
	}
	err := p.Wait()
	return points, err
}

// Delete hides the points of series matching p in [minT, maxT] in every region.
func (d *Database) Delete(p tsfile.Pattern, minT, maxT int64) error {
	idx := make([]int, len(d.regions))
	for i := range idx {
		idx[i] = i
	}
	return d.deleteIn(context.Background(), idx, p, minT, maxT)
}

// deleteIn hides the points of series matching p in [minT, maxT] in the regions idx.
func (d *Database) deleteIn(ctx context.Context, idx []int, p tsfile.Pattern, minT, maxT int64) error {
	for _, i := range idx {
		r := d.regions[i]
		release := func() {}
		if d.gate != nil {
			var err error
			if release, err = d.gate(ctx, i); err != nil {
				return err
			}
		}
		_, err := r.Delete(p, minT, maxT)
		release()
		if err != nil {
			return fmt.Errorf("delete in %s: %w", r.Name(), err)
		}
	}
	return nil
}

// view returns the database restricted to the regions idx (for reads: its scans and
// digests cover those regions only).
func (d *Database) view(idx []int) *Database {
	v := &Database{name: d.name, dir: d.dir, schema: d.Schema()}
	all := d.indexes()
	for _, i := range idx {
		v.regions = append(v.regions, d.regions[i])
		v.origins = append(v.origins, d.origins[i])
		v.index = append(v.index, all[i])
	}
	return v
}

// indexes returns the indexes, in the whole database, of d's regions (all of them, or
// those of a view).
func (d *Database) indexes() []int {
	if d.index != nil {
		return append([]int(nil), d.index...)
	}
	out := make([]int, len(d.regions))
	for i := range out {
		out[i] = i
	}
	return out
}

// Flush seals and flushes every region's memtables.
func (d *Database) Flush() error {
	p := pool.New().WithErrors()
	for _, r := range d.regions {
		p.Go(func() error {
			if err := r.Flush(); err != nil {
				return fmt.Errorf("flush %s: %w", r.Name(), err)
			}
			return nil
		})
	}
	return p.Wait()
}

// Scan calls fn with the live points of each matching device across the regions, device
// by device in name order (as engine.Region.Scan does for one region): the regions are
// scanned concurrently and merged by device. A record is valid only during fn.
func (d *Database) Scan(ctx context.Context, q engine.Query, fn func(device string, rec arrow.Record) error) error {
	return d.scan(ctx, q, func(_ int, dev string, rec arrow.Record) error { return fn(dev, rec) })
}

type scanItem struct {
	dev string
	rec arrow.Record
}

type regionScan struct {
	items chan scanItem
	ack   chan struct{}
	err   error // set before items is closed
	head  *scanItem
}

func (d *Database) scan(ctx context.Context, q engine.Query, fn func(region int, dev string, rec arrow.Record) error) error {
	if len(d.regions) == 1 {
		return d.regions[0].Scan(q, func(dev string, rec arrow.Record) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(0, dev, rec)
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	scans := make([]*regionScan, len(d.regions))
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred later, runs first)
	defer cancel()
	for i, r := range d.regions {
		s := &regionScan{items: make(chan scanItem), ack: make(chan struct{})}
		scans[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.err = r.Scan(q, func(dev string, rec arrow.Record) error {
				select {
				case s.items <- scanItem{dev, rec}:
				case <-ctx.Done():
					return ctx.Err()
				}
				select { // rec stays valid until the merger is done with it
				case <-s.ack:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			close(s.items)
		}()
	}
	next := func(s *regionScan) error {
		it, ok := <-s.items
		if !ok {
			s.head = nil
			if s.err != nil && !errors.Is(s.err, context.Canceled) {
				return s.err
			}
			return ctx.Err()
		}
		s.head = &it
		return nil
	}
	for _, s := range scans {
		if err := next(s); err != nil {
			return err
		}
	}
	for {
		best := -1
		for i, s := range scans {
			if s.head != nil && (best < 0 || s.head.dev < scans[best].head.dev) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		s := scans[best]
		if err := fn(best, s.head.dev, s.head.rec); err != nil {
			return err
		}
		s.ack <- struct{}{}
		if err := next(s); err != nil {
			return err
		}
	}
}

// Digest returns the database's digest and each region's: one hash over the live points of
// all regions merged by device (engine.HashRecord in device order), so that it does not
// depend on the number of regions, nor on the database's name; a one-region database's
// digest is its region's.
func (d *Database) Digest(ctx context.Context) (api.Digest, error) {
	h := xxh3.New()
	rh := make([]*xxh3.Hasher, len(d.regions))
	rn := make([]int64, len(d.regions))
	for i := range rh {
		rh[i] = xxh3.New()
	}
	var n int64
	var buf []byte
	err := d.scan(ctx, engine.Query{}, func(i int, dev string, rec arrow.Record) error {
		k := engine.HashRecord(h, &buf, dev, rec)
		engine.HashRecord(rh[i], &buf, dev, rec)
		n += k
		rn[i] += k
		return nil
	})
	if err != nil {
		return api.Digest{}, fmt.Errorf("digest %s: %w", d.name, err)
	}
	out := api.Digest{Database: d.name, Digest: hexSum(h), Points: n}
	for i, r := range d.regions {
		out.Regions = append(out.Regions, api.RegionDigest{Region: r.Name(), Digest: hexSum(rh[i]), Points: rn[i]})
	}
	return out, nil
}

func hexSum(h *xxh3.Hasher) string {
	sum := h.Sum128().Bytes()
	return hex.EncodeToString(sum[:])
}

// close syncs and closes every region.
func (d *Database) close() error {
	var errs []error
	for _, r := range d.regions {
		if err := r.SyncWAL(); err != nil {
			errs = append(errs, fmt.Errorf("sync %s: %w", r.Name(), err))
		}
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", r.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// openDatabase opens the database in dir (described by database.json), or creates it
// with the given regions and origins when create is set and it does not exist.
func openDatabase(dir, name string, create *databaseMeta, ro engine.Options) (*Database, error) {
	p := filepath.Join(dir, DatabaseFile)
	var meta databaseMeta
	data, err := os.ReadFile(p)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &meta); err != nil {
			return nil, fmt.Errorf("database %s: %s: %w", name, p, err)
		}
		if meta.Name != name || meta.Regions < 1 || len(meta.Origins) != meta.Regions {
			return nil, fmt.Errorf("database %s: %s: bad description (name %q, %d regions, %d origins)", name, p, meta.Name, meta.Regions, len(meta.Origins))
		}
	case errors.Is(err, os.ErrNotExist) && create != nil:
		meta = *create
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("database %s: %w", name, err)
		}
		b, _ := json.MarshalIndent(meta, "", "  ")
		if err := vfs.WriteFileAtomic(vfs.Default, p, append(b, '\n')); err != nil {
			return nil, fmt.Errorf("database %s: %w", name, err)
		}
	default:
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	d := &Database{name: name, dir: dir, origins: meta.Origins, schema: map[string]tsfile.DataType{}}
	for i := 0; i < meta.Regions; i++ {
		o := ro
		o.Dir = filepath.Join(dir, strconv.Itoa(i))
		o.Name = RegionName(name, i)
		o.Origin = meta.Origins[i]
		r, err := engine.Open(o)
		if err != nil {
			d.close()
			return nil, fmt.Errorf("database %s: %w", name, err)
		}
		d.regions = append(d.regions, r)
		for m, t := range r.Schema() {
			d.schema[m] = t
		}
	}
	return d, nil
}
