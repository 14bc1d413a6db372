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

// IngestConfig configures Ingest.
type IngestConfig struct {
	Dir           string
	Points        int64
	Durability    wal.Durability
	RowsPerTablet int // default 1000
	Writers       int // default 2
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
	per := int64(gen.PointsPerTablet())
	n := int((cfg.Points + per - 1) / per)
	tablets := make([]*tsfile.Tablet, n)
	for i := range tablets {
		tablets[i] = gen.Next()
	}
	defer func() {
		for _, t := range tablets {
			t.Release()
		}
	}()
	total := int64(n) * per
	regionDir := filepath.Join(cfg.Dir, "region")
	r, err := engine.Open(engine.Options{Dir: regionDir, Durability: cfg.Durability, FlushAge: -1})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	p := pool.New().WithErrors().WithContext(context.Background()).WithCancelOnError()
	ch := make(chan *tsfile.Tablet, 16)
	for w := 0; w < cfg.Writers; w++ {
		p.Go(func(ctx context.Context) error {
			for t := range ch {
				if _, err := r.Write(t); err != nil {
					return err
				}
				if cfg.Progress != nil {
					cfg.Progress(per)
				}
			}
			return nil
		})
	}
	for _, t := range tablets {
		ch <- t
	}
	close(ch)
	if err := p.Wait(); err != nil {
		r.Close()
		return nil, err
	}
	elapsed := time.Since(start)
	syncs := r.WALSyncs()
	if err := r.Close(); err != nil {
		return nil, err
	}
	// baseline: the same payload bytes appended to a plain file
	var payloads [][]byte
	for _, t := range tablets {
		b := make([]byte, 8, 64<<10)
		b = tsfile.AppendTablet(b, t)
		payloads = append(payloads, b)
	}
	every := 0
	switch cfg.Durability {
	case wal.Sync:
		if syncs > 0 {
			every = max(1, int(int64(len(payloads))/syncs))
		}
	case wal.Batch:
		// one fdatasync per 10 ms of the measured run
		k := int64(elapsed / (10 * time.Millisecond))
		every = max(1, int(int64(len(payloads))/max(k, 1)))
	}
	base, err := rawAppend(filepath.Join(cfg.Dir, "raw.log"), payloads, every)
	if err != nil {
		return nil, err
	}
	v := float64(total) / elapsed.Seconds()
	bv := float64(total) / base.Seconds()
	name := "ingest-" + cfg.Durability.String()
	return []Result{
		result(name, "points_per_second", "points/s", "raw file append, same bytes and fsync cadence", v, bv),
	}, nil
}

// rawAppend writes each payload with a 28-byte frame header stand-in and fdatasyncs every
// `every` payloads (0 = never).
func rawAppend(path string, payloads [][]byte, every int) (time.Duration, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	hdr := make([]byte, 25)
	start := time.Now()
	for i, p := range payloads {
		if _, err := f.Write(append(hdr[:25:25], p...)); err != nil {
			return 0, err
		}
		if every > 0 && (i+1)%every == 0 {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				return 0, err
			}
		}
	}
	if every > 0 {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
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
}

// Flush writes Points into one memtable, times Region.Flush, then times a plain Arrow IPC
// file write of the same record batches (read back from the TsFile) with the same compression.
// It also times a full Region.Scan of the file against a plain IPC read of every batch.
func Flush(cfg FlushConfig) ([]Result, error) {
	if cfg.Compression == "" {
		cfg.Compression = "zstd"
	}
	regionDir := filepath.Join(cfg.Dir, "region")
	r, err := engine.Open(engine.Options{Dir: regionDir, Durability: wal.Async, FlushAge: -1, MemtableSize: 1 << 40, MaxImmutable: 4, Compression: cfg.Compression})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 1000, Start: 1, Step: 1}
	per := int64(gen.PointsPerTablet())
	var total int64
	for total < cfg.Points {
		t := gen.Next()
		if _, err := r.Write(t); err != nil {
			return nil, err
		}
		t.Release()
		total += per
	}
	start := time.Now()
	if err := r.Flush(); err != nil {
		return nil, err
	}
	flushDur := time.Since(start)
	files := r.Files()
	if len(files) != 1 {
		return nil, fmt.Errorf("expected one file after flush, got %d", len(files))
	}
	path := r.FilePath(files[0].Name)
	// the same batches, written by a plain IPC file writer
	recs, schema, err := readBatches(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	rawDur, err := rawIPCWrite(filepath.Join(cfg.Dir, "raw.arrow"), schema, recs, cfg.Compression)
	if err != nil {
		return nil, err
	}
	// scan: region scan of the file vs plain IPC read of every batch
	sstart := time.Now()
	var scanned int64
	if err := r.Scan(engine.Query{}, func(_ string, rec arrow.Record) error {
		scanned += rec.NumRows() * (rec.NumCols() - 1)
		return nil
	}); err != nil {
		return nil, err
	}
	scanDur := time.Since(sstart)
	rstart := time.Now()
	rawRecs, _, err := readBatches(path)
	if err != nil {
		return nil, err
	}
	rawRead := time.Since(rstart)
	for _, rec := range rawRecs {
		rec.Release()
	}
	name := "flush-" + string(cfg.Compression)
	return []Result{
		result(name, "points_per_second", "points/s", "raw Arrow IPC file write, same records and compression", float64(total)/flushDur.Seconds(), float64(total)/rawDur.Seconds()),
		result("scan-"+string(cfg.Compression), "points_per_second", "points/s", "raw Arrow IPC file read of the same file", float64(scanned)/scanDur.Seconds(), float64(total)/rawRead.Seconds()),
	}, nil
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
