package node_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/consensus"
	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/pipe"
)

// A replica added to a region whose leader cannot start its pipe is not added: the error
// reaches the caller, the shape stays as it was on every node (the leader's too, after a
// restart), and asking again adds it with a pipe that ships every origin's writes (the
// ones an older leader took as well), also after the leader restarts. Removing it works.
func TestReplicaAddFailedNotApplied(t *testing.T) {
	c0 := ctx(t)
	c, ms, cl := demoCluster(t)
	dev := deviceIn(0, 2)
	var acked int64
	write := func(via uint32, from, to int) {
		t.Helper()
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "%s v=%di %d\n", dev, i, 1000+i)
		}
		res, err := cl[via].Write(c0, strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("write through node %d: %v", via, err)
		}
		acked += res.Points
	}

	// root.demo/0 on nodes 1 and 2; node 1 takes writes, then node 2 leads and takes more:
	// a replica added now needs node 1's writes from node 2's pipe
	if _, err := cl[1].ChangeReplicas(c0, "root.demo/0", 0, 3); err != nil {
		t.Fatalf("remove node 3: %v", err)
	}
	write(1, 0, 100)
	if _, err := cl[1].MoveLeader(c0, "root.demo/0", 2, 20*time.Second); err != nil {
		t.Fatalf("move to node 2: %v", err)
	}
	write(2, 100, 150)
	before := regionOf(t, cl[2], "root.demo/0")
	if before.Leader != 2 || !slices.Equal(before.Replicas, []uint32{2, 1}) {
		t.Fatalf("root.demo/0 before the add: %+v", before)
	}

	// the pipe to node 3 cannot be started once
	node.SetAddFollowerHook(func(id uint32) error {
		node.SetAddFollowerHook(nil)
		return errors.New("injected: no pipe to the new replica")
	})
	t.Cleanup(func() { node.SetAddFollowerHook(nil) })
	if _, err := cl[2].ChangeReplicas(c0, "root.demo/0", 3, 0); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Errorf("the add that failed: %v, want the injected error", err)
	}
	for id := range ms {
		if r := regionOf(t, cl[id], "root.demo/0"); r.Term != before.Term || !slices.Equal(r.Replicas, before.Replicas) {
			t.Errorf("node %d after the add that failed: root.demo/0 is %+v, want %+v", id, r, before)
		}
	}
	// the leader restarts: the add was not made
	ms[2].close()
	ms[2].open()
	if r := regionOf(t, cl[2], "root.demo/0"); !slices.Equal(r.Replicas, before.Replicas) {
		t.Errorf("node 2 after its restart: root.demo/0 is %+v, want %+v", r, before)
	}

	// asked again, it is made
	ch, err := cl[2].ChangeReplicas(c0, "root.demo/0", 3, 0)
	if err != nil || !slices.Equal(ch.After.Replicas, []uint32{2, 1, 3}) || ch.After.Term != before.Term+1 || len(ch.Missed) != 0 {
		t.Errorf("the add asked again: %+v %v", ch, err)
	}
	for id := range ms {
		if r := regionOf(t, cl[id], "root.demo/0"); !slices.Equal(r.Replicas, []uint32{2, 1, 3}) {
			t.Errorf("node %d after the add: root.demo/0 is %+v", id, r)
		}
	}
	waitReplicasEqual(t, c, regionOf(t, cl[2], "root.demo/0"), acked)

	// the leader restarts with node 3 among its followers: its pipe still ships everything
	ms[2].close()
	ms[2].open()
	if !forwards(t, ms[2].dir, 3) {
		t.Errorf("node 2 after its restart: its pipe to node 3 ships node 2's own writes only")
	}
	write(1, 150, 160)
	write(2, 160, 170)
	waitReplicasEqual(t, c, regionOf(t, cl[2], "root.demo/0"), acked)

	// and node 3 can be removed
	if _, err := cl[2].ChangeReplicas(c0, "root.demo/0", 0, 3); err != nil {
		t.Fatalf("remove node 3: %v", err)
	}
	sets, _ := cl[2].ReplicaSets(c0)
	for _, s := range sets {
		if s.Region == "root.demo/0" && !slices.Equal(s.FollowerNodes, []uint32{1}) {
			t.Errorf("node 2's followers of root.demo/0 after the removal: %v", s.FollowerNodes)
		}
	}
}

// forwards reports whether the replication pipe of root.demo/0 (iotv2) to node id, in the
// data directory dir of its leader, ships every origin's writes (a replica added later's).
func forwards(t *testing.T, dir string, id uint32) bool {
	t.Helper()
	st, err := pipe.NewStore(vfs.Default, filepath.Join(dir, "replication", "root.demo", "0"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := st.LoadSpec(consensus.PipeName(consensus.IoTV2, node.FollowerID(id)))
	if err != nil {
		t.Fatal(err)
	}
	return spec.ParamsOf(pipe.RoleSource, 0).Bool("forwarding")
}
