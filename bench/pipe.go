package bench

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/connector/builtin" // do-nothing sink
	_ "github.com/weir-dev/weir/pipe/extractor"         // wal, tsfile, hybrid
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// PipeConfig configures Pipe.
type PipeConfig struct {
	Dir    string
	Points int64
	// Progress, if set, is told what the benchmark does.
	Progress func(phase string)
}

// Pipe measures the pipe runtime with a do-nothing sink: the ingest rate alone (batch
// durability) is the baseline; then, per source (wal, tsfile, hybrid), the ingest rate
// while the pipe runs, and the pipe's own rate draining the same data from the start
// (history) once ingest is done.
func Pipe(cfg PipeConfig) ([]Result, error) {
	if cfg.Points <= 0 {
		return nil, fmt.Errorf("points must be > 0")
	}
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 1000, Start: 1, Step: 1, Columns: workload.DoubleColumns}
	tablets, per, release := generate(gen, cfg.Points)
	defer release()
	n := len(tablets)
	total := float64(int64(n) * per)
	tell(cfg.Progress, "ingest alone")
	alone, err := pipeRound(filepath.Join(cfg.Dir, "alone"), "", tablets)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, src := range []string{"wal", "tsfile", "hybrid"} {
		tell(cfg.Progress, "%s pipe: ingest with it running, then its drain", src)
		r, err := pipeRound(filepath.Join(cfg.Dir, src), src, tablets)
		if err != nil {
			return nil, err
		}
		out = append(out,
			result("pipe-"+src, "ingest_points_per_second_with_pipe", "points/s", "ingest alone (batch)", total/r.ingest.Seconds(), 0),
			result("pipe-"+src, "pipe_points_per_second", "points/s", "ingest alone (batch)", total/r.drain.Seconds(), 0),
		)
	}
	// the baseline is the mean of a run before and a run after, so that drift on a shared
	// machine does not favour either side
	tell(cfg.Progress, "ingest alone again")
	alone2, err := pipeRound(filepath.Join(cfg.Dir, "alone2"), "", tablets)
	if err != nil {
		return nil, err
	}
	base := total / ((alone.ingest + alone2.ingest) / 2).Seconds()
	for i := range out {
		out[i].BaselineValue = base
		out[i].Ratio = out[i].Value / base
	}
	return out, nil
}

type pipeTimes struct{ ingest, drain time.Duration }

func pipeRound(dir, source string, tablets []*tsfile.Tablet) (pipeTimes, error) {
	var t pipeTimes
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// a memtable and a recent-entries window that hold the whole run, so that the wal and
	// hybrid pipes drain tablets from memory, as a live pipe does: this measures the runtime,
	// not the disk
	r, err := engine.Open(engine.Options{Dir: filepath.Join(dir, "region"), Durability: wal.Batch, FlushAge: -1, MemtableSize: 4 << 30, RecentBytes: 2 << 30, Logger: log})
	if err != nil {
		return t, err
	}
	defer r.Close()
	var mgr *pipe.Manager
	if source != "" {
		mgr, err = pipe.NewManager(pipe.ManagerOptions{Dir: filepath.Join(dir, "pipes"), Logger: log,
			SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{r}, nil }})
		if err != nil {
			return t, err
		}
		defer mgr.Close()
		if err := startPipe(mgr, "live", source); err != nil {
			return t, err
		}
	}
	start := time.Now()
	if err := writeTablets(tablets, 2, regionWriter(r)); err != nil {
		return t, err
	}
	t.ingest = time.Since(start)
	if source == "" {
		return t, nil
	}
	// the tsfile source ships sealed files only
	if source == "tsfile" {
		if err := r.Flush(); err != nil {
			return t, err
		}
	}
	if err := waitDrained(mgr, "live", 5*time.Minute); err != nil {
		return t, err
	}
	// drain: a new pipe ships everything from the start, with no ingest competing
	start = time.Now()
	if err := startPipe(mgr, "drain", source); err != nil {
		return t, err
	}
	if err := waitDrained(mgr, "drain", 5*time.Minute); err != nil {
		return t, err
	}
	t.drain = time.Since(start)
	return t, nil
}

func startPipe(m *pipe.Manager, name, source string) error {
	s, err := pipe.ParseSpec([]byte(fmt.Sprintf("name: %s\nsource: {plugin: %s}\nsink: {plugin: do-nothing}\n", name, source)))
	if err != nil {
		return err
	}
	if err := m.Create(s, false); err != nil {
		return err
	}
	return m.Start(name)
}

func waitDrained(m *pipe.Manager, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		st, err := m.Describe(name)
		if err != nil {
			return err
		}
		if st.LastError != "" {
			return fmt.Errorf("pipe %s: %s", name, st.LastError)
		}
		if len(st.Regions) > 0 && st.LagEvents == 0 && st.InFlightEvents == 0 && st.CommittedEvents > 0 {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("pipe %s did not drain in %s", name, limit)
}
