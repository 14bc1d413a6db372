package e2e_test

import (
	"math/rand"
	"testing"

	"github.com/weir-dev/weir/pipe/pipetest"
)

// A wal pipe behind its sink when the process stops resumes on the WAL after the restart
// (the region keeps the WAL it finds at open while pipes pin it again), not on files: the
// sink gets no file and the copy converges.
func TestRestartResumesOnWAL(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 16<<10)
	pipetest.CreatePipe(t, c.mgr, "name: copy\nsource: {plugin: wal, pattern: root.src.**}\nsink: {plugin: test-flaky, database: root.dst}\n", false)
	rng := rand.New(rand.NewSource(1))
	randomOps(t, c.src, rng, 50)
	waitEqual(t, c)
	flakyErrEvery.Store(1) // the sink fails: a backlog builds up, flushes go on
	randomOps(t, c.src, rng, 150)
	c.close()
	flakyErrEvery.Store(0)
	c = open(t, dir, 16<<10)
	defer c.close()
	st := waitEqual(t, c)
	if len(st.Regions) != 1 || st.Regions[0].FileBytes != 0 || st.Regions[0].TabletBytes == 0 {
		t.Fatalf("after the restart the pipe shipped files: %+v", st.Regions)
	}
}
