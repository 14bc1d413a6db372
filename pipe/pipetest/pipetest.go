// Package pipetest holds helpers for testing pipes: opening regions and a pipe manager
// over them, creating pipes, writing tablets, waiting for a pipe to catch up, comparing
// regions by digest, and killing a child test process that runs a pipe.
//
// Only tests import it; it must not import a package whose tests use it.
package pipetest

import (
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// Quiet returns a logger that discards everything.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// OpenRegion opens the region o describes, failing the test on an error; with no Logger
// in o the region logs nowhere.
func OpenRegion(t testing.TB, o engine.Options) *engine.Region {
	t.Helper()
	if o.Logger == nil {
		o.Logger = Quiet()
	}
	r, err := engine.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ManagerOptions are the options of a pipe manager in dir whose pipes read the regions
// src: it logs nowhere, retries fast (1 ms doubling to 20 ms) and saves progress every
// 5 ms. A test sets what else it needs (Databases, say) before pipe.NewManager.
func ManagerOptions(dir string, src ...*engine.Region) pipe.ManagerOptions {
	return pipe.ManagerOptions{
		Dir:           dir,
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return slices.Clone(src), nil },
		Logger:        Quiet(),
		Backoff:       pipe.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond},
		SaveInterval:  5 * time.Millisecond,
	}
}

// OpenCopy opens, under dir, a source region "src" (origin 1, memtables of memtableSize
// bytes), a destination region "dst" (origin 2), both with durability d and no flush by
// age, and a pipe manager in "pipes" whose pipes read src and whose write-back sinks
// write into dst (every database is dst).
func OpenCopy(t testing.TB, dir string, d wal.Durability, memtableSize int64) (src, dst *engine.Region, m *pipe.Manager) {
	t.Helper()
	src = OpenRegion(t, engine.Options{Dir: filepath.Join(dir, "src"), Name: "src", Origin: 1, Durability: d, FlushAge: -1, MemtableSize: memtableSize})
	dst = OpenRegion(t, engine.Options{Dir: filepath.Join(dir, "dst"), Name: "dst", Origin: 2, Durability: d, FlushAge: -1})
	o := ManagerOptions(filepath.Join(dir, "pipes"), src)
	o.Databases = func(string) (*engine.Region, error) { return dst, nil }
	m, err := pipe.NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	return src, dst, m
}

// CreatePipe parses spec, creates the pipe in m (ifNotExists as for Manager.Create) and
// starts it, failing the test on an error.
func CreatePipe(t testing.TB, m *pipe.Manager, spec string, ifNotExists bool) {
	t.Helper()
	s, err := pipe.ParseSpec([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(s, ifNotExists); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(s.Name); err != nil {
		t.Fatal(err)
	}
}

// WriteTablet builds the tablet of b, releases b, writes the tablet to r and releases it,
// failing the test on an error.
func WriteTablet(t testing.TB, r *engine.Region, b *tsfile.TabletBuilder) {
	t.Helper()
	tb, err := b.Build()
	b.Release()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Release()
	if _, err := r.Write(tb); err != nil {
		t.Fatal(err)
	}
}

// Digest returns the digest of r, failing the test on an error.
func Digest(t testing.TB, r *engine.Region) engine.Digest {
	t.Helper()
	d, err := r.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// CaughtUp reports whether a pipe's status shows no events lagging and none in flight.
func CaughtUp(st pipe.Status) bool { return st.LagEvents == 0 && st.InFlightEvents == 0 }

// WaitStatus polls the status of the named pipe of m every 5 ms, for at most timeout,
// until done holds for it; it returns the last status and whether done held. It fails
// the test if the status cannot be read.
func WaitStatus(t testing.TB, m *pipe.Manager, name string, timeout time.Duration, done func(pipe.Status) bool) (pipe.Status, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := m.Describe(name)
		if err != nil {
			t.Fatal(err)
		}
		if done(st) {
			return st, true
		}
		if time.Now().After(deadline) {
			return st, false
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// WaitCommitted waits, for at most a minute, until the named pipe of m has committed
// events and caught up (CaughtUp), and returns its status; it fails the test otherwise.
func WaitCommitted(t testing.TB, m *pipe.Manager, name string) pipe.Status {
	t.Helper()
	st, ok := WaitStatus(t, m, name, time.Minute, func(st pipe.Status) bool { return CaughtUp(st) && st.CommittedEvents > 0 })
	if !ok {
		t.Fatalf("pipe %s did not catch up: %+v", name, st)
	}
	return st
}

// WaitEqual waits, for at most a minute, until the named pipe of m has caught up
// (CaughtUp) and regions src and dst have equal digests, and returns the pipe's status;
// it fails the test otherwise.
func WaitEqual(t testing.TB, m *pipe.Manager, name string, src, dst *engine.Region) pipe.Status {
	t.Helper()
	var ds, dd engine.Digest
	st, ok := WaitStatus(t, m, name, time.Minute, func(st pipe.Status) bool {
		if !CaughtUp(st) {
			return false
		}
		ds, dd = Digest(t, src), Digest(t, dst)
		return ds == dd
	})
	if !ok {
		t.Fatalf("pipe %s did not converge: src %v dst %v; status %+v", name, ds, dd, st)
	}
	return st
}
