package node_test

import (
	"fmt"
	"strings"
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
			ms := startMembers(t, c)
			cl := map[uint32]*client.Client{}
			for id := range ms {
				n, _ := c.Node(id)
				cl[id] = client.New(n.URL())
			}
			spec := "name: copy\nsource: {plugin: hybrid, pattern: root.demo.**}\nsink: {plugin: write-back, database: root.copy}\n"
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
			waitCopied := func(what string) {
				waitFor(t, what, 20*time.Second, func() (bool, string) {
					got, _ := copiedRows(t, c)
					missing := 0
					for k := range want {
						if !got[k] {
							missing++
						}
					}
					return missing == 0, fmt.Sprintf("%d of %d rows missing", missing, len(want))
				})
			}
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
