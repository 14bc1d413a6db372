package receiver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/pipe/peerwire"
	"github.com/weir-dev/weir/tsfile"
)

// BadInputError is an error caused by what the sender sent (garbage, a wrong CRC, a
// protocol violation): the stream is rejected with codes.InvalidArgument.
type BadInputError struct{ Err error }

// Error returns the cause's text.
func (e *BadInputError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *BadInputError) Unwrap() error { return e.Err }

func badInput(format string, a ...any) error { return &BadInputError{Err: fmt.Errorf(format, a...)} }

// statusErr maps an error to a gRPC status whose message is the error's text.
func statusErr(err error) error {
	if err == nil {
		return nil
	}
	var bad *BadInputError
	switch {
	case errors.As(err, &bad):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errClosed), errors.Is(err, engine.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "superseded by a newer stream of the same sender, or the receiver is stopping")
	}
	return status.Error(codes.Internal, err.Error())
}

// session applies one stream's events to its region.
type session struct {
	s       *Server
	log     *slog.Logger
	region  *engine.Region
	dir     string // staging directory of this sender's files
	schemas *schemaSet
	file    *incoming
	pending *pendingLoad // a file load that may have been interrupted (see pending.go)
	lastSeq uint64
	through atomic.Uint64 // highest seq applied
	// lastWrite is the durability of the last tablet taken (nil: none since the last
	// waitDurable); the WAL completes writes in order, so it stands for all before it
	lastWrite engine.Durable
}

// waitDurable waits until every tablet the session took is durable. A file must not be
// loaded before: its progress may cover tablets that a crash would otherwise lose, and
// after a restart nothing would send them again.
func (ss *session) waitDurable() error {
	if ss.lastWrite == nil {
		return nil
	}
	err := ss.lastWrite.Wait()
	ss.lastWrite = nil
	return err
}

func (s *Server) exchange(stream flight.FlightService_DoExchangeServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	// tracked from the start, so that Close ends a stream still waiting for its hello
	sl := &sessionSlot{cancel: cancel, done: make(chan struct{})}
	if !s.track(sl) {
		close(sl.done)
		return errClosed
	}
	var key string // the slot's key once acquired
	defer func() { s.release(key, sl) }()

	// A reader goroutine lets a newer stream of the same sender (or Close) cancel this one
	// while it waits for a message; it ends when the handler returns (the stream closes).
	in := make(chan *flight.FlightData, 4)
	var recvErr error
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(in)
		for {
			fd, err := stream.Recv()
			if err != nil {
				recvErr = err
				return
			}
			select {
			case in <- fd:
			case <-ctx.Done():
				return
			}
		}
	}()
	next := func(timeout <-chan time.Time) (*flight.FlightData, error) {
		select {
		case fd, ok := <-in:
			if !ok {
				if recvErr == nil {
					return nil, ctx.Err()
				}
				return nil, recvErr
			}
			s.stats.bytes.Add(int64(len(fd.AppMetadata) + len(fd.DataHeader) + len(fd.DataBody)))
			return fd, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			return nil, badInput("no hello within %s", s.o.HelloTimeout)
		}
	}

	timer := time.NewTimer(s.o.HelloTimeout)
	fd, err := next(timer.C)
	timer.Stop()
	if err != nil {
		return err
	}
	hello, err := peerwire.Decode(fd.AppMetadata)
	if err != nil {
		return badInput("first message: %w", err)
	}
	if hello.Type != peerwire.TypeHello {
		return badInput("first message is %s, want hello", hello.Type)
	}
	if hello.Pipe == "" || hello.Region == "" {
		return badInput("hello: pipe %q and region %q must not be empty", hello.Pipe, hello.Region)
	}
	db := hello.Database
	if db == "" {
		db = peerwire.DatabaseOf(hello.Region)
	}
	if s.o.Admit != nil {
		if err := s.o.Admit(db, hello.Pipe, hello.Origin); err != nil {
			return fmt.Errorf("refused: pipe %q into database %q: %w", hello.Pipe, db, err)
		}
	}
	region, err := s.o.Resolve(db, hello.Region)
	if err != nil {
		return fmt.Errorf("resolve database %q region %q: %w", db, hello.Region, err)
	}
	if region == nil {
		return fmt.Errorf("resolve database %q region %q: no region", db, hello.Region)
	}
	k := hello.Pipe + "\x00" + hello.Region + "\x00" + strconv.FormatUint(uint64(hello.Origin), 10)
	if err := s.acquire(ctx, k, sl); err != nil {
		return err
	}
	key = k
	if err := region.Err(); err != nil {
		// a replicated write may be counted in its progress without being durable: no
		// welcome may say that progress
		return fmt.Errorf("region %s failed (%w); its progress cannot be trusted until it is reopened", region.Name(), err)
	}

	h := fnv.New64a()
	h.Write([]byte(key))
	ss := &session{
		s: s, region: region, schemas: newSchemaSet(s.o.MaxMessageBytes),
		dir: filepath.Join(region.Dir(), "incoming", fmt.Sprintf("peer-%016x", h.Sum64())),
		log: s.log.With("pipe", hello.Pipe, "sender_region", hello.Region, "origin", hello.Origin, "sender", hello.Sender, "region", region.Name()),
	}
	defer ss.schemas.release()
	defer ss.closeFile()
	partials, err := listPartials(ss.dir)
	if err != nil {
		return err
	}
	if err := ss.loadPending(); err != nil {
		return err
	}
	welcome := &peerwire.Msg{Type: peerwire.TypeWelcome, Progress: ss.progress(), Partials: partials}
	if err := stream.Send(&flight.FlightData{AppMetadata: welcome.Encode()}); err != nil {
		return fmt.Errorf("send welcome: %w", err)
	}
	ss.log.Debug("peer stream open", "partials", len(partials))

	// Acks go out from their own goroutine, coalesced: the latest applied seq.
	wake := make(chan struct{}, 1)
	finish := make(chan struct{})
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		var sent uint64
		for {
			last := false
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-finish:
				last = true
			}
			if t := ss.through.Load(); t > sent {
				if err := stream.Send(&flight.FlightData{AppMetadata: (&peerwire.Msg{Type: peerwire.TypeAck, Through: t}).Encode()}); err != nil {
					cancel()
					return
				}
				sent = t
			}
			if last {
				return
			}
		}
	}()

	// Tablets are taken by the region at once and become durable in the background (the
	// WAL writes those taken meanwhile in one group commit); this goroutine waits for them
	// in stream order and only then lets the acks cover them.
	durQ := make(chan appliedEvent, maxUndurable)
	durDone := make(chan struct{})
	var durErr error
	go func() {
		defer close(durDone)
		for a := range durQ {
			if a.wait != nil {
				if err := a.wait.Wait(); err != nil { // the region fails with it
					durErr = err
					cancel()
					return
				}
			}
			ss.through.Store(a.seq)
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()

	var loopErr error
	for {
		fd, err := next(nil)
		if err != nil {
			loopErr = err
			break
		}
		applied, wait, err := ss.handle(fd)
		if err != nil {
			loopErr = err
			break
		}
		if applied > 0 {
			select {
			case durQ <- appliedEvent{seq: applied, wait: wait}:
			case <-durDone: // a write failed; durErr says why
			}
		}
	}
	close(durQ)
	<-durDone
	if durErr != nil {
		loopErr = durErr
	}
	close(finish) // the last ack goes out before the stream ends
	<-ackDone
	return loopErr
}

// maxUndurable bounds the events of a stream applied and not yet known durable.
const maxUndurable = 1024

// appliedEvent is an event the session applied: its seq, and what to wait for before an
// ack may cover it (nil: it is durable already).
type appliedEvent struct {
	seq  uint64
	wait engine.Durable
}

// handle applies one message; it returns the seq of the event it completed (0: none yet)
// and, for a tablet, the wait for its durability.
func (ss *session) handle(fd *flight.FlightData) (applied uint64, wait engine.Durable, err error) {
	m, err := peerwire.Decode(fd.AppMetadata)
	if err != nil {
		return 0, nil, &BadInputError{Err: err}
	}
	defer func() {
		if r := recover(); r != nil { // garbage that got past the checks must not crash the node
			err = badInput("%s seq %d: %v", m.Type, m.Seq, r)
		}
	}()
	switch m.Type {
	case peerwire.TypeTablet, peerwire.TypeDeletion, peerwire.TypeFileBegin:
		if ss.file != nil {
			return 0, nil, badInput("%s seq %d while file %s (seq %d) is open", m.Type, m.Seq, ss.file.msg.FileID, ss.file.msg.Seq)
		}
		if m.Seq != ss.lastSeq+1 {
			return 0, nil, badInput("%s seq %d after seq %d", m.Type, m.Seq, ss.lastSeq)
		}
		ss.lastSeq = m.Seq
	}
	switch m.Type {
	case peerwire.TypeSchema:
		return 0, nil, ss.schemas.add(m)
	case peerwire.TypeTablet:
		wait, err := ss.tablet(m, fd)
		return m.Seq, wait, err
	case peerwire.TypeDeletion:
		return m.Seq, nil, ss.deletion(m)
	case peerwire.TypeFileBegin:
		return 0, nil, ss.beginFile(m)
	case peerwire.TypeFileChunk:
		return 0, nil, ss.chunk(m, fd.DataBody)
	case peerwire.TypeFileEnd:
		seq, err := ss.endFile(m)
		return seq, nil, err
	}
	return 0, nil, badInput("unexpected %s message", m.Type)
}

// covered reports whether progress() covers index idx of origin (without building it).
func (ss *session) covered(origin uint32, idx uint64) bool {
	p := ss.region.ProgressOf(origin)
	if ss.pending != nil {
		if _, ok := ss.pending.Progress[origin]; ok {
			p = min(p, ss.pending.Applied[origin])
		}
	}
	return p >= idx
}

func coversAll(have, want map[uint32]uint64) bool {
	for o, v := range want {
		if v > 0 && have[o] < v {
			return false
		}
	}
	return true
}

// trace logs what the session does with an event, at debug level.
func (ss *session) trace(what string, m *peerwire.Msg, args ...any) {
	if ss.log.Enabled(context.Background(), slog.LevelDebug) {
		ss.log.Debug(what, append([]any{"seq", m.Seq, "commit", m.Commit, "origin", m.Origin, "origin_index", m.OriginIndex}, args...)...)
	}
}

// tablet applies a tablet and returns the wait for its durability (nil when skipped).
func (ss *session) tablet(m *peerwire.Msg, fd *flight.FlightData) (engine.Durable, error) {
	if ss.covered(m.Origin, m.OriginIndex) {
		ss.s.stats.skipped.Add(1)
		ss.trace("tablet covered", m)
		return nil, nil
	}
	ss.trace("tablet", m, "device", m.Device)
	if err := tsfile.ValidateDevice(m.Device); err != nil {
		return nil, badInput("tablet seq %d: device: %w", m.Seq, err)
	}
	rec, err := ss.schemas.decode(m.SchemaID, fd.DataHeader, fd.DataBody, ss.s.o.MaxMessageBytes)
	if err != nil {
		return nil, badInput("tablet seq %d of %s: %w", m.Seq, m.Device, err)
	}
	t := tsfile.NewTablet(m.Device, rec)
	defer t.Release()
	// the schema is ours and checkRecord checked the buffers; WriteReplicatedAsync
	// validates the values (finite floats) before it writes anything
	_, wait, err := ss.region.WriteReplicatedAsync(m.Origin, m.OriginIndex, t)
	if err != nil {
		return nil, fmt.Errorf("tablet seq %d of %s: %w", m.Seq, m.Device, err)
	}
	if ss.pending != nil {
		// applied may end the pending load, which only a durable tablet may do (rare: a
		// load was interrupted, so waiting here costs nothing that matters)
		if err := wait.Wait(); err != nil {
			return nil, fmt.Errorf("tablet seq %d of %s: %w", m.Seq, m.Device, err)
		}
		wait = nil
		ss.applied(map[uint32]uint64{m.Origin: m.OriginIndex})
	}
	ss.lastWrite = wait
	ss.s.stats.tablets.Add(1)
	ss.s.stats.points.Add(int64(t.Points()))
	return wait, nil
}

func (ss *session) deletion(m *peerwire.Msg) error {
	if ss.covered(m.Origin, m.OriginIndex) {
		ss.s.stats.skipped.Add(1)
		ss.trace("deletion covered", m)
		return nil
	}
	ss.trace("deletion", m, "pattern", m.Pattern, "min", m.MinTime, "max", m.MaxTime)
	if err := ss.applyDeletion(m.Seq, peerwire.Deletion{Origin: m.Origin, OriginIndex: m.OriginIndex, Pattern: m.Pattern, MinTime: m.MinTime, MaxTime: m.MaxTime}); err != nil {
		return err
	}
	ss.applied(map[uint32]uint64{m.Origin: m.OriginIndex})
	return nil
}

func (ss *session) applyDeletion(seq uint64, d peerwire.Deletion) error {
	p, err := tsfile.ParsePattern(d.Pattern)
	if err != nil {
		return badInput("deletion seq %d: pattern: %w", seq, err)
	}
	if d.MinTime > d.MaxTime {
		return badInput("deletion seq %d: start time %d after end time %d", seq, d.MinTime, d.MaxTime)
	}
	if _, err := ss.region.DeleteReplicated(d.Origin, d.OriginIndex, p, d.MinTime, d.MaxTime); err != nil {
		return fmt.Errorf("deletion seq %d of %s: %w", seq, d.Pattern, err)
	}
	ss.s.stats.deletions.Add(1)
	return nil
}
