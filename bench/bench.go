// Package bench measures Weir against raw baselines run in the same process on the same
// machine: ingest against plain appends of the same WAL bytes, flush against a plain Arrow IPC
// file write of the same records, scan against a plain Arrow IPC read of the same file.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sys/unix"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// Result is one measured figure with the baseline measured in the same run.
type Result struct {
	Bench         string  `json:"bench"`
	Metric        string  `json:"metric"`
	Value         float64 `json:"value"`
	Unit          string  `json:"unit"`
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baseline_value"`
	Ratio         float64 `json:"ratio"`
}

func result(bench, metric, unit, baseline string, v, bv float64) Result {
	r := Result{Bench: bench, Metric: metric, Value: v, Unit: unit, Baseline: baseline, BaselineValue: bv}
	if bv > 0 {
		r.Ratio = v / bv
	}
	return r
}

// tell calls progress (when set) with what a benchmark starts doing.
func tell(progress func(phase string), format string, a ...any) {
	if progress != nil {
		progress(fmt.Sprintf(format, a...))
	}
}

// generate makes whole tablets of gen holding at least points points (per tablet: per);
// release frees them.
func generate(gen *workload.Generator, points int64) (tablets []*tsfile.Tablet, per int64, release func()) {
	per = int64(gen.PointsPerTablet())
	tablets = make([]*tsfile.Tablet, (points+per-1)/per)
	for i := range tablets {
		tablets[i] = gen.Next()
	}
	return tablets, per, func() {
		for _, t := range tablets {
			t.Release()
		}
	}
}

// IngestConfig configures Ingest.
type IngestConfig struct {
	Dir           string
	Points        int64
	Durability    wal.Durability
	RowsPerTablet int // default 1000
	Writers       int // default 2
	Rounds        int // default 3; figures are medians over rounds
	Progress      func(points int64)
}

// Ingest writes Points as tablets of RowsPerTablet rows × 5 DOUBLE measurements through
// Region.Write with Writers goroutines, then appends the same encoded bytes to a plain file
// with the same number of fdatasyncs (sync mode) or one per 10 ms of the run (batch), or
// none (async).
func Ingest(cfg IngestConfig) ([]Result, error) {
	if cfg.RowsPerTablet <= 0 {
		cfg.RowsPerTablet = 1000
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 2
	}
	if cfg.Points <= 0 {
		return nil, fmt.Errorf("points must be > 0")
	}
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: cfg.RowsPerTablet, Start: 1, Step: 1, Columns: workload.DoubleColumns}
	tablets, per, release := generate(gen, cfg.Points)
	defer release()
	n := len(tablets)
	total := int64(n) * per
	var payloads [][]byte
	for _, t := range tablets {
		b := make([]byte, 8, 64<<10)
		b = tsfile.AppendTablet(b, t)
		payloads = append(payloads, b)
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	var regionD, rawD []time.Duration
	for round := 0; round < cfg.Rounds; round++ {
		unix.Sync() // start each side with no dirty pages of the other
		d, syncs, err := ingestRound(filepath.Join(cfg.Dir, fmt.Sprintf("region%d", round)), cfg, tablets, per)
		if err != nil {
			return nil, err
		}
		regionD = append(regionD, d)
		unix.Sync()
		var base time.Duration
		raw := filepath.Join(cfg.Dir, "raw.log")
		switch cfg.Durability {
		case wal.Sync:
			// the same number of fdatasyncs, each covering as many payloads as a group did
			every := len(payloads)
			if syncs > 0 {
				every = max(1, int(int64(len(payloads))/syncs))
			}
			base, err = rawAppend(raw, payloads, every, 0)
		case wal.Batch:
			// writes acked once written; an fdatasync every sync interval in the background
			base, err = rawAppend(raw, payloads, 0, 10*time.Millisecond)
		default:
			base, err = rawAppend(raw, payloads, 0, 0)
		}
		if err != nil {
			return nil, err
		}
		rawD = append(rawD, base)
	}
	elapsed, base := median(regionD), median(rawD)
	v := float64(total) / elapsed.Seconds()
	bv := float64(total) / base.Seconds()
	name := "ingest-" + cfg.Durability.String()
	return []Result{
		result(name, "points_per_second", "points/s", "raw file append, same bytes and fsync cadence", v, bv),
	}, nil
}

func ingestRound(dir string, cfg IngestConfig, tablets []*tsfile.Tablet, per int64) (time.Duration, int64, error) {
	defer os.RemoveAll(dir)
	r, err := engine.Open(engine.Options{Dir: dir, Durability: cfg.Durability, FlushAge: -1})
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	err = writeTablets(tablets, cfg.Writers, func(_ context.Context, t *tsfile.Tablet) error {
		if _, err := r.Write(t); err != nil {
			return err
		}
		if cfg.Progress != nil {
			cfg.Progress(per)
		}
		return nil
	})
	if err != nil {
		r.Close()
		return 0, 0, err
	}
	elapsed := time.Since(start)
	syncs := r.WALSyncs()
	return elapsed, syncs, r.Close()
}

// writeTablets hands the tablets to `writers` goroutines that call write for each, and
// returns the first error (the others stop at their next tablet).
func writeTablets(tablets []*tsfile.Tablet, writers int, write func(ctx context.Context, t *tsfile.Tablet) error) error {
	p := pool.New().WithErrors().WithContext(context.Background()).WithCancelOnError()
	ch := make(chan *tsfile.Tablet, 16)
	for w := 0; w < writers; w++ {
		p.Go(func(ctx context.Context) error {
			for t := range ch {
				if err := write(ctx, t); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, t := range tablets {
		ch <- t
	}
	close(ch)
	return p.Wait()
}

// regionWriter writes a tablet to r.
func regionWriter(r *engine.Region) func(context.Context, *tsfile.Tablet) error {
	return func(_ context.Context, t *tsfile.Tablet) error {
		_, err := r.Write(t)
		return err
	}
}

// rawAppend writes each payload behind a 25-byte header (the WAL frame's size) to a plain
// file: with every > 0 an fdatasync after every `every` payloads, with interval > 0 an
// fdatasync every interval from a background goroutine, and a final one in both cases.
func rawAppend(path string, payloads [][]byte, every int, interval time.Duration) (time.Duration, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	fd := int(f.Fd())
	stop := make(chan struct{})
	syncer := pool.New().WithErrors()
	if interval > 0 {
		syncer.Go(func() error {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return nil
				case <-t.C:
					if err := unix.Fdatasync(fd); err != nil {
						return err
					}
				}
			}
		})
	}
	buf := make([]byte, 0, 128<<10)
	start := time.Now()
	for i, p := range payloads {
		buf = append(append(buf[:0], make([]byte, 25)...), p...)
		if _, err := f.Write(buf); err != nil {
			close(stop)
			syncer.Wait()
			return 0, err
		}
		if every > 0 && (i+1)%every == 0 {
			if err := unix.Fdatasync(fd); err != nil {
				close(stop)
				syncer.Wait()
				return 0, err
			}
		}
	}
	close(stop)
	if err := syncer.Wait(); err != nil {
		return 0, err
	}
	if every > 0 {
		if err := unix.Fdatasync(fd); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// FlushConfig configures Flush.
type FlushConfig struct {
	Dir         string
	Points      int64
	Compression tsfile.Compression
	Rounds      int // default 3; each figure is the median over rounds
}

// Flush writes Points into one memtable, times Region.Flush, then times a plain Arrow IPC
// file write of the same record batches (read back from the TsFile) with the same
// compression and an fsync, like the flush. It also times a full Region.Scan of the file
// against a plain IPC read of every batch. Rounds alternate the two sides; each figure is
// the median over rounds (the disk here is shared and noisy).
func Flush(cfg FlushConfig) ([]Result, error) {
	if cfg.Compression == "" {
		cfg.Compression = "lz4"
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	var flushD, rawD, scanD, readD []time.Duration
	var total, scanned int64
	for round := 0; round < cfg.Rounds; round++ {
		f, rw, sc, rd, n, sn, err := flushRound(filepath.Join(cfg.Dir, fmt.Sprintf("round%d", round)), cfg)
		if err != nil {
			return nil, err
		}
		flushD, rawD, scanD, readD = append(flushD, f), append(rawD, rw), append(scanD, sc), append(readD, rd)
		total, scanned = n, sn
	}
	name := string(cfg.Compression)
	return []Result{
		result("flush-"+name, "points_per_second", "points/s", "raw Arrow IPC file write, same records and compression", float64(total)/median(flushD).Seconds(), float64(total)/median(rawD).Seconds()),
		result("scan-"+name, "points_per_second", "points/s", "raw Arrow IPC file read of the same file", float64(scanned)/median(scanD).Seconds(), float64(total)/median(readD).Seconds()),
	}, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func flushRound(dir string, cfg FlushConfig) (flushDur, rawDur, scanDur, readDur time.Duration, total, scanned int64, err error) {
	defer os.RemoveAll(dir)
	r, err := engine.Open(engine.Options{Dir: filepath.Join(dir, "region"), Durability: wal.Async, FlushAge: -1, MemtableSize: 1 << 40, MaxImmutable: 4, Compression: cfg.Compression})
	if err != nil {
		return
	}
	defer r.Close()
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 1000, Start: 1, Step: 1}
	per := int64(gen.PointsPerTablet())
	for total < cfg.Points {
		t := gen.Next()
		_, err = r.Write(t)
		t.Release()
		if err != nil {
			return
		}
		total += per
	}
	if err = r.SyncWAL(); err != nil { // the WAL's own fsync is not part of a flush
		return
	}
	start := time.Now()
	if err = r.Flush(); err != nil {
		return
	}
	flushDur = time.Since(start)
	files := r.Files()
	if len(files) != 1 {
		err = fmt.Errorf("expected one file after flush, got %d", len(files))
		return
	}
	path := r.FilePath(files[0].Name)
	recs, schema, err := readBatches(path)
	if err != nil {
		return
	}
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	if rawDur, err = rawIPCWrite(filepath.Join(dir, "raw.arrow"), schema, recs, cfg.Compression); err != nil {
		return
	}
	sstart := time.Now()
	err = r.Scan(engine.Query{}, func(_ string, rec arrow.Record) error {
		scanned += rec.NumRows() * (rec.NumCols() - 1)
		return nil
	})
	if err != nil {
		return
	}
	scanDur = time.Since(sstart)
	rstart := time.Now()
	rawRecs, _, err := readBatches(path)
	if err != nil {
		return
	}
	readDur = time.Since(rstart)
	for _, rec := range rawRecs {
		rec.Release()
	}
	return
}

func readBatches(path string) ([]arrow.Record, *arrow.Schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	rd, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer rd.Close()
	var recs []arrow.Record
	for i := 0; i < rd.NumRecords(); i++ {
		rec, err := rd.RecordAt(i)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, rec)
	}
	return recs, rd.Schema(), nil
}

func rawIPCWrite(path string, schema *arrow.Schema, recs []arrow.Record, comp tsfile.Compression) (time.Duration, error) {
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	opts := []ipc.Option{ipc.WithSchema(schema), ipc.WithCompressConcurrency(2)}
	switch comp {
	case "zstd":
		opts = append(opts, ipc.WithZstd())
	case "lz4":
		opts = append(opts, ipc.WithLZ4())
	}
	w, err := ipc.NewFileWriter(f, opts...)
	if err != nil {
		f.Close()
		return 0, err
	}
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := w.Close(); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

var _ io.Writer
