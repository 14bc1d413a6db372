package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/node/client"
)

// A routed read narrowed with ?db=&regions= (without local=true) covers those regions
// only, through any node: each device once, and a digest of the regions asked.
func TestClusterReadNarrowedToRegions(t *testing.T) {
	c0 := ctx(t)
	c, _, cs := demoCluster(t)
	devs := []string{deviceIn(0, 2), deviceIn(1, 2)}
	if _, err := cs[1].Write(c0, strings.NewReader(devs[0]+" temp=1.5 1000\n"+devs[1]+" temp=2.5 1000\n")); err != nil {
		t.Fatal(err)
	}
	for _, cn := range c.Nodes {
		for i, dev := range devs {
			var q api.QueryResult
			if code := tryGetJSON(t, fmt.Sprintf("%s/v1/query?pattern=root.demo.**&db=root.demo&regions=%d", cn.URL(), i), &q); code != http.StatusOK {
				t.Errorf("query of region %d through node %d: %d", i, cn.ID, code)
			} else if len(q.Series) != 1 || q.Series[0].Device != dev || q.Rows != 1 {
				t.Errorf("query of region %d through node %d: %+v, want %s only", i, cn.ID, q, dev)
			}
			var d api.Digest
			if code := tryGetJSON(t, fmt.Sprintf("%s/v1/digest?db=root.demo&regions=%d", cn.URL(), i), &d); code != http.StatusOK {
				t.Errorf("digest of region %d through node %d: %d", i, cn.ID, code)
			} else if len(d.Regions) != 1 || d.Regions[0].Region != fmt.Sprintf("root.demo/%d", i) || d.Points != 1 {
				t.Errorf("digest of region %d through node %d: %+v", i, cn.ID, d)
			}
		}
	}
	// a routed deletion narrowed to region 1 (through a node that leads region 0) leaves
	// region 0's device
	n2, _ := c.Node(2)
	if code := nodeRequest(t, c0, c, 2, http.MethodPost, "/v1/delete?db=root.demo&regions=1", `{"pattern": "root.demo.**"}`); code != http.StatusOK {
		t.Fatalf("delete in region 1 through node 2: %d", code)
	}
	var q api.QueryResult
	if code := tryGetJSON(t, n2.URL()+"/v1/query?pattern=root.demo.**", &q); code != http.StatusOK || len(q.Series) != 1 || q.Series[0].Device != devs[0] {
		t.Errorf("after deleting in region 1: %d %+v, want %s only", code, q, devs[0])
	}
	http.DefaultClient.CloseIdleConnections()
}

// tryGetJSON decodes the JSON answer of a GET into out when it is 200, and returns the
// status (0 when the request failed, as when the handler panicked).
func tryGetJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Logf("GET %s: %v", url, err)
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, b)
		}
	} else {
		t.Logf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// A node whose periodic pipe sync finds its copy of a pipe dropped elsewhere, while a
// create of the pipe's next generation reaches it (and replaces that copy), keeps the new
// generation: the sync drops only the generation that was dropped, and never records the
// new one as dropped (which every other node would then take and drop too).
func TestClusterPipeSyncDropRacesCreate(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 3, regions: 2}\n")
	reached := make(chan struct{})
	resume := make(chan struct{})
	var once sync.Once
	node.SetSyncDropHook(func(id uint32, name string) {
		if id != 3 || name != "copy" {
			return
		}
		once.Do(func() {
			close(reached)
			select {
			case <-resume:
			case <-time.After(30 * time.Second):
			}
		})
	})
	t.Cleanup(func() { node.SetSyncDropHook(nil) })
	noSync := func(o *node.Options) { o.PipeSyncInterval = -1 }
	dir3 := t.TempDir()
	var n3 *node.Node
	for _, cn := range c.Nodes {
		opt, dir := noSync, t.TempDir()
		if cn.ID == 3 {
			opt, dir = func(o *node.Options) { o.PipeSyncInterval = 50 * time.Millisecond }, dir3
		}
		n := openNode(t, c, cn.ID, dir, cn.HTTP, opt)
		t.Cleanup(func() { n.Close() })
		if cn.ID == 3 {
			n3 = n
		}
	}
	cl := clientsOf(c)
	if _, err := cl[1].CreatePipe(c0, []byte(copySpec), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// node 3 misses the drop
	for _, id := range []uint32{1, 2} {
		if code := nodeRequest(t, c0, c, id, http.MethodDelete, "/v1/pipes/copy?local=true", ""); code != http.StatusOK {
			t.Fatalf("drop on node %d: %d", id, code)
		}
	}
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		close(resume)
		t.Fatal("node 3's sync did not find the drop it missed")
	}
	// the pipe created again while node 3's sync is about to drop its stale copy
	_, err := cl[2].CreatePipe(c0, []byte(copySpec), client.CreateOptions{})
	close(resume)
	if err != nil {
		t.Fatal(err)
	}
	p2 := copyPipe(t, c0, cl[2])
	// closing node 3 waits for its sync; open it again (without periodic syncs) to look
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	n3 = openNode(t, c, 3, dir3, c.Nodes[2].HTTP, noSync)
	t.Cleanup(func() { n3.Close() })
	var cp api.ClusterPipes
	getJSON(t, c.Nodes[2].URL()+"/v1/cluster/pipes", &cp)
	for _, d := range cp.Dropped {
		if d.Generation == p2.Generation {
			t.Fatalf("node 3 recorded the new generation %s as dropped: %+v", p2.Generation, cp)
		}
	}
	if len(cp.Pipes) != 1 || cp.Pipes[0].Generation != p2.Generation {
		t.Fatalf("node 3 does not hold the new generation %s: %+v", p2.Generation, cp)
	}
	http.DefaultClient.CloseIdleConnections()
}

// Bad lines found by a region's leader (past the first 100 too, as omitted) are counted as
// bad, not as lines written, in the answer of the node that routed the write, as a single
// node counts them.
func TestRoutedWriteCountsOmittedBadLines(t *testing.T) {
	c0 := ctx(t)
	// one replica per region: node 1 never learns the types of region 1, led by node 2
	_, c := clusterFile(t, 2, "  - {name: root.demo, protocol: iotv2, replication: 1, regions: 2}\n")
	startMembers(t, c)
	cl := clientsOf(c)
	dev := deviceIn(1, 2)
	reg, _ := c.Region("root.demo", 1)
	if reg.Leader() != 2 {
		t.Fatalf("region 1 led by node %d, not 2", reg.Leader())
	}
	if code := nodeRequest(t, c0, c, 2, http.MethodPost, "/v1/write?local=true", dev+" x=1.5 1\n"); code != http.StatusOK {
		t.Fatalf("write on node 2: %d", code)
	}
	var body strings.Builder
	for i := 0; i < 150; i++ {
		fmt.Fprintf(&body, "%s x=%di %d\n", dev, i, 10+i) // INT64: a type conflict on node 2
	}
	body.WriteString(deviceIn(0, 2) + " y=1.5 1\n")
	_, err := cl[1].Write(c0, strings.NewReader(body.String()))
	e, ok := client.AsError(err)
	if !ok || e.Code != api.CodeBadLines || e.Write == nil {
		t.Fatalf("write: %v", err)
	}
	if w := e.Write; w.Points != 1 || w.Lines != 1 || len(w.LineErrors) != 100 || w.Omitted != 50 {
		t.Errorf("write: %d points, %d lines, %d line errors, %d omitted; want 1, 1, 100, 50 (%s)", w.Points, w.Lines, len(w.LineErrors), w.Omitted, e.Message)
	}
	if !strings.HasPrefix(e.Message, "150 bad lines (the other 1 lines were written)") {
		t.Errorf("message: %s", e.Message)
	}
	http.DefaultClient.CloseIdleConnections()
}
