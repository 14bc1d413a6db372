package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-dev/weir/node/client"
)

// A cluster pipe that is stopped while rows are written, then the region's leadership
// moves and the pipe starts again: the new leader ships the rows the old one had not, whatever
// carried them to the new leader (tablets with iotv2, sealed files with fast).
func TestClusterPipeMoveShipsWhatOldLeaderHadNot(t *testing.T) {
	for _, proto := range []string{"iotv2", "fast"} {
		t.Run(proto, func(t *testing.T) {
			c0 := ctx(t)
			_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: "+proto+", replication: 3, regions: 1}\n")
			startMembers(t, c)
			cl := clientsOf(c)
			spec := copySpec
			if _, err := cl[1].CreatePipe(c0, []byte(spec), client.CreateOptions{Start: true}); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			write := func(from, to int) {
				var b strings.Builder
				for i := from; i < to; i++ {
					fmt.Fprintf(&b, "root.demo.d%d v=%di %d\n", i%4, i, 1000+i)
					want[fmt.Sprintf("d%d@%d", i%4, 1000+i)] = true
				}
				if _, err := cl[3].Write(c0, strings.NewReader(b.String())); err != nil {
					t.Fatal(err)
				}
			}
			waitCopied := func(what string) { waitRowsCopied(t, c, want, 20*time.Second, what) }
			write(0, 100)
			waitCopied("rows before the stop copied")
			if _, err := cl[1].StopPipe(c0, "copy"); err != nil {
				t.Fatal(err)
			}
			write(100, 200) // not shipped by node 1's task
			if _, err := cl[1].MoveLeader(c0, "root.demo/0", 2, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := cl[1].StartPipe(c0, "copy"); err != nil {
				t.Fatal(err)
			}
			write(200, 300)
			waitCopied("every row copied after the move")
		})
	}
}

// The new leader takes the region but its answer to the old leader is lost (a proxy in
// front of node 2 forwards the first hand-off and answers 502): the move must not leave
// both nodes leading the region (each taking local writes, the replicas diverging).
func TestMoveWhoseAnswerIsLost(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 2, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 1}\n")
	m1 := &clusterMember{t: t, c: c, id: 1, dir: t.TempDir()}
	m1.open()
	t.Cleanup(m1.close)
	// node 2 listens elsewhere; its address in the cluster file is a proxy
	cn2, _ := c.Node(2)
	back := freeAddrs(t, 1)[0]
	n2 := openNode(t, c, 2, t.TempDir(), back)
	t.Cleanup(func() { n2.Close() })
	var lost atomic.Bool
	startProxy(t, cn2.HTTP, back, func(r *http.Request, forwarded bool) (int, bool) {
		if forwarded && r.Method == http.MethodPut && r.URL.Path == "/v1/cluster/regions" && lost.CompareAndSwap(false, true) {
			return http.StatusBadGateway, true // the answer was lost
		}
		return 0, false
	})

	cn1, _ := c.Node(1)
	cl1, cl2 := client.New(cn1.URL()), client.New("http://"+cn2.HTTP)
	if _, err := cl1.Write(c0, strings.NewReader("root.demo.d1 v=1i 1\n")); err != nil {
		t.Fatal(err)
	}
	_, merr := cl1.MoveLeader(c0, "root.demo/0", 2, 20*time.Second)
	if !lost.Load() {
		t.Fatalf("the hand-off did not go through the proxy: %v", merr)
	}
	r1, r2 := regionOf(t, cl1, "root.demo/0"), regionOf(t, cl2, "root.demo/0")
	if r1.Leader != r2.Leader || r1.Term != r2.Term {
		t.Errorf("after the move (%v), node 1 sees %+v and node 2 sees %+v", merr, r1, r2)
	}
	leading := 0
	for id, url := range map[uint32]string{1: cn1.URL(), 2: "http://" + back} {
		resp, err := http.Post(url+"/v1/write?local=true", "text/plain", strings.NewReader(fmt.Sprintf("root.demo.d1 v=%di 2\n", id)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			leading++
		}
	}
	if leading != 1 {
		t.Errorf("%d nodes take local writes of root.demo/0 after the move (%v)", leading, merr)
	}
}

// Bad region changes through the HTTP API are refused as bad requests naming the field,
// whichever node takes them (the region's leader or another).
func TestRegionChangeBadInput(t *testing.T) {
	_, c := clusterFile(t, 2, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 2}\n")
	startMembers(t, c)
	for _, via := range []uint32{1, 2} {
		cn, _ := c.Node(via)
		for _, tc := range []struct {
			path, body, field string
		}{
			{"leader", `{"region": "root.demo/+0", "node": 2}`, "region"},
			{"leader", `{"region": "root.demo/00", "node": 2}`, "region"},
			{"leader", `{"region": "root.demo/0", "node": 2, "add": 2}`, "add"},
			{"leader", `{"region": "root.demo/0", "node": 2, "remove": 2}`, "remove"},
			{"leader", `{"region": "root.demo/0", "node": 2, "timeout": "soon"}`, "timeout"},
			{"leader", `{"region": "root.demo/0"}`, "node"},
			{"leader", `{"region": "root.demo/0", "node": "2"}`, "node"},
			{"replicas", `{"region": "root.demo/0", "add": 2, "node": 2}`, "node"},
			{"replicas", `{"region": "root.demo/0", "remove": 2, "timeout": "1s"}`, "timeout"},
			{"replicas", `{"region": "root.demo/0"}`, "add"},
		} {
			resp, err := http.Post(cn.URL()+"/v1/cluster/regions/"+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct{ Code, Field, Message string }
			_ = json.Unmarshal(b, &e)
			if resp.StatusCode != http.StatusBadRequest || e.Field != tc.field {
				t.Errorf("via node %d, %s %s: %d %s, want a bad request naming %s", via, tc.path, tc.body, resp.StatusCode, b, tc.field)
			}
		}
	}
}

// The replica sets' view (GET /v1/cluster/replicasets) is read while a region's replicas
// change (run with -race).
func TestReplicaSetsDuringReplicaChanges(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 3, regions: 1}\n")
	startMembers(t, c)
	cn, _ := c.Node(1)
	cl := client.New(cn.URL())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := 0; k < 4; k++ {
			if _, err := cl.ChangeReplicas(c0, "root.demo/0", 0, 3); err != nil {
				t.Error(err)
				return
			}
			if _, err := cl.ChangeReplicas(c0, "root.demo/0", 3, 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 1000; i++ {
		select {
		case <-done:
			return
		default:
		}
		if _, err := cl.ReplicaSets(c0); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// A cluster pipe created stopped (its tasks never ran, so nothing is handed over) and
// started after the region's leadership moved ships every row, whatever carried them to
// the new leader.
func TestClusterPipeStartedAfterMove(t *testing.T) {
	for _, proto := range []string{"iotv2", "fast"} {
		t.Run(proto, func(t *testing.T) {
			c0 := ctx(t)
			_, c := clusterFile(t, 2, "  - {name: root.demo, protocol: "+proto+", replication: 2, regions: 1}\n")
			startMembers(t, c)
			cl := clientsOf(c)
			spec := copySpec
			if _, err := cl[1].CreatePipe(c0, []byte(spec), client.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i := 0; i < 100; i++ {
				fmt.Fprintf(&b, "root.demo.d%d v=%di %d\n", i%4, i, 1000+i)
			}
			if _, err := cl[1].Write(c0, strings.NewReader(b.String())); err != nil {
				t.Fatal(err)
			}
			if _, err := cl[1].MoveLeader(c0, "root.demo/0", 2, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := cl[1].StartPipe(c0, "copy"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "every row copied", 20*time.Second, func() (bool, string) {
				got, _ := copiedRows(t, c)
				return len(got) == 100, fmt.Sprintf("%d of 100 rows copied", len(got))
			})
		})
	}
}

// A node that hangs (takes connections, never answers) and holds no replica of the region
// does not hold the region's writes during a leadership move: it is told the new shape
// after writes resume.
func TestMoveDoesNotPauseWritesForAHungNode(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 1}\n")
	if pl, _ := c.Placement("root.demo"); !slices.Equal(pl[0].Replicas, []uint32{1, 2}) {
		t.Fatalf("placement: %+v", pl)
	}
	cn3, _ := c.Node(3)
	ln, err := net.Listen("tcp", cn3.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range held {
			conn.Close()
		}
	})
	for _, id := range []uint32{1, 2} {
		m := &clusterMember{t: t, c: c, id: id, dir: t.TempDir()}
		m.open()
		t.Cleanup(m.close)
	}
	cn1, _ := c.Node(1)
	cl := client.New(cn1.URL())
	if _, err := cl.Write(c0, strings.NewReader("root.demo.d1 v=1i 1\n")); err != nil {
		t.Fatal(err)
	}
	ch, err := cl.MoveLeader(c0, "root.demo/0", 2, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Missed) != 1 || ch.WritesPausedMS > 2500 {
		t.Errorf("writes paused %.0f ms (missed %v)", ch.WritesPausedMS, ch.Missed)
	}
}

// A node that could not be told of a leadership move (its answer to the tell failed) still
// routes writes to the new leader: the old leader's not_leader makes it learn the shape.
func TestRouterThatMissedTheMove(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 1}\n")
	if pl, _ := c.Placement("root.demo"); !slices.Equal(pl[0].Replicas, []uint32{1, 2}) {
		t.Fatalf("placement: %+v", pl)
	}
	for _, id := range []uint32{1, 2} {
		m := &clusterMember{t: t, c: c, id: id, dir: t.TempDir()}
		m.open()
		t.Cleanup(m.close)
	}
	// node 3 behind a proxy that refuses to be told region shapes
	cn3, _ := c.Node(3)
	back := freeAddrs(t, 1)[0]
	n3 := openNode(t, c, 3, t.TempDir(), back)
	t.Cleanup(func() { n3.Close() })
	startProxy(t, cn3.HTTP, back, func(r *http.Request, forwarded bool) (int, bool) {
		if !forwarded && r.Method == http.MethodPut && r.URL.Path == "/v1/cluster/regions" {
			return http.StatusServiceUnavailable, true // not now
		}
		return 0, false
	})

	cn1, _ := c.Node(1)
	ch, err := client.New(cn1.URL()).MoveLeader(c0, "root.demo/0", 2, 20*time.Second)
	if err != nil || len(ch.Missed) != 1 {
		t.Fatalf("move: %+v %v", ch, err)
	}
	cl3 := client.New("http://" + back)
	for _, body := range []string{"root.demo.d1 v=1i 1\n", "root.demo.d1 v=2i 2\n"} {
		if res, err := cl3.Write(c0, strings.NewReader(body)); err != nil || res.Points != 1 {
			t.Fatalf("write through node 3, which missed the move: %+v %v", res, err)
		}
	}
	if r := regionOf(t, cl3, "root.demo/0"); r.Leader != 2 || r.Term != 1 {
		t.Errorf("node 3 sees %+v", r)
	}
}

// Writes the new leader takes at once after a move reach its followers (and the next move
// finds them caught up): the new leader's replication pipes start from what it held when
// it took the region, not from wherever its region is when their tasks get to open.
func TestWritesRightAfterMoveReachFollowers(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 2, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 1}\n")
	startMembers(t, c)
	cl := map[uint32]*client.Client{}
	for _, id := range []uint32{1, 2} {
		n, _ := c.Node(id)
		cl[id] = client.New(n.URL())
	}
	var (
		wg    sync.WaitGroup
		acked atomic.Int64
		stop  = make(chan struct{})
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := cl[2].Write(c0, strings.NewReader(fmt.Sprintf("root.demo.w%d v=%di %d\n", w, i, 1000+i)))
				if err != nil {
					t.Errorf("writer %d, write %d: %v", w, i, err)
					return
				}
				acked.Add(res.Points)
			}
		}()
	}
	to := uint32(2)
	for k := 0; k < 4; k++ {
		if _, err := cl[1].MoveLeader(c0, "root.demo/0", to, 20*time.Second); err != nil {
			t.Error(err)
			break
		}
		to = 3 - to
	}
	close(stop)
	wg.Wait()
	waitReplicasEqual(t, c, regionOf(t, cl[1], "root.demo/0"), acked.Load())
}

// A replica added after a move of a fast region gets what the old leader took (the new
// leader holds it as files received, with no local WAL range): its pipe ships them too.
func TestReplicaAddedAfterFastMove(t *testing.T) {
	c0 := ctx(t)
	_, c := clusterFile(t, 3, "  - {name: root.demo, protocol: fast, replication: 2, regions: 1}\n")
	if pl, _ := c.Placement("root.demo"); !slices.Equal(pl[0].Replicas, []uint32{1, 2}) {
		t.Fatalf("placement: %+v", pl)
	}
	startMembers(t, c)
	cn1, _ := c.Node(1)
	cl := client.New(cn1.URL())
	var b strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "root.demo.d%d v=%di %d\n", i%4, i, 1000+i)
	}
	if _, err := cl.Write(c0, strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.MoveLeader(c0, "root.demo/0", 2, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ChangeReplicas(c0, "root.demo/0", 3, 0); err != nil {
		t.Fatal(err)
	}
	waitReplicasEqual(t, c, regionOf(t, cl, "root.demo/0"), 100)
}

// startProxy serves at addr, until the test ends, a proxy to the node listening at back.
// fail is asked about each request before it is forwarded (forwarded false: the node never
// sees it) and after (true: the node did the work); when it says so, the proxy answers its
// status instead of the node's.
func startProxy(t *testing.T, addr, back string, fail func(r *http.Request, forwarded bool) (int, bool)) {
	t.Helper()
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, ok := fail(r, false); ok {
			http.Error(w, "refused by the test's proxy", code)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+back+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if code, ok := fail(r, true); ok {
			http.Error(w, "lost by the test's proxy", code)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
	})}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go proxy.Serve(ln)
	t.Cleanup(func() { proxy.Close() })
}
