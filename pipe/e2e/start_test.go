package e2e_test

import (
	"math/rand"
	"testing"
	"time"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
)

// A pipe with history.enable=false starts at what its region held when it first opened.
// Writes made after that and not yet committed when the task fails (its sink is down)
// are shipped after the retry: the retry does not take the region's position again.
func TestNoHistoryRetryKeepsStart(t *testing.T) {
	c := open(t, t.TempDir(), 1<<30)
	defer c.close()
	flakyErrEvery.Store(1) // every send fails: nothing is committed
	defer flakyErrEvery.Store(0)
	pipetest.CreatePipe(t, c.mgr, "name: copy\nsource: {plugin: hybrid, history.enable: false}\nsink: {plugin: test-flaky, database: root.dst}\n", false)
	if _, ok := pipetest.WaitStatus(t, c.mgr, "copy", 20*time.Second, func(st pipe.Status) bool {
		return len(st.Regions) == 1 && st.Regions[0].Phase == pipe.PhaseRunning
	}); !ok {
		t.Fatal("the task did not start")
	}
	rng := rand.New(rand.NewSource(5))
	randomOps(t, c.src, rng, 30)
	// let the task fail on the writes and open again
	if st, ok := pipetest.WaitStatus(t, c.mgr, "copy", 20*time.Second, func(st pipe.Status) bool {
		return st.Retries >= 1 && st.Regions[0].Phase == pipe.PhaseRunning
	}); !ok {
		t.Fatalf("no retry: %+v", st)
	}
	flakyErrEvery.Store(0)
	randomOps(t, c.src, rng, 5)
	if st, ok := pipetest.WaitStatus(t, c.mgr, "copy", 20*time.Second, func(st pipe.Status) bool {
		return pipetest.CaughtUp(st) && pipetest.Digest(t, c.src) == pipetest.Digest(t, c.dst)
	}); !ok {
		t.Fatalf("the writes made before the retry were not shipped: %+v", st.Regions[0])
	}
}
