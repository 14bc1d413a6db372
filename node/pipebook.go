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
	"github.com/weir-dev/weir/pipe"
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
// back, and nobody learns it from that node again. Likewise the last start or stop asked
// of a pipe is kept with the time the node it was asked of stamped on it, so that a node
// that missed it does the same when it starts.
type pipeBook struct {
	mu      sync.Mutex
	path    string
	Pipes   map[string]bookPipe `json:"pipes"`
	Dropped []api.DroppedPipe   `json:"dropped"` // oldest first
}

// bookPipe is what a node keeps of a cluster pipe it holds.
type bookPipe struct {
	Gen string `json:"generation,omitempty"` // "" for a pipe created before generations
	// Intent is the state last asked of the pipe (RUNNING or STOPPED; "" none yet) and
	// IntentAt when (stamped by the node the request came to).
	Intent   pipe.PipeState `json:"intent,omitempty"`
	IntentAt time.Time      `json:"intent_at,omitempty"`
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
	b := &pipeBook{path: filepath.Join(dir, pipeBookFile), Pipes: map[string]bookPipe{}}
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
	if b.Pipes == nil {
		b.Pipes = map[string]bookPipe{}
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
	return b.Pipes[name].Gen
}

// get returns what the node keeps of a pipe.
func (b *pipeBook) get(name string) bookPipe {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Pipes[name]
}

// set records the generation of a pipe the node holds.
func (b *pipeBook) set(name, gen string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.Pipes[name]
	if p.Gen == gen {
		return nil
	}
	b.Pipes[name] = bookPipe{Gen: gen}
	return b.saveLocked()
}

// intend records the state asked of a pipe at a time, unless a later one is recorded; it
// reports whether it recorded it.
func (b *pipeBook) intend(name string, state pipe.PipeState, at time.Time) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.Pipes[name]
	if !at.After(p.IntentAt) {
		return false, nil
	}
	p.Intent, p.IntentAt = state, at.UTC()
	b.Pipes[name] = p
	return true, b.saveLocked()
}

// drop records that the node dropped its pipe name (of the generation it holds).
func (b *pipeBook) drop(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	gen := b.Pipes[name].Gen
	delete(b.Pipes, name)
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
