package wal

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine/vfs"
)

// benchPayload is the size of a typical tablet entry.
const benchPayload = 48 << 10

func benchWAL(b *testing.B, mode Durability) *WAL {
	w, err := Open(Options{Dir: b.TempDir(), Durability: mode, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// benchAppend appends b.N entries from one goroutine, waiting for each.
func benchAppend(b *testing.B, mode Durability) {
	w := benchWAL(b, mode)
	payload := make([]byte, benchPayload)
	b.SetBytes(int64(headerSize + benchPayload))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := w.Append(Entry{Kind: 1, Index: uint64(i + 1), Payload: payload})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil { // Async: count the writes too
		b.Fatal(err)
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// benchAppendParallel appends from 8 goroutines per CPU, each waiting for
// its own entries (what a region with many writers does).
func benchAppendParallel(b *testing.B, mode Durability) {
	w := benchWAL(b, mode)
	b.SetBytes(int64(headerSize + benchPayload))
	b.ReportAllocs()
	b.SetParallelism(8)
	var mu sync.Mutex
	var next uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		payload := make([]byte, benchPayload)
		for pb.Next() {
			mu.Lock()
			next++
			c, err := w.Append(Entry{Kind: 1, Index: next, Payload: payload})
			mu.Unlock()
			if err != nil {
				b.Error(err)
				return
			}
			if err := c.Wait(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := w.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAppendSync(b *testing.B)          { benchAppend(b, Sync) }
func BenchmarkAppendBatch(b *testing.B)         { benchAppend(b, Batch) }
func BenchmarkAppendAsync(b *testing.B)         { benchAppend(b, Async) }
func BenchmarkAppendSyncParallel(b *testing.B)  { benchAppendParallel(b, Sync) }
func BenchmarkAppendBatchParallel(b *testing.B) { benchAppendParallel(b, Batch) }
func BenchmarkAppendAsyncParallel(b *testing.B) { benchAppendParallel(b, Async) }

// benchRaw is the baseline: one write(2) per entry of the same bytes to a
// plain file, fdatasync after every write (every == 0) or every interval.
func benchRaw(b *testing.B, every time.Duration) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	frame := make([]byte, headerSize+benchPayload)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	last := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(frame); err != nil {
			b.Fatal(err)
		}
		if every == 0 || time.Since(last) >= every {
			if err := vfs.SyncData(f); err != nil {
				b.Fatal(err)
			}
			last = time.Now()
		}
	}
	if err := vfs.SyncData(f); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRawFileSync is the baseline for BenchmarkAppendSync.
func BenchmarkRawFileSync(b *testing.B) { benchRaw(b, 0) }

// BenchmarkRawFileBatch is the baseline for BenchmarkAppendBatch (and
// Async): fdatasync every DefaultSyncInterval.
func BenchmarkRawFileBatch(b *testing.B) { benchRaw(b, DefaultSyncInterval) }

// BenchmarkVsRaw alternates, in chunks of 1024 entries (48 MiB), the raw
// baseline and the WAL (one appender waiting for each entry) on the same
// disk, so that both see the same device conditions, and reports both rates
// and their ratio. Each chunk ends with an fdatasync on both sides.
func BenchmarkVsRaw(b *testing.B) {
	for _, mode := range []Durability{Sync, Batch, Async} {
		b.Run(mode.String(), func(b *testing.B) {
			every := DefaultSyncInterval
			if mode == Sync {
				every = 0
			}
			w := benchWAL(b, mode)
			defer w.Close()
			f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			frame := make([]byte, headerSize+benchPayload)
			payload := make([]byte, benchPayload)
			const chunk = 1024
			var tRaw, tWAL time.Duration
			lastSync := time.Now()
			var idx uint64
			b.ResetTimer()
			for done := 0; done < b.N; done += chunk {
				n := min(chunk, b.N-done)
				t0 := time.Now()
				for i := 0; i < n; i++ {
					if _, err := f.Write(frame); err != nil {
						b.Fatal(err)
					}
					if every == 0 || time.Since(lastSync) >= every {
						if err := vfs.SyncData(f); err != nil {
							b.Fatal(err)
						}
						lastSync = time.Now()
					}
				}
				// Each side ends its chunk durable, so that no dirty data of
				// one is flushed on the other's time.
				if err := vfs.SyncData(f); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				for i := 0; i < n; i++ {
					idx++
					c, err := w.Append(Entry{Kind: 1, Index: idx, Payload: payload})
					if err != nil {
						b.Fatal(err)
					}
					if err := c.Wait(); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Sync(); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				tRaw += t1.Sub(t0)
				tWAL += t2.Sub(t1)
			}
			b.StopTimer()
			mb := float64(b.N) * float64(len(frame)) / 1e6
			b.ReportMetric(mb/tRaw.Seconds(), "raw-MB/s")
			b.ReportMetric(mb/tWAL.Seconds(), "wal-MB/s")
			b.ReportMetric(tRaw.Seconds()/tWAL.Seconds(), "wal/raw")
		})
	}
}
