package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// ReplicateConfig configures Replicate.
type ReplicateConfig struct {
	Dir       string
	Points    int64
	Protocols []string // measured after simple, the baseline
	Replicas  int      // 1 leader + Replicas-1 followers (simple: always 1)
	Rounds    int      // rounds of every protocol, taking turns; figures are medians (default 1)
	// PacedFraction > 0 adds rounds whose load is paced at this fraction of simple's ingest,
	// for the lag of followers that keep up (paced_lag_p50/p99_seconds).
	PacedFraction float64
	// Progress, if set, is told what the benchmark does.
	Progress func(phase string)
}

// Replicate runs each protocol on an in-process replica set (followers reached through the
// local-replica sink) and reports leader ingest points/s as a ratio to simple in the same
// run, follower lag p50/p99 while the load runs and until catch-up, CPU seconds per million
// points (process CPU from the first write until every replica has caught up and sealed
// its data into TsFiles; the followers' share is the excess over simple), and bytes shipped
// per carrier.
func Replicate(cfg ReplicateConfig) ([]Result, error) {
	if cfg.Points <= 0 {
		return nil, fmt.Errorf("points must be > 0")
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 3
	}
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 1000, Start: 1, Step: 1, Columns: workload.DoubleColumns}
	tablets, per, release := generate(gen, cfg.Points)
	defer release()
	n := len(tablets)
	total := float64(int64(n) * per)
	rounds := max(cfg.Rounds, 1)
	protos := []string{consensus.Simple}
	for _, p := range cfg.Protocols {
		if p != consensus.Simple {
			protos = append(protos, p)
		}
	}
	// the protocols take turns, round after round, so that a noisy moment of the machine
	// falls on all of them; each figure is the median of its rounds
	type series struct{ rate, cpu, p50, p99, tablet, file []float64 }
	got := map[string]*series{}
	for round := 0; round < rounds; round++ {
		for _, p := range protos {
			replicas := cfg.Replicas
			if p == consensus.Simple {
				replicas = 1
			}
			dir := filepath.Join(cfg.Dir, fmt.Sprintf("%s-%d", p, round))
			tell(cfg.Progress, "round %d/%d: %s, %d replicas, as fast as the leader takes it", round+1, rounds, p, replicas)
			r, err := replicateRound(dir, p, replicas, tablets, 0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			_ = os.RemoveAll(dir)
			s := got[p]
			if s == nil {
				s = &series{}
				got[p] = s
			}
			s.rate = append(s.rate, total/r.ingest.Seconds())
			s.cpu = append(s.cpu, r.cpu.Seconds()/(total/1e6))
			s.p50, s.p99 = append(s.p50, r.p50), append(s.p99, r.p99)
			s.tablet, s.file = append(s.tablet, float64(r.tabletBytes)), append(s.file, float64(r.fileBytes))
		}
	}
	baseRate, baseCPU := medianOf(got[consensus.Simple].rate), medianOf(got[consensus.Simple].cpu)
	// lag while the followers keep up: the load paced at a fraction of simple's ingest
	pace := baseRate * cfg.PacedFraction
	paced := map[string][2][]float64{}
	if cfg.PacedFraction > 0 {
		for round := 0; round < rounds; round++ {
			for _, p := range protos[1:] {
				dir := filepath.Join(cfg.Dir, fmt.Sprintf("%s-paced-%d", p, round))
				tell(cfg.Progress, "paced round %d/%d: %s at %.3g points/s", round+1, rounds, p, pace)
				r, err := replicateRound(dir, p, cfg.Replicas, tablets, pace)
				if err != nil {
					return nil, fmt.Errorf("%s paced: %w", p, err)
				}
				_ = os.RemoveAll(dir)
				l := paced[p]
				l[0], l[1] = append(l[0], r.p50), append(l[1], r.p99)
				paced[p] = l
			}
		}
	}
	out := []Result{result("replicate-simple", "leader_ingest_points_per_second", "points/s", "simple (1 replica)", baseRate, baseRate),
		result("replicate-simple", "cpu_seconds_per_million_points", "s", "simple (1 replica)", baseCPU, baseCPU)}
	followerCPU := map[string]float64{}
	for _, p := range protos[1:] {
		s := got[p]
		followerCPU[p] = max(medianOf(s.cpu)-baseCPU, 0) / float64(cfg.Replicas-1)
	}
	for _, p := range protos[1:] {
		s := got[p]
		name := "replicate-" + p
		out = append(out,
			result(name, "leader_ingest_points_per_second", "points/s", "simple (1 replica)", medianOf(s.rate), baseRate),
			result(name, "lag_p50_seconds", "s", "", medianOf(s.p50), 0),
			result(name, "lag_p99_seconds", "s", "", medianOf(s.p99), 0),
			result(name, "cpu_seconds_per_million_points", "s", "simple (1 replica)", medianOf(s.cpu), baseCPU),
		)
		if iot, ok := followerCPU[consensus.IoT]; ok && p != consensus.IoT {
			out = append(out, result(name, "follower_cpu_seconds_per_million_points", "s", "iot follower", followerCPU[p], iot))
		} else {
			out = append(out, result(name, "follower_cpu_seconds_per_million_points", "s", "", followerCPU[p], 0))
		}
		if l, ok := paced[p]; ok {
			out = append(out,
				result(name, "paced_points_per_second", "points/s", "simple (1 replica)", pace, baseRate),
				result(name, "paced_lag_p50_seconds", "s", "", medianOf(l[0]), 0),
				result(name, "paced_lag_p99_seconds", "s", "", medianOf(l[1]), 0))
		}
		out = append(out,
			result(name, "tablet_bytes_shipped", "bytes", "", medianOf(s.tablet), 0),
			result(name, "file_bytes_shipped", "bytes", "", medianOf(s.file), 0),
		)
	}
	return out, nil
}

type replicateTimes struct {
	ingest, cpu            time.Duration
	p50, p99               float64
	tabletBytes, fileBytes int64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func regionsOf(m map[string]*engine.Region) []*engine.Region {
	out := make([]*engine.Region, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// replicateRound runs one protocol; pace > 0 paces the load at that many points/s (the lag
// of followers that keep up), 0 writes as fast as the leader takes it.
func replicateRound(dir, proto string, replicas int, tablets []*tsfile.Tablet, pace float64) (replicateTimes, error) {
	var t replicateTimes
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := consensus.New(proto, consensus.Options{SealInterval: time.Second})
	if err != nil {
		return t, err
	}
	lo := engine.Options{Dir: filepath.Join(dir, "n1"), Name: "root.bench/0", Origin: 1, Durability: wal.Batch, Logger: log}
	p.LeaderOptions(&lo)
	leader, err := engine.Open(lo)
	if err != nil {
		return t, err
	}
	defer leader.Close()
	followers := map[string]*engine.Region{}
	var fs []consensus.Follower
	for i := 2; i <= replicas && proto != consensus.Simple; i++ {
		id := fmt.Sprintf("n%d", i)
		r, err := engine.Open(engine.Options{Dir: filepath.Join(dir, id), Name: "root.bench/0", Origin: uint32(i), Durability: wal.Batch, Logger: log})
		if err != nil {
			return t, err
		}
		defer r.Close()
		followers[id] = r
		fs = append(fs, consensus.LocalFollower(id))
	}
	set, err := consensus.Open(consensus.SetOptions{Name: "root.bench/0", Protocol: p, Leader: leader, Followers: fs, PipesDir: filepath.Join(dir, "pipes"),
		Resolve: func(id string) (*engine.Region, error) {
			if r := followers[id]; r != nil {
				return r, nil
			}
			return nil, fmt.Errorf("no replica %s", id)
		}, Logger: log})
	if err != nil {
		return t, err
	}
	defer set.Close()
	var lags []float64
	var mu sync.Mutex
	stop := make(chan struct{})
	sampler := pool.New()
	if len(fs) > 0 {
		sampler.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for _, f := range set.Status().Followers {
					mu.Lock()
					lags = append(lags, f.LagSeconds)
					mu.Unlock()
				}
			}
		})
	}
	cpu0 := cpuTime()
	start := time.Now()
	var werr error
	if pace > 0 {
		written := 0
		for _, tb := range tablets {
			if ahead := time.Until(start.Add(time.Duration(float64(written) / pace * float64(time.Second)))); ahead > 0 {
				time.Sleep(ahead)
			}
			if _, werr = set.Write(context.Background(), tb); werr != nil {
				break
			}
			written += tb.Points()
		}
	} else {
		werr = writeTablets(tablets, 2, func(ctx context.Context, tb *tsfile.Tablet) error {
			_, err := set.Write(ctx, tb)
			return err
		})
	}
	t.ingest = time.Since(start)
	var cerr error
	if werr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cerr = set.WaitCaughtUp(ctx)
		cancel()
	}
	// every replica's data sealed into TsFiles, as it is in the end: the cost of a point
	// includes its flush wherever one happens (a fast follower receives files, and flushes
	// nothing)
	for _, r := range append([]*engine.Region{leader}, regionsOf(followers)...) {
		if err := r.Flush(); err != nil && cerr == nil {
			cerr = err
		}
	}
	t.cpu = cpuTime() - cpu0
	close(stop)
	sampler.Wait()
	if werr != nil {
		return t, werr
	}
	if cerr != nil {
		return t, cerr
	}
	for _, f := range set.Status().Followers {
		t.tabletBytes += f.TabletBytes
		t.fileBytes += f.FileBytes
	}
	sort.Float64s(lags)
	if len(lags) > 0 {
		t.p50 = lags[len(lags)/2]
		t.p99 = lags[min(len(lags)-1, len(lags)*99/100)]
	}
	_ = pipe.PhaseRunning
	return t, nil
}
