package peer_test

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// TestChainForwardsReceivedFiles: A → B → C, each hop a peer pipe. B holds A's writes
// (tablets, or the sealed files of a files-only pipe), writes and deletions of its own,
// and files it receives from yet another replica (X) while its pipe to C runs. B's pipe
// forwards all of it, each received file as it is listed, without a restart: after each
// round C equals B. B's pipe ships tablets with carrier switches, or files only.
//
// A deletes in every variant: when A's files-only pipe ships a file whose epoch ended with
// a deletion, B holds the deletion with the file and ships it inside the file's event, so
// C does not find the file covered by the deletion and skip it (it did when B applied such
// deletions as writes of its own and shipped them apart).
func TestChainForwardsReceivedFiles(t *testing.T) {
	const (
		stream = "{plugin: hybrid, realtime.mode: stream}"
		hybrid = "{plugin: hybrid, selector.max-pending-events: 8, selector.resume-ratio: 0.25}"
		files  = "{plugin: tsfile}"
	)
	for _, tc := range []struct {
		name, ab, bc string
		deletes      bool // A deletes too
	}{
		{"stream-hybrid", stream, hybrid, true},
		{"stream-files", stream, files, true},
		{"files-hybrid", files, hybrid, true},
	} {
		t.Run(tc.name, func(t *testing.T) { runChain(t, tc.ab, tc.bc, tc.deletes) })
	}
}

func runChain(t *testing.T, ab, bc string, deletes bool) {
	d := t.TempDir()
	a := openRegion(t, d+"/a", 1, 16<<10)
	defer a.Close()
	b := openRegion(t, d+"/b", 2, 16<<10)
	defer b.Close()
	c := openRegion(t, d+"/c", 3, 64<<20)
	defer c.Close()
	x := openRegion(t, d+"/x", 9, 64<<20)
	defer x.Close()
	rb := startReceiver(t, "127.0.0.1:0", b)
	defer rb.stop()
	rc := startReceiver(t, "127.0.0.1:0", c)
	defer rc.stop()
	ma := newManager(t, d+"/pa", a)
	defer ma.Close()
	mb := newManager(t, d+"/pb", b)
	defer mb.Close()
	createPipe(t, ma, fmt.Sprintf("name: rep\nsource: %s\nsink: {plugin: peer, node-urls: %q, batch.max-events: 16, chunk-size: 4KiB}\n", ab, rb.addr))
	createPipe(t, mb, fmt.Sprintf("name: fwd\nsource: %s\nsink: {plugin: peer, node-urls: %q, batch.max-events: 16, chunk-size: 4KiB}\n", bc, rc.addr))

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	// receive writes rows into X, seals them and loads the file into B (as a replication
	// pipe from X's node would)
	received := 0
	receive := func() {
		dev := fmt.Sprintf("root.sg.d%d", rng.Intn(4))
		tb := tsfile.NewTabletBuilder(nil, dev, cols)
		for j, rows := 0, 1+rng.Intn(20); j < rows; j++ {
			_ = tb.AppendRow(int64(rng.Intn(500)), int64(rng.Intn(1000)), fmt.Sprint("x", rng.Intn(100)), rng.Float64())
		}
		pipetest.WriteTablet(t, x, tb)
		if err := x.Flush(); err != nil {
			t.Fatal(err)
		}
		fs := x.Files()
		f := fs[len(fs)-1]
		if _, err := b.LoadFile(x.FilePath(f.Name), f.Progress); err != nil {
			t.Fatal(err)
		}
		received++
	}
	var bd, cd engine.Digest
	for round := 0; round < 4; round++ {
		for i := 0; i < 6; i++ {
			if deletes {
				randomOps(t, a, rng, 15)
			} else {
				writeOps(t, a, rng, 15)
			}
			switch rng.Intn(3) {
			case 0:
				receive()
			case 1:
				randomOps(t, b, rng, 3) // B's own writes (and deletions, flushes)
			}
		}
		// the tail is sealed (a files-only hop waits for it), then one more file comes
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, fmt.Sprintf("B to hold A's writes (round %d)", round), func() bool { return caughtUp(ma, "rep") })
		if err := b.Flush(); err != nil {
			t.Fatal(err)
		}
		receive()
		waitFor(t, 60*time.Second, fmt.Sprintf("C to equal B (round %d)", round), func() bool {
			if !caughtUp(mb, "fwd") {
				return false
			}
			bd, cd = pipetest.Digest(t, b), pipetest.Digest(t, c)
			return bd == cd
		})
	}
	st, err := mb.Describe("fwd")
	if err != nil {
		t.Fatal(err)
	}
	if st.Retries != 0 {
		t.Fatalf("B's pipe restarted (%d retries, last error %q): the files must go without", st.Retries, st.LastError)
	}
	t.Logf("B = C: %+v; %d files received from X; B's pipe: %d switches; B's receiver %+v; C's receiver %+v",
		bd, received, st.Switches, rb.srv.Stats(), rc.srv.Stats())
}

// writeOps writes and overwrites at random, with flushes (randomOps without deletions).
func writeOps(t testing.TB, r *engine.Region, rng *rand.Rand, n int) {
	for i := 0; i < n; i++ {
		if rng.Intn(20) == 0 {
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b := tsfile.NewTabletBuilder(nil, fmt.Sprintf("root.sg.d%d", rng.Intn(4)), cols)
		for j, rows := 0, 1+rng.Intn(20); j < rows; j++ {
			_ = b.AppendRow(int64(rng.Intn(500)), int64(rng.Intn(1000)), fmt.Sprint(rng.Intn(100)), rng.Float64())
		}
		pipetest.WriteTablet(t, r, b)
	}
}
