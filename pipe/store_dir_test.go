package pipe

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/weir-dev/weir/engine/vfs"
)

// A pipe's directory is new when its spec is first saved: the store's root is synced
// after the directory is made, else a crash may lose the whole pipe (its directory entry)
// although Create returned.
func TestStoreSyncsRootForNewPipeDir(t *testing.T) {
	root := t.TempDir()
	fs := vfs.NewFaulty(vfs.Default)
	var mu sync.Mutex
	var ops []string
	fs.SetHook(func(op vfs.Op, name string) error {
		if op == vfs.OpMkdirAll || op == vfs.OpSyncDir || op == vfs.OpRename {
			mu.Lock()
			ops = append(ops, op.String()+" "+name)
			mu.Unlock()
		}
		return nil
	})
	s, err := NewStore(fs, root)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ops = nil
	mu.Unlock()
	if err := s.SaveSpec(&Spec{Name: "p1", Sink: PluginSpec{Plugin: "y"}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	made, synced := -1, -1
	for i, op := range ops {
		switch op {
		case "mkdirall " + filepath.Join(root, "p1"):
			made = i
		case "syncdir " + root:
			synced = i
		}
	}
	if made < 0 || synced < made {
		t.Fatalf("the root was not synced after the pipe's directory was made: %q", ops)
	}
}
