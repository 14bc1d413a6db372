package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-dev/weir/cli"
	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/node/client"
)

// pipectl cluster up starts three node processes and prints their endpoints; a write
// through any node reaches every replica; cluster status shows each region's leader and
// followers; pipectl region leader moves a region's leadership; SIGTERM stops every node
// cleanly.
func TestClusterUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node processes")
	}
	defer http.DefaultClient.CloseIdleConnections()
	ctx := ctxFor(t)
	dir := t.TempDir()
	cmd := pipectl("cluster", "up", "--nodes", "3", "--consensus", "iotv2", "--regions", "2", "--dir", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	exited := make(chan struct{})
	var exitErr error
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads any more (the test failed)
			}
		}
		close(lines)
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() { // when the test failed before stopping it: stop it and its nodes
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		}
	})
	var printed []string
	deadline := time.After(90 * time.Second)
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			if !ok {
				<-exited
				t.Fatalf("cluster up exited:\n%s\n%s", strings.Join(printed, "\n"), stderr.String())
			}
			printed = append(printed, l)
			ready = l == "Ctrl-C stops the nodes."
		case <-deadline:
			t.Fatalf("cluster up not ready within 90s:\n%s", strings.Join(printed, "\n"))
		}
	}
	text := strings.Join(printed, "\n")
	for _, want := range []string{"Weir cluster started: 3 nodes in " + dir, "root.demo: iotv2 consensus, 2 regions × 3 replicas",
		"leaders: root.demo/0 → node 1, root.demo/1 → node 2", "node 3: http http://127.0.0.1:"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	cl, err := cluster.Load(filepath.Join(dir, cli.ClusterFile))
	if err != nil {
		t.Fatal(err)
	}
	server := regexp.MustCompile(`write --server (\S+)`).FindStringSubmatch(text)
	if server == nil || server[1] != cl.Nodes[2].URL() {
		t.Fatalf("no write command through node 3 in:\n%s", text)
	}
	var body strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&body, "root.demo.d%d temp=%d.5 %d\n", i%10, i, 1732530000000+int64(i))
	}
	if _, err := client.New(server[1]).Write(ctx, strings.NewReader(body.String())); err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, c: cl, hc: http.DefaultClient}
	d := tc.waitEqual(ctx, 30*time.Second)
	if d.Points != 100 {
		t.Fatalf("replicas hold %d points, want 100", d.Points)
	}

	var so, se bytes.Buffer
	root := cli.NewRoot(&so, &se)
	root.SetArgs([]string{"cluster", "status", "--server", cl.Nodes[0].URL(), "--json"})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("cluster status: %v\n%s", err, se.String())
	}
	var st cli.ClusterStatus
	if err := json.Unmarshal(so.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 3 || len(st.ReplicaSets) != 2 {
		t.Fatalf("status: %d nodes, %d replica sets:\n%s", len(st.Nodes), len(st.ReplicaSets), so.String())
	}
	for _, rs := range st.ReplicaSets {
		if len(rs.Followers) != 2 || rs.Protocol != "iotv2" || rs.LastIndex == 0 {
			t.Errorf("replica set %s: %+v", rs.Region, rs)
		}
	}
	so.Reset()
	root = cli.NewRoot(&so, &se)
	root.SetArgs([]string{"cluster", "status", "--cluster", filepath.Join(dir, cli.ClusterFile)})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("cluster status: %v\n%s", err, se.String())
	}
	for _, want := range []string{"nodes: 1 up", "REGION", "root.demo/1  2"} {
		if !strings.Contains(so.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, so.String())
		}
	}

	// pipectl region leader: root.demo/1 moves from node 2 to node 3; the status shows it
	so.Reset()
	root = cli.NewRoot(&so, &se)
	root.SetArgs([]string{"region", "leader", "root.demo/1", "--node", "3", "--server", cl.Nodes[0].URL()})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("region leader: %v\n%s", err, se.String())
	}
	for _, want := range []string{"before node 2 [2 3 1] 0", "after node 3 [3 2 1] 1"} {
		if !strings.Contains(strings.Join(strings.Fields(so.String()), " "), want) {
			t.Errorf("region leader lacks %q:\n%s", want, so.String())
		}
	}
	so.Reset()
	root = cli.NewRoot(&so, &se)
	root.SetArgs([]string{"cluster", "status", "--cluster", filepath.Join(dir, cli.ClusterFile)})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("cluster status: %v\n%s", err, se.String())
	}
	if !strings.Contains(so.String(), "root.demo/1  3") {
		t.Errorf("status after the move:\n%s", so.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	<-exited
	if exitErr != nil {
		t.Fatalf("cluster up exit: %v\n%s\n%s", exitErr, strings.Join(rest, "\n"), stderr.String())
	}
	if got := strings.Join(rest, "\n"); got != "stopping the nodes\nnode 1 stopped\nnode 2 stopped\nnode 3 stopped" {
		t.Errorf("after SIGTERM:\n%s", got)
	}
	t.Logf("verdict cluster up: PASS — 3 node processes, a write through node 3 on every replica (%s), status of 2 replica sets, root.demo/1 moved to node 3 with pipectl region leader, clean stop", d.Digest)
}
