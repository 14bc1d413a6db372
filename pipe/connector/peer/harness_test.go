package peer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/connector/peer"
	_ "github.com/weir-dev/weir/pipe/extractor"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/pipe/receiver"
	"github.com/weir-dev/weir/tsfile"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		childReceiver(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

func quiet() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

const regionName = "root.sg/0"

func openRegion(t testing.TB, dir string, origin uint32, memsize int64) *engine.Region {
	t.Helper()
	return pipetest.OpenRegion(t, engine.Options{Dir: dir, Name: regionName, Origin: origin, Durability: wal.Sync,
		FlushAge: -1, MemtableSize: memsize, Logger: quiet()})
}

// rcv is an in-process receiver of one region.
type rcv struct {
	addr string
	stop func() error
	srv  *receiver.Server
}

func startReceiver(t testing.TB, addr string, dst *engine.Region) *rcv {
	t.Helper()
	srv, err := receiver.New(receiver.Options{Logger: quiet(), Resolve: func(db, region string) (*engine.Region, error) {
		if db != "root.sg" || region != regionName {
			return nil, fmt.Errorf("no region %s of %s", region, db)
		}
		return dst, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	bound, stop, err := srv.Serve(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return &rcv{addr: bound, stop: stop, srv: srv}
}

func newManager(t testing.TB, dir string, src *engine.Region) *pipe.Manager {
	t.Helper()
	o := pipetest.ManagerOptions(dir, src)
	o.Logger = quiet()
	o.Backoff = pipe.Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond}
	m, err := pipe.NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func createPipe(t testing.TB, m *pipe.Manager, yaml string) {
	t.Helper()
	pipetest.CreatePipe(t, m, yaml, false)
}

var cols = []tsfile.Column{{Name: "a", Type: tsfile.Int64}, {Name: "b", Type: tsfile.Text}, {Name: "c", Type: tsfile.Double}}

// randomOps writes, overwrites and deletes at random, with flushes.
func randomOps(t testing.TB, r *engine.Region, rng *rand.Rand, n int) {
	for i := 0; i < n; i++ {
		switch k := rng.Intn(20); {
		case k < 17:
			dev := fmt.Sprintf("root.sg.d%d", rng.Intn(4))
			b := tsfile.NewTabletBuilder(nil, dev, cols)
			for j, rows := 0, 1+rng.Intn(20); j < rows; j++ {
				var bv any
				if rng.Intn(3) > 0 {
					bv = fmt.Sprint(rng.Intn(100))
				}
				var cv any
				if rng.Intn(4) > 0 {
					cv = rng.Float64()
				}
				_ = b.AppendRow(int64(rng.Intn(500)), int64(rng.Intn(1000)), bv, cv)
			}
			pipetest.WriteTablet(t, r, b)
		case k < 19:
			pat := []string{"root.sg.d1", "root.sg.**", "root.sg.*.a", "root.sg.d2.b"}[rng.Intn(4)]
			lo := int64(rng.Intn(500))
			if _, err := r.Delete(tsfile.MustPattern(pat), lo, lo+int64(rng.Intn(50))); err != nil {
				t.Fatal(err)
			}
		default:
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// waitFor polls cond (a condition, not a delay) until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
	}
}

// caughtUp reports whether the pipe has committed everything the source holds.
func caughtUp(m *pipe.Manager, name string) bool {
	st, err := m.Describe(name)
	return err == nil && st.LagEvents == 0 && st.InFlightEvents == 0
}

func tempDirs(t testing.TB) (src, dst, pipes string) {
	d := t.TempDir()
	return filepath.Join(d, "src"), filepath.Join(d, "dst"), filepath.Join(d, "pipes")
}
