package node_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/node/client"
)

// JSON tablets are checked whole before anything is written, across databases too: a type
// conflict in a later database keeps the tablets of an earlier one out.
func TestJSONTabletsTypeConflictWritesNothing(t *testing.T) {
	c := ctx(t)
	n := startNode(t, node.Options{Regions: 2})
	tab := func(dev, typ string, v any) api.Tablet {
		return api.Tablet{Device: dev, Columns: []api.Column{{Name: "x", Type: typ}}, Times: []int64{1}, Values: [][]any{{v}}}
	}
	if _, err := n.c.WriteTablets(c, []api.Tablet{tab("root.b.d1", "DOUBLE", 1.5)}); err != nil {
		t.Fatal(err)
	}
	res, err := n.c.WriteTablets(c, []api.Tablet{tab("root.a.d1", "INT64", 1), tab("root.b.d1", "INT64", 2)})
	if e, ok := client.AsError(err); !ok || e.Status != http.StatusBadRequest || e.Code != api.CodeTypeConflict {
		t.Fatalf("write with a type conflict in root.b: %+v %v", res, err)
	}
	if res.Points != 0 {
		t.Errorf("answer: %d points written", res.Points)
	}
	if q, err := n.c.Query(c, api.Query{Pattern: "root.a.**"}); err != nil || q.Points != 0 {
		t.Errorf("root.a after the refused write: %+v %v", q, err)
	}
}

// A JSON write body holds one value: a second one (concatenated objects) is refused
// before anything is written, not ignored with the first acknowledged.
func TestJSONTabletsTrailingValueRefused(t *testing.T) {
	c := ctx(t)
	n := startNode(t, node.Options{Regions: 2})
	one := `{"tablets": [{"device": "root.a.d1", "columns": [{"name": "x", "type": "DOUBLE"}], "times": [1], "values": [[1.5]]}]}`
	resp, err := http.Post(n.url+"/v1/write", "application/json", strings.NewReader(one+"\n"+strings.Replace(one, "d1", "d2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("two JSON values: %d, want 400", resp.StatusCode)
	}
	if q, err := n.c.Query(c, api.Query{Pattern: "root.a.**"}); err != nil || q.Points != 0 {
		t.Errorf("root.a after the refused write: %+v %v", q, err)
	}
	http.DefaultClient.CloseIdleConnections()
}
