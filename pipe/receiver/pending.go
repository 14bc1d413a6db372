package receiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
)

// A file travels with the deletions of its epoch. A receiver of an older version applied
// them before it loaded the file, as deletions of their own; that advanced the region's
// progress to the deletions' indexes, and when the epoch ended with deletions, to the
// file's own progress: were the receiver to stop between the deletions and the load, the
// file would look covered afterwards and never be loaded. So it recorded the load as
// pending first (a small file beside the staged ones, with the region's progress until
// then).
//
// The receiver now hands the deletions to the region with the file (AdoptFileWith: one
// manifest update records both), so it records no pending load; it still honours a record
// an older version left: while a load is pending, the progress the session goes by — to
// skip events, and the one the welcome reports — is that recorded one for the file's
// origins, advanced only by what the session applies: every event after it is applied
// again, in order, which gives the sender's state whatever was applied before the
// interruption (re-applying an ordered suffix of writes and deletions is idempotent). The
// record goes once the file is loaded, or once the session has applied everything up to
// the file's progress by another route (tablets).
const pendingSuffix = ".loading"

// pendingLoad is a file whose deletions may have been applied and whose load may not.
type pendingLoad struct {
	FileID   string            `json:"file_id"`
	Progress map[uint32]uint64 `json:"progress"` // the file's
	Applied  map[uint32]uint64 `json:"applied"`  // what is applied in order, for the file's origins
	path     string
}

// loadPending reads the pending load of dir, if any, and drops it when the region holds
// the file after all (it stopped after the load, before it removed the record).
func (ss *session) loadPending() error {
	ents, err := os.ReadDir(ss.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pending loads: %w", err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), pendingSuffix) {
			continue
		}
		path := filepath.Join(ss.dir, e.Name())
		b, err := os.ReadFile(path)
		var p pendingLoad
		if err == nil {
			err = json.Unmarshal(b, &p)
		}
		if err != nil || ss.pending != nil || ss.loaded(p.Progress) {
			_ = os.Remove(path) // unreadable (never synced), a second one, or done
			continue
		}
		p.path = path
		ss.pending = &p
		ss.log.Info("a file load was interrupted; it is expected again", "file", p.FileID)
	}
	return nil
}

// loaded reports whether the region holds a received file of exactly this progress.
func (ss *session) loaded(progress map[uint32]uint64) bool {
	for _, f := range ss.region.Files() {
		if f.MinIndex == 0 && f.MaxIndex == 0 && maps.Equal(f.Progress, progress) {
			return true
		}
	}
	return false
}

// progress is the progress the session goes by: the region's, except for the origins of a
// pending load, which are at what is applied in order.
func (ss *session) progress() map[uint32]uint64 {
	p := ss.region.Progress()
	if ss.pending != nil {
		for o := range ss.pending.Progress {
			if a := ss.pending.Applied[o]; p[o] > a {
				p[o] = a
			}
		}
	}
	return p
}

// applied notes that the session applied progress in order (an event, or a file other than
// the pending one), and ends the pending load once that reaches the file's progress.
func (ss *session) applied(progress map[uint32]uint64) {
	p := ss.pending
	if p == nil {
		return
	}
	done := true
	for o, v := range p.Progress {
		if progress[o] > p.Applied[o] {
			p.Applied[o] = progress[o]
		}
		if p.Applied[o] < v {
			done = false
		}
	}
	if done {
		ss.dropPending()
	}
}

// dropPending forgets the pending load.
func (ss *session) dropPending() {
	if ss.pending != nil {
		_ = os.Remove(ss.pending.path)
		ss.pending = nil
	}
}
