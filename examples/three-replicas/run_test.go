// Package threereplicas checks the three-replica example: its cluster file parses to the
// placement its README describes, and run.sh (three node processes, a follower and a
// leader killed with SIGKILL and restarted, a user pipe, a leadership move) ends with every
// region's replicas equal.
package threereplicas

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/cluster"
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
	if testing.Short() {
		t.Skip("builds pipectl and runs three node processes")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "pipectl")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pipectl")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, "bash", "run.sh")
	cmd.Env = append(os.Environ(), "PIPECTL="+bin, "DIR="+filepath.Join(dir, "run"), "ROWS=100")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		logs, _ := filepath.Glob(filepath.Join(dir, "run", "n*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatalf("run.sh: %v\n%s", err, out.String())
	}
	if strings.Count(out.String(), "every region's replicas are equal") != 3 || !strings.Contains(out.String(), "is refused while its leader is down") ||
		!strings.Contains(out.String(), "copy  RUNNING  root.demo/0  2") || !strings.Contains(out.String(), "while the followers drained") {
		t.Fatalf("run.sh:\n%s", out.String())
	}
}
