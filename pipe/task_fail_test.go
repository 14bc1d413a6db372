package pipe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// failingAsyncSink acknowledges each batch from a goroutine of its own, and fails the
// task through Env.Fail (not through a return value) at its failAt-th batch of each run,
// as a connector whose delivery fails after SendAsync returned.
type failingAsyncSink struct {
	sc    *scenario
	env   *Env
	sends int
	wg    sync.WaitGroup
}

var asyncFailures = struct {
	sync.Mutex
	failAt    map[string]int   // scenario → the batch of each run that fails (0: none)
	permanent map[string]bool  // scenario → the failure is permanent
	opens     map[string]int   // scenario → opens so far
	failed    map[string][]int // scenario → seq of the first event of each failed batch
}{failAt: map[string]int{}, permanent: map[string]bool{}, opens: map[string]int{}, failed: map[string][]int{}}

func init() {
	RegisterConnector(PluginInfo{Name: "test-failing-async-sink", Params: append([]ParamSpec{scenarioParam}, SinkRuntimeParams...)},
		func() Connector { return &failingAsyncSink{} })
}

func (s *failingAsyncSink) Open(_ context.Context, env *Env) (err error) {
	if s.sc, err = lookupScenario(env.Params); err != nil {
		return err
	}
	if env.Fail == nil {
		return errors.New("no Env.Fail")
	}
	s.env = env
	asyncFailures.Lock()
	asyncFailures.opens[s.sc.name]++
	asyncFailures.Unlock()
	return nil
}

func (s *failingAsyncSink) Send(context.Context, []*Event) error { return errors.New("not used") }

func (s *failingAsyncSink) SendAsync(_ context.Context, batch []*Event, ack func(ids ...uint64)) error {
	s.sends++
	asyncFailures.Lock()
	fail := s.sends == asyncFailures.failAt[s.sc.name]
	permanent := asyncFailures.permanent[s.sc.name]
	if fail {
		asyncFailures.failed[s.sc.name] = append(asyncFailures.failed[s.sc.name], int(batch[0].MaxIndex))
	}
	asyncFailures.Unlock()
	ids := make([]uint64, len(batch))
	for i, e := range batch {
		ids[i] = e.CommitID
	}
	if !fail {
		s.sc.mu.Lock()
		for _, e := range batch {
			s.sc.sent = append(s.sc.sent, e.MaxIndex)
		}
		s.sc.mu.Unlock()
	}
	n := s.sends
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		time.Sleep(time.Millisecond)
		if !fail {
			ack(ids...)
			return
		}
		err := fmt.Errorf("delivery of batch #%d failed in the background", n)
		if permanent {
			err = Permanent(err)
		}
		s.env.Fail(err)
		s.env.Fail(errors.New("a second failure, ignored"))
	}()
	return nil
}

func (s *failingAsyncSink) Close() error {
	s.wg.Wait()
	return nil
}

// A failure reported through Env.Fail ends the run with that error, shown in the status;
// Supervise retries from the durable progress, and the batch that failed is redelivered.
func TestTaskAsyncFailRetriesFromProgress(t *testing.T) {
	sc := newScenario(t, 200)
	sc.finite.Store(true)
	asyncFailures.Lock()
	asyncFailures.failAt[sc.name] = 3
	asyncFailures.Unlock()
	store := testStore(t)
	spec := testSpec(t, "p", sc, nil, "test-failing-async-sink", map[string]string{ParamBatchMaxEvents: "10", ParamBatchLinger: "1s", ParamQueueSize: "8"})

	task := newTestTask(t, spec, store)
	err := task.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connector test-failing-async-sink: delivery of batch #3 failed in the background") {
		t.Fatalf("run: %v", err)
	}
	if strings.Contains(err.Error(), "second failure") {
		t.Fatalf("run: %v", err)
	}

	asyncFailures.Lock()
	asyncFailures.failAt[sc.name] = 0
	asyncFailures.Unlock()
	task = newTestTask(t, spec, store)
	var errs []error
	var mu sync.Mutex
	task.o.OnError = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	task.Supervise(context.Background(), Backoff{Initial: time.Millisecond})
	if st := task.Status(); st.Phase != PhaseFinished {
		t.Fatalf("status %+v", st)
	}
	checkInOrder(t, "committed", sc.committedSeqs(), 200)
	seen := map[uint64]bool{}
	for _, s := range sc.sentSeqs() {
		seen[s] = true
	}
	for s := uint64(1); s <= 200; s++ {
		if !seen[s] {
			t.Fatalf("event %d never sent", s)
		}
	}
	sc.checkReleased(t)
}

// Supervise shows a background failure in the status and backs off; a permanent one
// fails the task.
func TestTaskAsyncFailShownInStatus(t *testing.T) {
	for _, permanent := range []bool{false, true} {
		t.Run(fmt.Sprint("permanent=", permanent), func(t *testing.T) {
			sc := newScenario(t, 100)
			sc.finite.Store(true)
			asyncFailures.Lock()
			asyncFailures.failAt[sc.name] = 2 // every run fails at its second batch
			asyncFailures.permanent[sc.name] = permanent
			asyncFailures.opens[sc.name] = 0
			asyncFailures.Unlock()
			spec := testSpec(t, "p", sc, nil, "test-failing-async-sink", map[string]string{ParamBatchMaxEvents: "10", ParamBatchLinger: "1s"})
			task := newTestTask(t, spec, testStore(t))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				task.Supervise(ctx, Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond})
			}()
			defer func() { cancel(); <-done }()
			want := PhaseBackoff
			if permanent {
				want = PhaseFailed
			}
			eventually(t, 10*time.Second, "a failure in the status", func() bool {
				st := task.Status()
				return strings.Contains(st.LastError, "failed in the background") && (st.Phase == want || (!permanent && st.Retries > 0))
			})
			if permanent {
				<-done
				asyncFailures.Lock()
				opens := asyncFailures.opens[sc.name]
				asyncFailures.Unlock()
				if opens != 1 || task.Status().Phase != PhaseFailed {
					t.Fatalf("%d opens, status %+v", opens, task.Status())
				}
			}
			// what was acknowledged before the failure stays committed
			if c := sc.committedSeqs(); len(c) < 10 {
				t.Fatalf("committed %v", c)
			}
		})
	}
}
