package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/tsfile"
)

// ErrCompacted means a subscriber asked for entries whose WAL segments were already removed
// (flushed and unpinned): the data is only in sealed files now.
var ErrCompacted = errors.New("wal entries already removed; read the sealed files instead")

// Subscription delivers committed entries in index order, from memory when recent and from
// WAL segments on disk when behind.
type Subscription struct {
	r    *Region
	next uint64
	rd   *wal.Reader
	pin  *Pin
}

// Subscribe starts a subscription at index from (1 = the beginning). Close it when done.
func (r *Region) Subscribe(from uint64) *Subscription {
	if from == 0 {
		from = 1
	}
	return &Subscription{r: r, next: from}
}

// Next returns the next committed entry, waiting for one until ctx ends. It returns
// ErrCompacted when the entry is no longer in the WAL, and ErrClosed when the region closes.
func (s *Subscription) Next(ctx context.Context) (Entry, error) {
	r := s.r
	for {
		notify := r.wal.Notify() // taken before reading the durable index
		acked := r.wal.DurableIndex()
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return Entry{}, ErrClosed
		}
		closedCh := r.closedCh
		if s.next <= acked {
			win := r.recent[r.recentHead:]
			if len(win) > 0 && s.next >= win[0].Index && s.next <= win[len(win)-1].Index {
				e := win[s.next-win[0].Index]
				if e.Tablet != nil {
					e.Tablet.Retain()
				}
				r.mu.Unlock()
				s.closeReader()
				s.next++
				return e, nil
			}
			r.mu.Unlock()
			e, err := s.fromDisk()
			if err == nil {
				s.next++
				return e, nil
			}
			if !errors.Is(err, io.EOF) {
				return Entry{}, err
			}
			continue
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return Entry{}, ctx.Err()
		case <-notify:
		case <-closedCh:
		}
	}
}

// Position returns the index the next call to Next will deliver.
func (s *Subscription) Position() uint64 { return s.next }

func (s *Subscription) fromDisk() (Entry, error) {
	if s.rd == nil {
		s.pin = s.r.PinWAL(s.next)
		segs := s.r.wal.Segments()
		if len(segs) == 0 || segs[0].FirstIndex > s.next {
			s.closeReader()
			return Entry{}, fmt.Errorf("subscribe from %d: %w", s.next, ErrCompacted)
		}
		s.rd = s.r.wal.NewReader(s.next)
	}
	for {
		we, err := s.rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Entry{}, err
			}
			s.closeReader()
			if errors.Is(err, wal.ErrSegmentRemoved) {
				return Entry{}, fmt.Errorf("read wal at %d: %w", s.next, ErrCompacted)
			}
			if errors.Is(err, wal.ErrClosed) {
				return Entry{}, ErrClosed
			}
			return Entry{}, fmt.Errorf("read wal at %d: %w", s.next, err)
		}
		if we.Index < s.next {
			continue
		}
		if we.Index != s.next {
			s.closeReader()
			return Entry{}, fmt.Errorf("read wal: want index %d, found %d: %w", s.next, we.Index, ErrCompacted)
		}
		s.pin.Advance(s.next)
		return decodeEntry(s.r, we)
	}
}

func decodeEntry(r *Region, we wal.Entry) (Entry, error) {
	if len(we.Payload) < 8 {
		return Entry{}, fmt.Errorf("wal entry %d: short payload", we.Index)
	}
	e := Entry{Index: we.Index, Origin: we.Origin, OriginIndex: we.OriginIndex, Kind: we.Kind, Epoch: binary.LittleEndian.Uint64(we.Payload)}
	switch we.Kind {
	case KindTablet:
		t, err := tsfile.DecodeTablet(r.mem, we.Payload[8:])
		if err != nil {
			return Entry{}, fmt.Errorf("wal entry %d: %w", we.Index, err)
		}
		e.Tablet = t
	case KindDelete:
		var d Deletion
		if err := json.Unmarshal(we.Payload[8:], &d); err != nil {
			return Entry{}, fmt.Errorf("wal entry %d: %w", we.Index, err)
		}
		e.Deletion = &d
	default:
		return Entry{}, fmt.Errorf("wal entry %d: unknown kind %d", we.Index, we.Kind)
	}
	return e, nil
}

func (s *Subscription) closeReader() {
	if s.rd != nil {
		s.rd.Close()
		s.rd = nil
	}
	if s.pin != nil {
		s.pin.Release()
		s.pin = nil
	}
}

// Close ends the subscription.
func (s *Subscription) Close() { s.closeReader() }

// Release drops the entry's reference to its tablet (entries from Next hold one).
func (e Entry) Release() {
	if e.Tablet != nil {
		e.Tablet.Release()
	}
}

// Pin keeps WAL segments (from an index on) or a TsFile from being deleted.
type Pin struct {
	r    *Region
	id   int
	from uint64 // WAL pins
	file string // file pins
}

// PinWAL keeps every WAL segment holding an index >= from.
func (r *Region) PinWAL(from uint64) *Pin {
	if from == 0 {
		from = 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &Pin{r: r, id: r.nextID, from: from}
	r.nextID++
	r.walPins[p.id] = p
	return p
}

// Advance moves a WAL pin forward to from (entries before it may be deleted once flushed).
func (p *Pin) Advance(from uint64) {
	p.r.mu.Lock()
	if from > p.from {
		p.from = from
	}
	p.r.mu.Unlock()
}

// PinFile keeps the named sealed file from deletion.
func (r *Region) PinFile(name string) (*Pin, error) {
	r.mu.Lock()
	h := r.files[name]
	r.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("pin file %s: no such file in region %s", name, r.opts.Name)
	}
	h.mu.Lock()
	h.pins++
	h.mu.Unlock()
	return &Pin{r: r, file: name}, nil
}

// Release drops the pin. Releasing twice is harmless.
func (p *Pin) Release() {
	r := p.r
	if p.file != "" {
		r.mu.Lock()
		h := r.files[p.file]
		r.mu.Unlock()
		if h != nil {
			h.mu.Lock()
			if h.pins > 0 {
				h.pins--
			}
			h.mu.Unlock()
		}
		p.file = ""
		return
	}
	// the segments it held go with the next flush's trim, not now: a pipe that stops with
	// its node (releasing its pin) finds its WAL again when the node restarts
	// (Options.WALRetainAfterOpen)
	r.mu.Lock()
	delete(r.walPins, p.id)
	r.mu.Unlock()
}

// PinnedBytes returns the bytes of WAL segments reached by a pin and of pinned files.
func (r *Region) PinnedBytes() (walBytes, fileBytes int64) {
	r.mu.Lock()
	minFrom := uint64(0)
	for _, p := range r.walPins {
		if minFrom == 0 || p.from < minFrom {
			minFrom = p.from
		}
	}
	for _, h := range r.files {
		h.mu.Lock()
		if h.pins > 0 {
			fileBytes += h.info.Size
		}
		h.mu.Unlock()
	}
	r.mu.Unlock()
	if minFrom > 0 {
		for _, seg := range r.wal.Segments() {
			if seg.LastIndex >= minFrom {
				walBytes += seg.Size
			}
		}
	}
	return walBytes, fileBytes
}
