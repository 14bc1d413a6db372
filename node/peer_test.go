package node_test

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/weir-dev/weir/cli" // every plugin, and the peer receiver registered with node.RegisterFlight
	"github.com/weir-dev/weir/node"
	"github.com/weir-dev/weir/node/client"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Two nodes and a peer pipe in each realtime mode: the receiver node is killed with SIGKILL
// while the sender takes writes, and restarted; the pipe catches up and the digests are equal.
func TestPeerReceiverKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	for _, mode := range []string{"stream", "batch", "hybrid"} {
		t.Run(mode, func(t *testing.T) {
			c := ctx(t)
			flight := freePort(t)
			dir2 := t.TempDir()
			cfg2 := fmt.Sprintf("id: 2\ndata: %s\nhttp: 127.0.0.1:0\nflight: %s\nregions: 2\n", dir2, flight)
			cmd2, c2, _, _ := startChild(t, cfg2)
			sender := startNode(t, node.Options{ID: 1, Regions: 2, MemtableSize: 64 << 10})
			spec := fmt.Sprintf("name: to2\nsource: {pattern: root.demo.**, realtime.mode: %s}\nsink: {plugin: peer, node-urls: %q}\n", mode, flight)
			if _, err := sender.c.CreatePipe(c, []byte(spec), client.CreateOptions{Start: true}); err != nil {
				t.Fatal(err)
			}
			write := func(batch int) {
				t.Helper()
				if _, err := sender.c.Write(c, strings.NewReader(lines(8, 20, int64(batch)*100_000))); err != nil {
					t.Fatal(err)
				}
			}
			for b := 0; b < 5; b++ {
				write(b)
			}
			// the receiver dies mid-load; the sender keeps taking writes
			if err := cmd2.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd2.Wait()
			for b := 5; b < 10; b++ {
				write(b)
			}
			if err := sender.c.Flush(c, ""); err != nil { // batch mode ships sealed files only
				t.Fatal(err)
			}
			waitFor(t, "the pipe shows the receiver down", 30*time.Second, func() (bool, string) {
				p, err := sender.c.Pipe(c, "to2")
				return err == nil && p.LastError != "", fmt.Sprint(p.LastError, err)
			})
			_, c2, _, _ = startChild(t, cfg2)
			for b := 10; b < 15; b++ {
				write(b)
			}
			if err := sender.c.Flush(c, ""); err != nil {
				t.Fatal(err)
			}
			want, err := sender.c.Digest(c, "root.demo")
			if err != nil || want.Points != 15*8*20*4 {
				t.Fatalf("sender digest %+v %v", want, err)
			}
			waitFor(t, "receiver equal to the sender", 60*time.Second, func() (bool, string) {
				got, err := c2.Digest(c, "root.demo")
				p, _ := sender.c.Pipe(c, "to2")
				return err == nil && got.Digest == want.Digest, fmt.Sprintf("receiver %+v %v; pipe lag %d, last error %q", got, err, p.LagEvents, p.LastError)
			})
		})
	}
}

// A peer pipe from outside the cluster into a database the cluster replicates is refused,
// naming why: it would write into the receiving replica alone. The cluster's own
// replication (through the same receiver) goes on.
func TestPeerIntoReplicatedDatabaseRefused(t *testing.T) {
	c := ctx(t)
	_, cl := clusterFile(t, 2, "  - {name: root.demo, protocol: iotv2, replication: 2, regions: 1}\n")
	startMembers(t, cl)
	cn2, _ := cl.Node(2)
	sender := startNode(t, node.Options{ID: 9, Regions: 1})
	spec := fmt.Sprintf("name: in\nsource: {pattern: root.demo.**}\nsink: {plugin: peer, node-urls: %q}\n", cn2.Flight)
	if _, err := sender.c.CreatePipe(c, []byte(spec), client.CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sender.c.Write(c, strings.NewReader("root.demo.d1 v=1i 1\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pipe refused", 30*time.Second, func() (bool, string) {
		p, err := sender.c.Pipe(c, "in")
		return err == nil && strings.Contains(p.LastError, "database root.demo is replicated by the cluster"), fmt.Sprint(p.LastError, err)
	})
	member := client.New(cn2.URL())
	if _, err := member.Write(c, strings.NewReader("root.demo.d2 v=2i 2\n")); err != nil {
		t.Fatal(err)
	}
	waitReplicasEqual(t, cl, regionOf(t, member, "root.demo/0"), 1) // the cluster's write only
}
