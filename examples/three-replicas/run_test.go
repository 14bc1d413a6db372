// Package threereplicas checks the three-replica example: its cluster file parses to the
// placement its README describes, and run.sh (three node processes, a follower and a
// leader killed with SIGKILL and restarted, a user pipe, a leadership move) ends with every
// region's replicas equal.
package threereplicas

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/examples/exampletest"
)

func TestClusterFile(t *testing.T) {
	c, err := cluster.Load("cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, ok := c.Database("root.demo")
	if !ok || d.Protocol != "iotv2" || d.Replication != 3 || d.Regions != 2 || len(c.Nodes) != 3 {
		t.Fatalf("cluster: %+v", c)
	}
	pl, _ := c.Placement("root.demo")
	if !reflect.DeepEqual(pl[0].Replicas, []uint32{1, 2, 3}) || !reflect.DeepEqual(pl[1].Replicas, []uint32{2, 3, 1}) {
		t.Fatalf("placement: %+v (the README and cluster.yaml say otherwise)", pl)
	}
}

func TestRunScript(t *testing.T) {
	// free ports, never the defaults (7170/7171, 7180/7181, 7190/7191)
	ports := []string{"HTTP1", "FLIGHT1", "HTTP2", "FLIGHT2", "HTTP3", "FLIGHT3"}
	out := exampletest.RunScript(t, "run.sh", []string{"ROWS=100"}, ports, "n*.log", 5*time.Minute)
	if strings.Count(out, "every region's replicas are equal") != 3 || !strings.Contains(out, "is refused while its leader is down") ||
		!strings.Contains(out, "copy  RUNNING  root.demo/0  2") || !strings.Contains(out, "while the followers drained") {
		t.Fatalf("run.sh:\n%s", out)
	}
}
