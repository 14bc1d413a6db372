package peer_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/zeebo/xxh3"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/pipe/pipetest"
	"github.com/weir-dev/weir/tsfile"
)

// patternDigest is Region.Digest over the series matching pattern.
func patternDigest(t testing.TB, r *engine.Region, pattern string) engine.Digest {
	t.Helper()
	h := xxh3.New()
	var n int64
	var buf []byte
	err := r.Scan(engine.Query{Pattern: tsfile.MustPattern(pattern)}, func(dev string, rec arrow.Record) error {
		n += engine.HashRecord(h, &buf, dev, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := h.Sum128().Bytes()
	return engine.Digest{Hash: hex.EncodeToString(sum[:]), Points: n}
}

// TestModes runs a peer pipe in each carrier mode while the source writes, overwrites,
// deletes and flushes; at the end the receiver's digest equals the source's.
func TestModes(t *testing.T) {
	for _, tc := range []struct{ name, source string }{
		{"stream", "{plugin: hybrid, realtime.mode: stream}"},
		{"batch", "{plugin: tsfile}"},
		{"hybrid", "{plugin: hybrid, selector.max-pending-events: 8, selector.resume-ratio: 0.25}"},
		{"batch-selected", "{plugin: hybrid, realtime.mode: batch, pattern: root.sg.*.a}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcDir, dstDir, pipesDir := tempDirs(t)
			src := openRegion(t, srcDir, 1, 16<<10)
			defer src.Close()
			dst := openRegion(t, dstDir, 2, 64<<20)
			defer dst.Close()
			r := startReceiver(t, "127.0.0.1:0", dst)
			defer r.stop()
			m := newManager(t, pipesDir, src)
			defer m.Close()
			createPipe(t, m, fmt.Sprintf("name: rep\nsource: %s\nsink: {plugin: peer, node-urls: %q, batch.max-events: 16, compressor: lz4, chunk-size: 4KiB}\n", tc.source, r.addr))
			rng := rand.New(rand.NewSource(time.Now().UnixNano()))
			randomOps(t, src, rng, 200)
			if err := src.Flush(); err != nil {
				t.Fatal(err)
			}
			if tc.name == "batch-selected" {
				// the receiver holds the selection: its digest is the source's over the pattern
				waitFor(t, 60*time.Second, "the selection to arrive", func() bool {
					return caughtUp(m, "rep") && patternDigest(t, src, "root.sg.*.a") == pipetest.Digest(t, dst)
				})
			} else {
				pipetest.WaitEqual(t, m, "rep", src, dst)
			}
			st := r.srv.Stats()
			t.Logf("receiver: %+v", st)
		})
	}
}

// writeTablets writes n one-row tablets to devices under prefix and returns n.
func writeTablets(t testing.TB, r *engine.Region, prefix string, n int) {
	for i := 0; i < n; i++ {
		b := tsfile.NewTabletBuilder(nil, fmt.Sprintf("%s%d", prefix, i%3), cols[:1])
		_ = b.AppendRow(int64(i), int64(i))
		pipetest.WriteTablet(t, r, b)
	}
}

// TestNoLoopBack: two replicas ship to each other with forwarding=false; each receives
// the other's own writes exactly once and never its own back.
func TestNoLoopBack(t *testing.T) {
	d := t.TempDir()
	a := openRegion(t, d+"/a", 1, 16<<10)
	defer a.Close()
	b := openRegion(t, d+"/b", 2, 16<<10)
	defer b.Close()
	ra := startReceiver(t, "127.0.0.1:0", a)
	defer ra.stop()
	rb := startReceiver(t, "127.0.0.1:0", b)
	defer rb.stop()
	ma := newManager(t, d+"/pa", a)
	defer ma.Close()
	mb := newManager(t, d+"/pb", b)
	defer mb.Close()
	spec := "name: rep\nsource: {plugin: hybrid, realtime.mode: stream, forwarding: false}\nsink: {plugin: peer, node-urls: %q}\n"
	createPipe(t, ma, fmt.Sprintf(spec, rb.addr))
	createPipe(t, mb, fmt.Sprintf(spec, ra.addr))
	writeTablets(t, a, "root.sg.a", 150)
	writeTablets(t, b, "root.sg.b", 100)
	waitFor(t, 60*time.Second, "both replicas to converge", func() bool {
		return caughtUp(ma, "rep") && caughtUp(mb, "rep") && pipetest.Digest(t, a) == pipetest.Digest(t, b)
	})
	sa, sb := ra.srv.Stats(), rb.srv.Stats()
	if sa.Tablets != 100 || sb.Tablets != 150 || sa.Skipped != 0 || sb.Skipped != 0 {
		t.Fatalf("a received %+v, b received %+v; want 100 and 150 tablets, none skipped", sa, sb)
	}
}

// TestSendSync: Send (the synchronous Connector method) returns once the receiver applied
// the batch, and fails while the receiver is gone.
func TestSendSync(t *testing.T) {
	d := t.TempDir()
	src := openRegion(t, d+"/src", 1, 16<<10)
	defer src.Close()
	dst := openRegion(t, d+"/dst", 2, 16<<10)
	defer dst.Close()
	r := startReceiver(t, "127.0.0.1:0", dst)
	c, err := pipe.NewConnector("iotdb-thrift")
	if err != nil {
		t.Fatal(err)
	}
	env := &pipe.Env{Pipe: "sync", Region: src, Logger: quiet(),
		Params: pipe.NewParams(map[string]string{"node-urls": r.addr, "compressor": "zstd", "connect-timeout": "1s"})}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Open(ctx, env); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var batch []*pipe.Event
	for i := 1; i <= 5; i++ {
		b := tsfile.NewTabletBuilder(nil, "root.sg.d1", cols)
		_ = b.AppendRow(int64(i), int64(i), "x", 1.5)
		tb, err := b.Build()
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &pipe.Event{Kind: pipe.KindTablet, CommitID: uint64(i), Origin: 1, OriginIndex: uint64(i),
			Progress: pipe.ProgressIndex{1: uint64(i)}, Tablet: tb})
	}
	batch = append(batch, &pipe.Event{Kind: pipe.KindHeartbeat, CommitID: 6})
	if err := c.Send(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, e := range batch {
		e.Release()
	}
	if got := pipetest.Digest(t, dst).Points; got != 15 {
		t.Fatalf("receiver holds %d points, want 15", got)
	}
	r.stop()
	b := tsfile.NewTabletBuilder(nil, "root.sg.d1", cols)
	_ = b.AppendRow(9, int64(9), "x", 1.5)
	tb, _ := b.Build()
	b.Release()
	e := &pipe.Event{Kind: pipe.KindTablet, CommitID: 7, Origin: 1, OriginIndex: 9, Tablet: tb}
	defer e.Release()
	if err := c.Send(ctx, []*pipe.Event{e}); err == nil {
		t.Fatal("Send succeeded with the receiver gone")
	} else {
		t.Log(err)
	}
}
