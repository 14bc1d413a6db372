package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/weir-dev/weir/cluster"
)

// TestSaveRegionsKeepsTheLastChange: two regions changed at once each save the shapes; the
// file then holds both changes (an older copy never lands last).
func TestSaveRegionsKeepsTheLastChange(t *testing.T) {
	n := &Node{dir: t.TempDir(), cl: &clusterState{regions: map[string]cluster.Region{}}}
	names := []string{"root.a/0", "root.a/1"}
	for term := uint64(1); term <= 300; term++ {
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.cl.mu.Lock()
				n.cl.regions[name] = cluster.Region{Database: "root.a", Name: name, Replicas: []uint32{1}, Term: term}
				n.cl.mu.Unlock()
				if err := n.saveRegions(); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		b, err := os.ReadFile(filepath.Join(n.dir, regionStateFile))
		if err != nil {
			t.Fatal(err)
		}
		var saved []cluster.Region
		if err := json.Unmarshal(b, &saved); err != nil {
			t.Fatal(err)
		}
		if len(saved) != 2 || saved[0].Term != term || saved[1].Term != term {
			t.Fatalf("after both changes to term %d the file holds %+v", term, saved)
		}
	}
}
