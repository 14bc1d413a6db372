package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-dev/weir/node/api"
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
