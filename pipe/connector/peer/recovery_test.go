package peer_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// TestDownPeerRetries: with the receiver down the pipe shows the error and retries,
// keeping its position; when the receiver is back, everything arrives.
func TestDownPeerRetries(t *testing.T) {
	srcDir, dstDir, pipesDir := tempDirs(t)
	src := openRegion(t, srcDir, 1, 16<<10)
	defer src.Close()
	dst := openRegion(t, dstDir, 2, 64<<20)
	defer dst.Close()
	r := startReceiver(t, "127.0.0.1:0", dst)
	addr := r.addr
	r.stop() // the address is known, nobody listens
	m := newManager(t, pipesDir, src)
	defer m.Close()
	createPipe(t, m, fmt.Sprintf("name: rep\nsource: {plugin: hybrid, realtime.mode: stream}\nsink: {plugin: peer, node-urls: %q, connect-timeout: 2s}\n", addr))
	rng := rand.New(rand.NewSource(1))
	randomOps(t, src, rng, 50)
	waitFor(t, 30*time.Second, "the pipe to show the error and retry", func() bool {
		st, _ := m.Describe("rep")
		return st.LastError != "" && st.Retries >= 2
	})
	st, _ := m.Describe("rep")
	t.Logf("while down: %s (retries %d)", st.LastError, st.Retries)
	r = startReceiver(t, addr, dst)
	defer r.stop()
	randomOps(t, src, rng, 50)
	pipetest.WaitEqual(t, m, "rep", src, dst)
}

// TestFailover: the sink skips a node-url that does not answer.
func TestFailover(t *testing.T) {
	srcDir, dstDir, pipesDir := tempDirs(t)
	src := openRegion(t, srcDir, 1, 16<<10)
	defer src.Close()
	dst := openRegion(t, dstDir, 2, 64<<20)
	defer dst.Close()
	dead := startReceiver(t, "127.0.0.1:0", dst)
	dead.stop()
	r := startReceiver(t, "127.0.0.1:0", dst)
	defer r.stop()
	m := newManager(t, pipesDir, src)
	defer m.Close()
	createPipe(t, m, fmt.Sprintf("name: rep\nsource: {plugin: hybrid, realtime.mode: stream}\nsink: {plugin: peer, node-urls: \"%s,%s\"}\n", dead.addr, r.addr))
	randomOps(t, src, rand.New(rand.NewSource(2)), 100)
	pipetest.WaitEqual(t, m, "rep", src, dst)
}

// writeBig writes rows of random doubles (they compress badly) to four devices and flushes.
func writeBig(t testing.TB, r *engine.Region, rng *rand.Rand, rows int) {
	cols := []tsfile.Column{{Name: "c", Type: tsfile.Double}, {Name: "x", Type: tsfile.Double}}
	for d := 0; d < 4; d++ {
		b := tsfile.NewTabletBuilder(nil, fmt.Sprintf("root.sg.big%d", d), cols)
		base := rng.Int63n(1 << 40)
		for i := 0; i < rows; i++ {
			_ = b.AppendRow(base+int64(i), rng.Float64(), rng.NormFloat64())
		}
		pipetest.WriteTablet(t, r, b)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
}

// staged returns the bytes of the partial files the receiver holds for region r.
func staged(r *engine.Region) int64 {
	parts, _ := filepath.Glob(filepath.Join(r.Dir(), "incoming", "peer-*", "*.part"))
	var n int64
	for _, p := range parts {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}

// TestHalfSentFileResumes: a file transfer cut by a receiver restart, then by a pipe
// restart, continues at the receiver's offset instead of starting over.
func TestHalfSentFileResumes(t *testing.T) {
	srcDir, dstDir, pipesDir := tempDirs(t)
	src := openRegion(t, srcDir, 1, 64<<20)
	defer src.Close()
	dst := openRegion(t, dstDir, 2, 64<<20)
	defer dst.Close()
	r := startReceiver(t, "127.0.0.1:0", dst)
	addr := r.addr
	m := newManager(t, pipesDir, src)
	defer m.Close()
	// 1 MiB/s in 16 KiB chunks: a file of about 1.3 MB takes more than a second
	createPipe(t, m, fmt.Sprintf("name: rep\nsource: {plugin: tsfile}\nsink: {plugin: peer, node-urls: %q, chunk-size: 16KiB, rate-limit-bytes-per-second: 1048576}\n", addr))
	rng := rand.New(rand.NewSource(3))

	writeBig(t, src, rng, 20000)
	waitFor(t, 30*time.Second, "part of the file to arrive", func() bool { return staged(dst) >= 64<<10 })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	r = startReceiver(t, addr, dst)
	pipetest.WaitEqual(t, m, "rep", src, dst)
	resumed := r.srv.Stats().Resumed
	if resumed == 0 {
		t.Fatalf("after the receiver restart the file started over: %+v", r.srv.Stats())
	}

	writeBig(t, src, rng, 20000)
	waitFor(t, 30*time.Second, "part of the second file to arrive", func() bool { return staged(dst) >= 64<<10 })
	if err := m.Stop("rep"); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("rep"); err != nil {
		t.Fatal(err)
	}
	pipetest.WaitEqual(t, m, "rep", src, dst)
	if r.srv.Stats().Resumed == resumed {
		t.Fatalf("after the pipe restart the file started over: %+v", r.srv.Stats())
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("resumed %d bytes in all", r.srv.Stats().Resumed)
}

// TestBadNodeURLsFailsPipe: an address that is not host:port fails the pipe for good,
// naming the key; nothing is retried.
func TestBadNodeURLsFailsPipe(t *testing.T) {
	srcDir, _, pipesDir := tempDirs(t)
	src := openRegion(t, srcDir, 1, 16<<10)
	defer src.Close()
	m := newManager(t, pipesDir, src)
	defer m.Close()
	createPipe(t, m, "name: rep\nsink: {plugin: peer, node-urls: \"localhost,127.0.0.1:99999\"}\n")
	waitFor(t, 30*time.Second, "the pipe to fail", func() bool {
		st, _ := m.Describe("rep")
		return len(st.Regions) > 0 && st.Regions[0].Phase == pipe.PhaseFailed
	})
	st, _ := m.Describe("rep")
	if !strings.Contains(st.LastError, "sink.node-urls") || st.Retries != 0 {
		t.Fatalf("status %+v", st)
	}
	t.Log(st.LastError)
}

// TestOpenKeepsOtherPipesTempFiles: a sink removes the temporary files of selected rows its
// own pipe left behind when it opens, never those of another pipe whose name starts with
// its own and a '-' (pipe a-b of pipe a): that pipe may be sending them.
func TestOpenKeepsOtherPipesTempFiles(t *testing.T) {
	srcDir, dstDir, _ := tempDirs(t)
	src := openRegion(t, srcDir, 1, 16<<10)
	defer src.Close()
	dst := openRegion(t, dstDir, 2, 16<<10)
	defer dst.Close()
	r := startReceiver(t, "127.0.0.1:0", dst)
	defer r.stop()
	out := filepath.Join(src.Dir(), "outgoing")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(out, "peer-a-123456.tsfile")
	others := []string{filepath.Join(out, "peer-a-b-123456.tsfile"), filepath.Join(out, "peer-a-1-123456.tsfile")}
	for _, p := range append([]string{mine}, others...) {
		if err := os.WriteFile(p, []byte("rows"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := pipe.NewConnector("peer")
	if err != nil {
		t.Fatal(err)
	}
	env := &pipe.Env{Pipe: "a", Region: src, Logger: quiet(), Params: pipe.NewParams(map[string]string{"node-urls": r.addr})}
	if err := c.Open(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := os.Stat(mine); !os.IsNotExist(err) {
		t.Errorf("the pipe's own leftover %s: %v, want it removed", mine, err)
	}
	for _, p := range others {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("another pipe's temporary file: %v", err)
		}
	}
}
