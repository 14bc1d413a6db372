package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/weir-dev/weir/engine/vfs"
	"github.com/weir-dev/weir/node/api"
)

// pipeBookFile keeps, on each node of a cluster, the generation of every cluster pipe the
// node holds and the generations dropped.
const pipeBookFile = "cluster-pipes.json"

// maxDropped bounds the dropped generations a node remembers (the oldest are forgotten).
const maxDropped = 1000

// pipeBook tells cluster pipes apart across nodes that were down. A cluster pipe gets a
// generation when it is created (the node the request came to draws it, the others take
// it from the fan-out); a pipe dropped and created again under its name is another
// generation. Dropping a pipe remembers its generation, so that when nodes compare their
// pipes (a node that starts asks the others) a copy whose generation was dropped anywhere
// is dropped, not spread: a node that was down during a drop drops the pipe when it comes
// back, and nobody learns it from that node again.
type pipeBook struct {
	mu      sync.Mutex
	path    string
	Gens    map[string]string `json:"pipes"`   // pipe → generation
	Dropped []api.DroppedPipe `json:"dropped"` // oldest first
}

// newGeneration draws a pipe generation: 16 hex digits.
func newGeneration() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkGeneration validates a generation given by a request.
func checkGeneration(g string) error {
	if len(g) == 0 || len(g) > 32 {
		return fmt.Errorf("generation %q: want 1 to 32 hex digits", g)
	}
	if _, err := hex.DecodeString(g); err != nil || len(g)%2 != 0 {
		return fmt.Errorf("generation %q: want hex digits", g)
	}
	return nil
}

// loadPipeBook reads the book in dir (empty when there is none).
func loadPipeBook(dir string) (*pipeBook, error) {
	b := &pipeBook{path: filepath.Join(dir, pipeBookFile), Gens: map[string]string{}}
	data, err := os.ReadFile(b.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return b, nil
	case err != nil:
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := json.Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("node: %s: %w", b.path, err)
	}
	if b.Gens == nil {
		b.Gens = map[string]string{}
	}
	return b, nil
}

// saveLocked writes the book; b.mu is held.
func (b *pipeBook) saveLocked() error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(vfs.Default, b.path, append(data, '\n')); err != nil {
		return fmt.Errorf("node: save %s: %w", pipeBookFile, err)
	}
	return nil
}

// gen returns the generation of a pipe the node holds ("" for one created before
// generations, or unknown).
func (b *pipeBook) gen(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Gens[name]
}

// set records the generation of a pipe the node holds.
func (b *pipeBook) set(name, gen string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Gens[name] == gen {
		return nil
	}
	b.Gens[name] = gen
	return b.saveLocked()
}

// drop records that the node dropped its pipe name (of the generation it holds).
func (b *pipeBook) drop(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	gen := b.Gens[name]
	delete(b.Gens, name)
	b.addLocked(api.DroppedPipe{Name: name, Generation: gen, At: time.Now().UTC()})
	return b.saveLocked()
}

// addLocked adds a dropped generation unless known; b.mu is held.
func (b *pipeBook) addLocked(d api.DroppedPipe) bool {
	for _, x := range b.Dropped {
		if x.Name == d.Name && x.Generation == d.Generation {
			return false
		}
	}
	b.Dropped = append(b.Dropped, d)
	sort.SliceStable(b.Dropped, func(i, j int) bool { return b.Dropped[i].At.Before(b.Dropped[j].At) })
	if n := len(b.Dropped) - maxDropped; n > 0 {
		b.Dropped = append([]api.DroppedPipe(nil), b.Dropped[n:]...)
	}
	return true
}

// merge adds the dropped generations another node knows.
func (b *pipeBook) merge(ds []api.DroppedPipe) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := false
	for _, d := range ds {
		if d.Name != "" && b.addLocked(d) {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return b.saveLocked()
}

// dropped reports whether generation gen of pipe name was dropped.
func (b *pipeBook) dropped(name, gen string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.Dropped {
		if x.Name == name && x.Generation == gen {
			return true
		}
	}
	return false
}

// snapshot returns the dropped generations.
func (b *pipeBook) snapshot() []api.DroppedPipe {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]api.DroppedPipe{}, b.Dropped...)
}
