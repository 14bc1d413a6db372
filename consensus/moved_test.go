package consensus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// replicas are regions of one region in one process, each with its own origin; sets
// between them are opened by hand, as a node does when leadership moves.
type replicas struct {
	mu  sync.Mutex
	dir string
	r   map[string]*engine.Region
}

func newReplicas(t *testing.T, proto Protocol, ids ...string) *replicas {
	rs := &replicas{dir: t.TempDir(), r: map[string]*engine.Region{}}
	for i, id := range ids {
		rs.add(t, proto, id, uint32(i+1))
	}
	t.Cleanup(func() {
		for _, r := range rs.r {
			r.Close()
		}
	})
	return rs
}

func (rs *replicas) add(t *testing.T, proto Protocol, id string, origin uint32) *engine.Region {
	o := engine.Options{Dir: filepath.Join(rs.dir, id), Name: "root.db/0", Origin: origin, Durability: wal.Batch, MemtableSize: 32 << 10, FlushAge: -1}
	proto.LeaderOptions(&o)
	r, err := engine.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	rs.mu.Lock()
	rs.r[id] = r
	rs.mu.Unlock()
	return r
}

func (rs *replicas) resolve(id string) (*engine.Region, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r := rs.r[id]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("no replica %s", id)
}

// open opens the replica set that leader leads (its pipes' state under its own directory).
func (rs *replicas) open(t *testing.T, proto Protocol, leader string, caughtUp bool, followers ...string) *ReplicaSet {
	var fs []Follower
	for _, id := range followers {
		f := LocalFollower(id)
		f.CaughtUp = caughtUp
		fs = append(fs, f)
	}
	s, err := Open(SetOptions{Name: "root.db/0", Protocol: proto, Leader: rs.r[leader], Followers: fs,
		PipesDir: filepath.Join(rs.dir, "pipes-"+leader), Resolve: rs.resolve})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitCaughtUp(t *testing.T, s *ReplicaSet) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("%v: %+v", err, s.Status())
	}
}

// moveToN2AddN4 waits until n1's replica set a has shipped everything and closes it,
// checks that n2 equals n1, moves the leadership to n2 and adds a new replica n4 there (a
// New follower: shipped every origin's writes); n4 must end equal to n2.
func (rs *replicas) moveToN2AddN4(t *testing.T, proto Protocol, a *ReplicaSet) {
	t.Helper()
	waitCaughtUp(t, a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if rs.digest(t, "n2") != rs.digest(t, "n1") {
		t.Fatal("n2 differs from n1 before the move")
	}
	b := rs.open(t, proto, "n2", true, "n1", "n3")
	defer b.Close()
	rs.add(t, proto, "n4", 4)
	f := LocalFollower("n4")
	f.New = true
	if err := b.AddPeer(f); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, b)
	if got, want := rs.digest(t, "n4"), rs.digest(t, "n2"); got != want {
		t.Fatalf("the new replica n4 %+v differs from its leader n2 %+v (WaitCaughtUp returned): %+v", got, want, b.Status())
	}
}

func (rs *replicas) digest(t *testing.T, id string) engine.Digest {
	t.Helper()
	d, err := rs.r[id].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A replica added to a set whose leader holds files it received (the leadership moved
// to it and it wrote nothing since) is caught up only once it has those files: a move
// that waits for the followers must not go on before.
func TestWaitCaughtUpNewReplicaReceivedFiles(t *testing.T) {
	for _, name := range []string{Fast, IoTV2} {
		t.Run(name, func(t *testing.T) {
			proto, err := New(name, Options{SealInterval: time.Hour, MaxPendingEvents: 1})
			if err != nil {
				t.Fatal(err)
			}
			rs := newReplicas(t, proto, "n1", "n2", "n3")
			a := rs.open(t, proto, "n1", false, "n2", "n3")
			writes(t, a, 60)
			if name == IoTV2 {
				// as a follower that fell behind gets them: n2 receives the leader's files
				if err := a.RemovePeer("n2"); err != nil {
					t.Fatal(err)
				}
				if err := rs.r["n1"].Flush(); err != nil {
					t.Fatal(err)
				}
				f := LocalFollower("n2")
				f.New = true
				if err := a.AddPeer(f); err != nil {
					t.Fatal(err)
				}
			}
			rs.moveToN2AddN4(t, proto, a)
		})
	}
}

// writes writes n tablets of 50 rows (no deletions) through s.
func writes(t *testing.T, s *ReplicaSet, n int) {
	t.Helper()
	cols := []tsfile.Column{{Name: "v", Type: tsfile.Int64}}
	for i := 0; i < n; i++ {
		b := tsfile.NewTabletBuilder(nil, fmt.Sprintf("root.db.d%d", i%3), cols)
		for j := 0; j < 50; j++ {
			_ = b.AppendRow(int64(i*50+j), int64(i*j))
		}
		if err := writeBuilt(t, s, b); err != nil {
			t.Fatal(err)
		}
	}
}

// A replica set opened on a new leader whose followers hold everything (CaughtUp) ships
// from now on, also when a pipe to the follower is already there: one left without
// progress (its creation did not get to save where it starts) would start wherever the
// region is when its task gets to open, after writes the set took meanwhile; one left by
// an earlier term of this leader would ship again from where it stopped then.
func TestCaughtUpPipeStartsNow(t *testing.T) {
	proto, err := New(IoTV2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs := newReplicas(t, proto, "n1", "n2", "n3")
	a := rs.open(t, proto, "n1", false, "n2", "n3")
	writes(t, a, 20)
	waitCaughtUp(t, a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// n2 leads; its pipe to n3 is there, created as a move creates it, but without progress
	dir := filepath.Join(rs.dir, "pipes-n2")
	mgr, err := pipe.NewManager(pipe.ManagerOptions{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{rs.r["n2"]}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	src := proto.Source()
	src.Params["history.enable"] = "false"
	if err := mgr.Create(&pipe.Spec{Name: PipeName(IoTV2, "n3"), Source: src, Sink: LocalFollower("n3").Sink}, false); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Close(); err != nil {
		t.Fatal(err)
	}
	b := rs.open(t, proto, "n2", true, "n1", "n3")
	check := func(s *ReplicaSet, leader string) {
		t.Helper()
		last := rs.r[leader].LastIndex()
		for _, id := range s.ids {
			ck, ok, err := s.mgr.Store().LoadProgress(PipeName(IoTV2, id), "root.db/0")
			if err != nil || !ok || ck.MaxIndex != last {
				t.Fatalf("leader %s: the pipe to %s starts at %d (saved %v, %v), not at the leader's last index %d", leader, id, ck.MaxIndex, ok, err, last)
			}
		}
	}
	check(b, "n2")
	writes(t, b, 20)
	waitCaughtUp(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// back to n1: its pipes of the first term are there, at what n1 held then
	c := rs.open(t, proto, "n1", true, "n2", "n3")
	defer c.Close()
	check(c, "n1")
	writes(t, c, 20)
	waitCaughtUp(t, c)
	for _, id := range []string{"n2", "n3"} {
		if rs.digest(t, id) != rs.digest(t, "n1") {
			t.Fatalf("%s differs from the leader", id)
		}
	}
}
