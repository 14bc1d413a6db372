package consensus

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/tsfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// localSet is a leader and followers in one process; followers can be taken down.
type localSet struct {
	mu        sync.Mutex
	leader    *engine.Region
	followers map[string]*engine.Region
	down      map[string]bool
	set       *ReplicaSet
}

func (l *localSet) resolve(id string) (*engine.Region, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down[id] {
		return nil, fmt.Errorf("replica %s is down", id)
	}
	r := l.followers[id]
	if r == nil {
		return nil, fmt.Errorf("no replica %s", id)
	}
	return r, nil
}

func (l *localSet) setDown(id string, down bool) {
	l.mu.Lock()
	l.down[id] = down
	l.mu.Unlock()
}

func newLocalSet(t *testing.T, proto string, o Options, memsize int64) *localSet {
	p, err := New(proto, o)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lo := engine.Options{Dir: filepath.Join(dir, "n1"), Name: "root.db/0", Origin: 1, Durability: wal.Batch, MemtableSize: memsize, FlushAge: -1}
	p.LeaderOptions(&lo)
	leader, err := engine.Open(lo)
	if err != nil {
		t.Fatal(err)
	}
	l := &localSet{leader: leader, followers: map[string]*engine.Region{}, down: map[string]bool{}}
	var fs []Follower
	if proto != Simple {
		for i, id := range []string{"n2", "n3"} {
			r, err := engine.Open(engine.Options{Dir: filepath.Join(dir, id), Name: "root.db/0", Origin: uint32(i + 2), Durability: wal.Batch, FlushAge: -1})
			if err != nil {
				t.Fatal(err)
			}
			l.followers[id] = r
			fs = append(fs, LocalFollower(id))
		}
	}
	l.set, err = Open(SetOptions{Name: "root.db/0", Protocol: p, Leader: leader, Followers: fs, PipesDir: filepath.Join(dir, "pipes"), Resolve: l.resolve})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.set.Close()
		leader.Close()
		for _, r := range l.followers {
			r.Close()
		}
	})
	return l
}

func load(t *testing.T, s *ReplicaSet, rng *rand.Rand, n int) error {
	cols := []tsfile.Column{{Name: "v", Type: tsfile.Int64}, {Name: "s", Type: tsfile.Text}}
	for i := 0; i < n; i++ {
		if rng.Intn(15) == 0 {
			if _, err := s.Delete(context.Background(), tsfile.MustPattern(fmt.Sprintf("root.db.d%d", rng.Intn(3))), int64(rng.Intn(1000)), int64(rng.Intn(1000))+1000); err != nil {
				return err
			}
			continue
		}
		b := tsfile.NewTabletBuilder(nil, fmt.Sprintf("root.db.d%d", rng.Intn(3)), cols)
		for j := 0; j < 50; j++ {
			_ = b.AppendRow(int64(rng.Intn(3000)), int64(rng.Intn(1e6)), "x")
		}
		if err := writeBuilt(t, s, b); err != nil {
			return err
		}
	}
	return nil
}

// writeBuilt builds b's tablet (a build error fails the test), releases b, and writes the
// tablet through s, returning the write's error.
func writeBuilt(t *testing.T, s *ReplicaSet, b *tsfile.TabletBuilder) error {
	t.Helper()
	tb, err := b.Build()
	b.Release()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Release()
	_, err = s.Write(context.Background(), tb)
	return err
}

func (l *localSet) checkEqual(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.set.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("%v: %+v", err, l.set.Status())
	}
	want, _ := l.leader.Digest()
	for id, r := range l.followers {
		got, _ := r.Digest()
		if got != want {
			t.Fatalf("follower %s digest %v, leader %v", id, got, want)
		}
	}
}

// Every protocol: a load with deletions, a follower down for a while and back; at the end
// every replica equals the leader.
func TestProtocolsConverge(t *testing.T) {
	for _, proto := range Protocols {
		t.Run(proto, func(t *testing.T) {
			l := newLocalSet(t, proto, Options{SealInterval: 50 * time.Millisecond, MaxPendingEvents: 20}, 32<<10)
			rng := rand.New(rand.NewSource(time.Now().UnixNano()))
			if err := load(t, l.set, rng, 100); err != nil {
				t.Fatal(err)
			}
			if proto != Simple {
				l.setDown("n3", true)
			}
			if err := load(t, l.set, rng, 150); err != nil {
				t.Fatal(err)
			}
			l.setDown("n3", false)
			if err := load(t, l.set, rng, 50); err != nil {
				t.Fatal(err)
			}
			l.checkEqual(t)
			st := l.set.Status()
			t.Logf("%s: %+v", proto, st.Followers)
		})
	}
}

// iot with a down follower reaches its backlog limit and rejects writes naming the follower;
// iotv2 under the same fault keeps accepting writes and holds no WAL for it.
func TestIoTBlocksIoTV2DoesNot(t *testing.T) {
	o := Options{BacklogLimit: 64 << 10, BacklogTimeout: 200 * time.Millisecond, MaxPendingEvents: 20}
	l := newLocalSet(t, IoT, o, 16<<10)
	l.setDown("n2", true)
	rng := rand.New(rand.NewSource(1))
	err := load(t, l.set, rng, 2000)
	if !errors.Is(err, ErrBacklog) {
		t.Fatalf("iot: want a backlog rejection, got %v", err)
	}
	if want := "follower n2"; !contains(err.Error(), want) {
		t.Fatalf("iot error does not name the follower: %v", err)
	}
	l.setDown("n2", false)
	l.checkEqual(t)

	v2 := newLocalSet(t, IoTV2, o, 16<<10)
	v2.setDown("n2", true)
	if err := load(t, v2.set, rng, 600); err != nil {
		t.Fatalf("iotv2 rejected a write: %v", err)
	}
	var n2 FollowerStatus
	for _, f := range v2.set.Status().Followers {
		if f.ID == "n2" {
			n2 = f
		}
	}
	if n2.Carrier != "tsfile" || n2.PinnedWALBytes > o.BacklogLimit {
		t.Fatalf("iotv2 with a down follower: %+v", n2)
	}
	v2.setDown("n2", false)
	v2.checkEqual(t)
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestPipeFollower(t *testing.T) {
	for _, c := range []struct {
		name, want string
		ok         bool
	}{
		{PipeName(IoTV2, "node-2"), "node-2", true},
		{PipeName(Fast, "r-to-x"), "r-to-x", true},
		{"replicate-iot-to-", "", false},
		{"replicate-iot", "", false},
		{"to2", "", false},
	} {
		if got, ok := PipeFollower(c.name); got != c.want || ok != c.ok {
			t.Errorf("PipeFollower(%q) = %q, %v; want %q, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
