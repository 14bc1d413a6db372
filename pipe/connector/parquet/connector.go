package parquet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	pq "github.com/parquet-go/parquet-go"

	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

func init() {
	pipe.RegisterConnector(pipe.PluginInfo{
		Name: Name,
		Doc: "Writes rows into rolling Parquet files under a directory (optionally partitioned by " +
			"device or day): typed columns device, time (TIMESTAMP) and one nullable column per " +
			"measurement. A file is written under a temporary name, fsynced and renamed when it " +
			"rolls, and its events are acknowledged only then; names derive from the WAL index " +
			"range, so a replay after a crash never duplicates rows. Deletions are not exported.",
		Params: Params,
	}, func() pipe.Connector { return New(Options{}) })
}

// Options configure a Connector beyond its parameters.
type Options struct {
	// FS is the filesystem the files are written through; default vfs.Default.
	FS vfs.FS
}

// stallWait is how long the sink waits, holding events while the pipe has as many in
// flight as it delivers before acknowledgements, before it finishes its files anyway.
const stallWait = 250 * time.Millisecond

// Connector is the parquet sink. It implements pipe.AsyncConnector: SendAsync writes a
// batch's rows into the open files and acknowledges events once the files holding them are
// finished (renamed to their final names). A file is finished when it reaches roll-size
// (checked between events), when roll-interval has passed since its first row, when its
// columns change, when max-open-files forces it out, and when the sink holds as many
// unacknowledged events as the pipe delivers before it needs acknowledgements. Send (the
// synchronous form) writes a batch and finishes every open file before it returns.
//
// Deletion and heartbeat events carry no rows: they are acknowledged at once.
type Connector struct {
	fs      vfs.FS
	cfg     Config
	log     *slog.Logger
	pending func() int
	fail    func(error) // Env.Fail: for a failure of the roller
	opts    []pq.WriterOption
	schemas map[string]*pq.Schema
	hasher  *rowHasher

	mu       sync.Mutex
	region   string
	parts    map[string]*partition
	open     int
	tick     uint64 // logical clock: partitions' last writes, for max-open-files
	seq      uint64 // events added, to tell a partition's first rows of an event
	held     map[uint64]int
	acked    []uint64 // ids acknowledged while some lower id is held: in flight still
	acks     []uint64 // to acknowledge once mu is released
	ack      func(ids ...uint64)
	lastSend time.Time
	err      error // the first failure; every later call returns it
	errSeen  bool  // err was returned to the pipe
	closed   bool

	stop chan struct{}
	done chan struct{}
}

// heldEvent is an event whose rows are in open files: refs files.
type heldEvent struct {
	id    uint64
	refs  int
	async bool
	held  bool // counted in Connector.held
}

// partition is one directory's state.
type partition struct {
	key     string
	dir     string
	done    Position // last position in a finished file
	hasDone bool
	pos     Position // position of the last event with rows here
	hasPos  bool
	cols    []tsfile.Column // columns of the open or last file
	// doneEpoch is the last epoch of an event in a finished file (0: none known)
	doneEpoch uint64

	w          *fileWriter
	events     []*heldEvent
	openEpochs [2]uint64 // lowest and highest epoch of the open file's events
	first      uint64
	last       Position
	progress   pipe.ProgressIndex
	opened     time.Time
	used       uint64

	curSeq  uint64
	curSkip bool
	// epoch and epochFirst: the epoch of the last event with rows here (this run) and the
	// WAL index its first such event ended at
	epoch, epochFirst uint64
	// filter holds rows already exported that events of input filterKey must not repeat
	filter       map[uint64]struct{}
	filterKey    [2]uint64 // epoch, MinIndex
	parentSynced bool
}

// New returns a parquet sink; Open configures it from its parameters.
func New(o Options) *Connector {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	return &Connector{fs: o.FS}
}

// Open implements pipe.Connector: it validates the parameters and creates the directory.
func (c *Connector) Open(ctx context.Context, env *pipe.Env) error {
	cfg, err := ParseConfig(env.Params)
	if err != nil {
		return pipe.Permanent(err)
	}
	codec, err := Codec(cfg.Compression)
	if err != nil {
		return pipe.Permanent(fmt.Errorf("sink.%s: %w", ParamCompression, err))
	}
	if err := c.fs.MkdirAll(cfg.Path, 0o755); err != nil {
		return fmt.Errorf("sink.%s %s: %w", ParamPath, cfg.Path, err)
	}
	c.cfg = cfg
	c.log = env.Logger
	if c.log == nil {
		c.log = slog.Default()
	}
	c.pending = env.Pending
	c.fail = env.Fail
	if env.Region != nil {
		c.region = env.Region.Name()
	}
	c.opts = []pq.WriterOption{
		pq.Compression(codec),
		pq.MaxRowsPerRowGroup(cfg.RowGroupSize),
		pq.WriteBufferSize(256 << 10),
		pq.DictionaryMaxBytes(1 << 20),
		pq.CreatedBy("weir", "1", ""),
	}
	c.schemas = map[string]*pq.Schema{}
	c.parts = map[string]*partition{}
	c.held = map[uint64]int{}
	c.hasher = newRowHasher()
	c.lastSend = time.Now()
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.roller()
	return nil
}

// SendAsync implements pipe.AsyncConnector.
func (c *Connector) SendAsync(ctx context.Context, batch []*pipe.Event, ack func(ids ...uint64)) error {
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.ack = ack
	c.lastSend = time.Now()
	err := c.addAllLocked(ctx, batch, true)
	if err == nil && c.stalledLocked() {
		err = c.rollAllLocked()
	}
	if err != nil {
		c.errSeen = true
	}
	c.unlockAndAck()
	return err
}

// Send implements pipe.Connector: the batch's rows are in finished files when it returns
// nil (and so are those of earlier SendAsync calls).
func (c *Connector) Send(ctx context.Context, batch []*pipe.Event) error {
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.lastSend = time.Now()
	err := c.addAllLocked(ctx, batch, false)
	if err == nil {
		err = c.rollAllLocked()
	}
	if err != nil {
		c.errSeen = true
	}
	c.unlockAndAck()
	return err
}

// Flush finishes every open file (acknowledging their events).
func (c *Connector) Flush() error {
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	err := c.rollAllLocked()
	if err != nil {
		c.errSeen = true
	}
	c.unlockAndAck()
	return err
}

// Close implements pipe.Connector: open files are dropped (their events were not
// acknowledged, so the pipe delivers them again). It returns a failure of a background
// roll that no call returned yet.
func (c *Connector) Close() error {
	if c.stop == nil {
		return nil // never opened
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	c.mu.Unlock()
	<-c.done

	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, p := range c.parts {
		if p.w != nil {
			if err := p.w.abort(); err != nil {
				errs = append(errs, err)
			}
			p.w, p.events = nil, nil
			c.open--
		}
	}
	if c.err != nil && !c.errSeen {
		c.errSeen = true
		errs = append(errs, c.err)
	}
	return errors.Join(errs...)
}

func (c *Connector) usableLocked() error {
	if c.parts == nil {
		return errors.New("parquet: sink is not open")
	}
	if c.closed {
		return errors.New("parquet: sink is closed")
	}
	if c.err != nil {
		c.errSeen = true
		return c.err
	}
	return nil
}

// failLocked records the sink's first failure.
func (c *Connector) failLocked(err error) error {
	if c.err == nil {
		c.err = err
	}
	return err
}

// unlockAndAck releases mu and then delivers the acknowledgements collected under it.
func (c *Connector) unlockAndAck() {
	ids, ack := c.acks, c.ack
	c.acks = nil
	c.mu.Unlock()
	if len(ids) > 0 && ack != nil {
		ack(ids...)
	}
}

// roller finishes files by age and when the pipe is stalled, until Close.
func (c *Connector) roller() {
	defer close(c.done)
	period := 100 * time.Millisecond
	if iv := c.cfg.RollInterval; iv > 0 && iv/4 < period {
		period = max(iv/4, time.Millisecond)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.closed || c.err != nil {
			c.mu.Unlock()
			continue
		}
		now := time.Now()
		var err error
		if len(c.held) > 0 && now.Sub(c.lastSend) >= stallWait && c.pending != nil && c.pending() >= c.cfg.StallEvents {
			err = c.rollAllLocked() // the pipe waits for acknowledgements: nothing more comes
		}
		if iv := c.cfg.RollInterval; err == nil && iv > 0 {
			for _, p := range c.parts {
				if p.w != nil && now.Sub(p.opened) >= iv {
					if err = c.rollLocked(p); err != nil {
						break
					}
				}
			}
		}
		if err != nil {
			if c.fail != nil {
				c.errSeen = true // the task hears of it now, not at a next batch that may never come
			}
			c.log.Error("parquet sink: finishing a file in the background failed", "err", err)
		}
		c.unlockAndAck()
		if err != nil && c.fail != nil {
			c.fail(err)
		}
	}
}

func (c *Connector) addAllLocked(ctx context.Context, batch []*pipe.Event, async bool) error {
	for _, e := range batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.addLocked(ctx, e, async); err != nil {
			return c.failLocked(err)
		}
	}
	return nil
}

// addLocked writes e's rows into the open files of their partitions.
func (c *Connector) addLocked(ctx context.Context, e *pipe.Event, async bool) error {
	c.seq++
	h := &heldEvent{id: e.CommitID, async: async}
	if e.Kind != pipe.KindTablet && e.Kind != pipe.KindTsFile {
		c.releaseLocked(h)
		return nil
	}
	if e.MaxIndex == 0 && !e.FromReceivedFile() {
		// (a file received before the region's first write has MaxIndex 0: its version
		// places it)
		return pipe.Permanent(fmt.Errorf("parquet: %s event %d has no WAL index range (a processor must copy MinIndex, MaxIndex and Epoch from its input)", e.Kind, e.CommitID))
	}
	switch {
	case c.region == "" && e.Region != "":
		c.region = e.Region
	case c.region == "":
		return pipe.Permanent(fmt.Errorf("parquet: event %d names no region", e.CommitID))
	case e.Region != "" && e.Region != c.region:
		return pipe.Permanent(fmt.Errorf("parquet: event %d of region %s reached the sink of region %s", e.CommitID, e.Region, c.region))
	}
	var touched []*partition
	var err error
	if e.Kind == pipe.KindTablet {
		if e.Tablet == nil {
			return pipe.Permanent(fmt.Errorf("parquet: tablet event %d without a tablet", e.CommitID))
		}
		cols := e.Tablet.Columns()
		err = c.addRecordLocked(e, h, &touched, e.Tablet.Device, e.Tablet.Rec, cols)
	} else {
		err = c.addFileLocked(ctx, e, h, &touched)
	}
	if err != nil {
		return err
	}
	if h.refs == 0 {
		c.releaseLocked(h) // no rows, or all of them already in finished files
	}
	for _, p := range touched {
		if p.w != nil && p.w.size() >= c.cfg.RollSize {
			if err := c.rollLocked(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// addFileLocked streams a TsFile event's selected rows, device by device.
func (c *Connector) addFileLocked(ctx context.Context, e *pipe.Event, h *heldEvent, touched *[]*partition) error {
	f := e.File
	if f == nil {
		return pipe.Permanent(fmt.Errorf("parquet: tsfile event %d without a file", e.CommitID))
	}
	rd, err := f.Open()
	if err != nil {
		return fmt.Errorf("parquet: open %s: %w", f.Path, err)
	}
	defer rd.Close()
	type devCols struct {
		device string
		want   []string
		cols   []tsfile.Column
	}
	var devs []devCols
	var all []tsfile.Column
	for _, di := range rd.Meta().Devices {
		if !f.Pattern.IsZero() && !f.Pattern.MayMatchDevice(di.Device) {
			continue
		}
		d := devCols{device: di.Device}
		for _, col := range di.Columns {
			if col.Count > 0 && (f.Pattern.IsZero() || f.Pattern.Match(di.Device, col.Name)) {
				d.want = append(d.want, col.Name)
				d.cols = append(d.cols, tsfile.Column{Name: col.Name, Type: col.Type})
			}
		}
		if len(d.want) > 0 {
			devs = append(devs, d)
			all, _ = mergeColumns(all, d.cols)
		}
	}
	for _, d := range devs {
		if err := ctx.Err(); err != nil {
			return err
		}
		cols := all
		if c.cfg.PartitionBy == PartitionDevice {
			cols = d.cols
		}
		err := rd.ReadDevice(d.device, d.want, f.MinTime, f.MaxTime, func(rec arrow.Record) error {
			return c.addRecordLocked(e, h, touched, d.device, rec, cols)
		})
		if err != nil {
			return fmt.Errorf("parquet: read %s: %w", f.Path, err)
		}
	}
	return nil
}

// addRecordLocked spreads rec's rows over their partitions; cols are the columns the
// event brings to a partition (they must cover rec's). Rows without any value are dropped.
func (c *Connector) addRecordLocked(e *pipe.Event, h *heldEvent, touched *[]*partition, device string, rec arrow.Record, cols []tsfile.Column) error {
	n := int(rec.NumRows())
	if n == 0 || rec.NumCols() < 2 {
		return nil
	}
	tc, ok := rec.Column(0).(*array.Int64)
	if !ok {
		return pipe.Permanent(fmt.Errorf("parquet: event %d: time column is %s, not int64", e.CommitID, rec.Column(0).DataType()))
	}
	live := liveRows(rec)
	keep := func(i int) bool { return live == nil || live[i] }
	return forRuns(0, n, keep, func(lo, hi int) error {
		switch c.cfg.PartitionBy {
		case PartitionDevice:
			return c.addRowsLocked(e, h, touched, device, device, rec, lo, hi, cols)
		case PartitionDay:
			times := tc.Int64Values()
			per := c.cfg.Precision.perDay()
			for lo < hi {
				day := floorDiv(times[lo], per)
				end := lo + 1
				for end < hi && floorDiv(times[end], per) == day {
					end++
				}
				if err := c.addRowsLocked(e, h, touched, dayKey(day), device, rec, lo, end, cols); err != nil {
					return err
				}
				lo = end
			}
			return nil
		}
		return c.addRowsLocked(e, h, touched, "", device, rec, lo, hi, cols)
	})
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// dayKey formats day (days since 1970-01-01) as YYYY-MM-DD.
func dayKey(day int64) string { return time.Unix(day*86400, 0).UTC().Format(time.DateOnly) }

// addRowsLocked writes rows [lo, hi) of rec into partition key. The first rows of an event
// in a partition decide its position there, and whether they are already in a finished
// file (a replay): then all of the event's rows for the partition are skipped. The rows of
// a TsFile event that repeat rows already exported from its epoch are dropped.
func (c *Connector) addRowsLocked(e *pipe.Event, h *heldEvent, touched *[]*partition, key, device string, rec arrow.Record, lo, hi int, cols []tsfile.Column) error {
	p, err := c.partitionLocked(key)
	if err != nil {
		return err
	}
	if p.curSeq != c.seq {
		p.curSeq = c.seq
		pos := positionOf(e)
		if p.hasPos && p.pos.sameInput(pos) {
			pos.Ord = p.pos.Ord + 1
		}
		p.pos, p.hasPos = pos, true
		p.curSkip = p.hasDone && !p.done.Less(pos)
		if p.curSkip {
			return nil
		}
		if err := c.filterLocked(p, e); err != nil {
			return err
		}
		if err := c.prepareLocked(p, e, cols); err != nil {
			return err
		}
		p.last, p.progress = pos, e.Progress
		if e.Epoch != p.epoch {
			p.epoch, p.epochFirst = e.Epoch, e.MaxIndex
		}
		if e.Epoch > 0 {
			if p.openEpochs[0] == 0 || e.Epoch < p.openEpochs[0] {
				p.openEpochs[0] = e.Epoch
			}
			p.openEpochs[1] = max(p.openEpochs[1], e.Epoch)
		}
		if h.refs == 0 {
			c.held[h.id]++
			h.held = true
		}
		h.refs++
		p.events = append(p.events, h)
		*touched = append(*touched, p)
	} else if p.curSkip {
		return nil
	}
	c.tick++
	p.used = c.tick
	if p.filter == nil {
		return p.w.write(device, rec, lo, hi)
	}
	order := recordOrder(rec)
	return forRuns(lo, hi, func(i int) bool {
		_, dup := p.filter[c.hasher.arrowRow(device, rec, order, i)]
		return !dup
	}, func(lo, hi int) error { return p.w.write(device, rec, lo, hi) })
}

// repeats reports whether e may hold rows that events of its epoch exported before it: a
// sealed file holds every write of its epoch, while the event may start later in it (the
// epoch's first writes went out as tablets, before a carrier switch or a restart); so may
// an event a processor derived from such a file (it spans several WAL indexes). Tablets a
// processor made of a received file span no WAL index: their file's epoch is its own.
func repeats(e *pipe.Event) bool {
	return e.Epoch > 0 && (e.Kind == pipe.KindTsFile || e.MinIndex < e.MaxIndex && !e.FromReceivedFile())
}

// filterLocked sets p.filter for e: the rows e must not repeat. It is built when e may
// repeat rows that earlier inputs of its epoch exported into p (this run, or in finished
// files before a restart): p's open file is finished if it holds events of the epoch, and
// the finished files of the epoch are read back. The other outputs of the same input (same
// epoch and first index) reuse it.
func (c *Connector) filterLocked(p *partition, e *pipe.Event) error {
	if !repeats(e) {
		p.filter = nil
		return nil
	}
	key := [2]uint64{e.Epoch, e.MinIndex}
	if p.filter != nil && p.filterKey == key {
		return nil
	}
	p.filter = nil
	earlier := p.epoch == e.Epoch && p.epochFirst < e.MinIndex // an earlier input, this run
	if p.epoch != e.Epoch && p.doneEpoch >= e.Epoch {
		earlier = true // finished files of the epoch from before a restart
	}
	if !earlier {
		return nil
	}
	if p.w != nil && p.openEpochs[1] >= e.Epoch {
		if err := c.rollLocked(p); err != nil {
			return err
		}
	}
	set, err := c.exportedLocked(p, e.Epoch)
	if err != nil {
		return err
	}
	p.filter, p.filterKey = set, key
	return nil
}

// exportedLocked hashes the rows of p's finished files (of this region) that hold events of
// epoch or later: from the last file back to one whose epochs all precede.
func (c *Connector) exportedLocked(p *partition, epoch uint64) (map[uint64]struct{}, error) {
	entries, err := c.fs.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("parquet: list %s: %w", p.dir, err)
	}
	var names []FileName
	for _, de := range entries {
		if fn, ok := ParseFileName(de.Name()); ok && fn.Region == c.region {
			names = append(names, fn)
		}
	}
	sort.Slice(names, func(i, j int) bool { return names[j].Last.Less(names[i].Last) })
	set := map[uint64]struct{}{}
	for _, fn := range names {
		maxEpoch, err := c.hashFile(filepath.Join(p.dir, fn.String()), set, epoch)
		if err != nil {
			return nil, fmt.Errorf("parquet: read back %s: %w", fn, err)
		}
		if maxEpoch < epoch {
			break
		}
	}
	return set, nil
}

// hashFile adds the hashes of a finished file's rows to set unless the file's events all
// precede epoch; it returns the file's last epoch (its weir.max_epoch).
func (c *Connector) hashFile(path string, set map[uint64]struct{}, epoch uint64) (uint64, error) {
	f, err := c.fs.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	pf, err := pq.OpenFile(f, st.Size(), pq.SkipPageIndex(true), pq.SkipBloomFilters(true))
	if err != nil {
		return 0, err
	}
	maxEpoch := uint64(math.MaxUint64) // unknown: read it
	if v, ok := pf.Lookup("weir.max_epoch"); ok {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			maxEpoch = n
		}
	}
	if maxEpoch < epoch {
		return maxEpoch, nil
	}
	fields := pf.Schema().Fields()
	names := make([]string, len(fields))
	for i, fl := range fields {
		names[i] = fl.Name()
	}
	buf := make([]pq.Row, 256)
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				set[c.hasher.parquetRow(names, r)] = struct{}{}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return 0, err
			}
		}
		if err := rows.Close(); err != nil {
			return 0, err
		}
	}
	return maxEpoch, nil
}

// prepareLocked makes p's open file take cols: it finishes a file whose columns would
// change and opens a new one (finishing the least recently written file beyond
// max-open-files).
func (c *Connector) prepareLocked(p *partition, e *pipe.Event, cols []tsfile.Column) error {
	merged, changed := mergeColumns(p.cols, cols)
	if changed && p.w != nil {
		if err := c.rollLocked(p); err != nil {
			return err
		}
	}
	if changed {
		if _, err := sortColumns(merged); err != nil {
			return pipe.Permanent(fmt.Errorf("parquet: event %d: %w", e.CommitID, err))
		}
		p.cols = merged
	}
	if p.w != nil {
		return nil
	}
	for c.open >= c.cfg.MaxOpenFiles {
		var victim *partition
		for _, q := range c.parts {
			// a file holding rows of the current event stays open: an event's rows of a
			// partition are all in one file
			if q.w != nil && q.curSeq != c.seq && (victim == nil || q.used < victim.used) {
				victim = q
			}
		}
		if victim == nil {
			break
		}
		if err := c.rollLocked(victim); err != nil {
			return err
		}
	}
	first := e.MinIndex
	if first == 0 || first > e.MaxIndex {
		first = e.MaxIndex
	}
	w, err := createFile(c.fs, filepath.Join(p.dir, tempName(c.region, first)), c.schemaLocked(p.cols), p.cols, c.cfg.RowGroupSize, c.opts)
	if err != nil {
		return err
	}
	p.w, p.first, p.opened = w, first, time.Now()
	c.open++
	return nil
}

func (c *Connector) schemaLocked(cols []tsfile.Column) *pq.Schema {
	k := columnsKey(cols)
	s, ok := c.schemas[k]
	if !ok {
		s = schemaOf(cols, c.cfg.Precision)
		c.schemas[k] = s
	}
	return s
}

// partitionLocked returns partition key, loading it on first use: it creates its
// directory, removes the region's temporary files a crash left there, and finds the last
// position in the region's finished files (and their columns).
func (c *Connector) partitionLocked(key string) (*partition, error) {
	if p, ok := c.parts[key]; ok {
		return p, nil
	}
	p := &partition{key: key, dir: filepath.Join(c.cfg.Path, partitionDir(c.cfg.PartitionBy, key))}
	if err := c.fs.MkdirAll(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("parquet: create %s: %w", p.dir, err)
	}
	entries, err := c.fs.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("parquet: list %s: %w", p.dir, err)
	}
	var lastName string
	for _, de := range entries {
		name := de.Name()
		if region, ok := parseTempName(name); ok && region == c.region {
			if err := c.fs.Remove(filepath.Join(p.dir, name)); err != nil && !vfs.IsNotExist(err) {
				return nil, fmt.Errorf("parquet: remove stale %s: %w", name, err)
			}
			continue
		}
		if fn, ok := ParseFileName(name); ok && fn.Region == c.region && (!p.hasDone || p.done.Less(fn.Last)) {
			p.done, p.hasDone, lastName = fn.Last, true, name
		}
	}
	if p.hasDone {
		// The names decide what a replay skips: make them durable first.
		if err := c.fs.SyncDir(p.dir); err != nil {
			return nil, fmt.Errorf("parquet: sync %s: %w", p.dir, err)
		}
		cols, epoch, err := c.readLast(filepath.Join(p.dir, lastName))
		if err != nil {
			c.log.Warn("parquet sink: cannot read the last file's footer; starting with the next event's columns", "file", lastName, "err", err)
			epoch = math.MaxUint64 // unknown: it may hold any epoch (as without weir.max_epoch)
		}
		p.cols, p.doneEpoch = cols, epoch
	}
	c.parts[key] = p
	return p, nil
}

// readLast reads the columns and the last epoch (weir.max_epoch; unknown: the largest) of a
// partition's last finished file, for the partition's next one.
func (c *Connector) readLast(path string) ([]tsfile.Column, uint64, error) {
	f, err := c.fs.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	pf, err := pq.OpenFile(f, st.Size(), pq.SkipPageIndex(true), pq.SkipBloomFilters(true))
	if err != nil {
		return nil, 0, err
	}
	epoch := uint64(math.MaxUint64)
	if v, ok := pf.Lookup("weir.max_epoch"); ok {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			epoch = n
		}
	}
	cols, err := schemaColumns(pf.Schema())
	return cols, epoch, err
}

// rollLocked finishes p's open file: footer, fsync, rename to its final name, directory
// fsync; then its events (those in no other open file) are acknowledged.
func (c *Connector) rollLocked(p *partition) error {
	w := p.w
	if w == nil {
		return nil
	}
	p.w = nil
	c.open--
	if w.rows == 0 {
		// every row of its events was already exported: no file
		if err := w.abort(); err != nil {
			return c.failLocked(err)
		}
		p.openEpochs = [2]uint64{}
		c.releaseAllLocked(p)
		return nil
	}
	meta := [][2]string{
		{"weir.format_version", "1"},
		{"weir.region", c.region},
		{"weir.partition", p.key},
		{"weir.min_index", strconv.FormatUint(p.first, 10)},
		{"weir.max_index", strconv.FormatUint(p.last.Index, 10)},
		{"weir.min_epoch", strconv.FormatUint(p.openEpochs[0], 10)},
		{"weir.max_epoch", strconv.FormatUint(p.openEpochs[1], 10)},
		{"weir.progress", p.progress.String()},
		{"weir.timestamp_precision", string(c.cfg.Precision)},
	}
	if err := w.finish(meta); err != nil {
		return c.failLocked(err)
	}
	final := filepath.Join(p.dir, FileName{Region: c.region, First: p.first, Last: p.last}.String())
	if err := c.fs.Rename(w.tmp, final); err != nil {
		_ = c.fs.Remove(w.tmp)
		return c.failLocked(fmt.Errorf("parquet: rename %s: %w", filepath.Base(final), err))
	}
	// The file is complete under its name from here on; its events are acknowledged only
	// once the name is durable.
	if err := c.fs.SyncDir(p.dir); err != nil {
		return c.failLocked(fmt.Errorf("parquet: sync %s: %w", p.dir, err))
	}
	if !p.parentSynced && p.dir != c.cfg.Path {
		if err := c.fs.SyncDir(c.cfg.Path); err != nil {
			return c.failLocked(fmt.Errorf("parquet: sync %s: %w", c.cfg.Path, err))
		}
		p.parentSynced = true
	}
	p.done, p.hasDone = p.last, true
	p.doneEpoch = max(p.doneEpoch, p.openEpochs[1])
	p.filter = nil
	p.openEpochs = [2]uint64{}
	c.releaseAllLocked(p)
	return nil
}

// releaseAllLocked drops p's hold on the events of its finished file.
func (c *Connector) releaseAllLocked(p *partition) {
	for _, h := range p.events {
		if h.refs--; h.refs == 0 {
			c.releaseLocked(h)
		}
	}
	p.events = nil
}

func (c *Connector) rollAllLocked() error {
	for _, p := range c.parts {
		if err := c.rollLocked(p); err != nil {
			return err
		}
	}
	if len(c.held) == 0 {
		c.acked = nil
	}
	return nil
}

// releaseLocked acknowledges an event none of whose rows wait in an open file.
func (c *Connector) releaseLocked(h *heldEvent) {
	// only an event counted in held leaves it: another output of the same input may be
	// held still
	if n, ok := c.held[h.id]; ok && h.held {
		h.held = false
		if n <= 1 {
			delete(c.held, h.id)
		} else {
			c.held[h.id] = n - 1
		}
	}
	if h.async {
		c.acks = append(c.acks, h.id)
		if len(c.held) > 0 {
			c.acked = append(c.acked, h.id)
		}
	}
}

// stalledLocked reports whether the pipe has (about) as many events in flight as it
// delivers before it needs acknowledgements, all of them held here or acknowledged behind
// one held here: then nothing more comes until files are finished.
func (c *Connector) stalledLocked() bool {
	if len(c.held) == 0 {
		c.acked = nil
		return false
	}
	lowest := uint64(0)
	for id := range c.held {
		if lowest == 0 || id < lowest {
			lowest = id
		}
	}
	kept := c.acked[:0]
	for _, id := range c.acked {
		if id > lowest {
			kept = append(kept, id)
		}
	}
	c.acked = kept
	return len(c.held)+len(c.acked) >= c.cfg.StallEvents
}
