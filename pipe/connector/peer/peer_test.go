package peer_test

import (
	"encoding/hex"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/zeebo/xxh3"

	"github.com/weir-dev/weir/engine"
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
					return caughtUp(m, "rep") && patternDigest(t, src, "root.sg.*.a") == digest(t, dst)
				})
			} else {
				waitEqual(t, m, "rep", src, dst)
			}
			st := r.srv.Stats()
			t.Logf("receiver: %+v", st)
		})
	}
}
