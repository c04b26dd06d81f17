package bustest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
)

// Check is one named conformance check.
type Check struct {
	// Name is the check's name; "Middleware/Retry" style names group related checks.
	Name string
	// Capability is what the check holds a backend to; empty when every backend must pass it.
	// When the backend does not declare it, the check verifies that bus.Require refuses it and
	// is skipped with the reason.
	Capability bus.Capability
	fn         func(t T, s *env)
}

// Checks returns every check, in the order they run.
func Checks() []Check {
	return []Check{
		{Name: "Delivery", fn: checkDelivery},
		{Name: "NackRedelivers", fn: checkNackRedelivers},
		{Name: "ConsumerGroups", Capability: bus.ConsumerGroups, fn: checkConsumerGroups},
		{Name: "PerKeyOrdering", Capability: bus.PerKeyOrdering, fn: checkPerKeyOrdering},
		{Name: "Persistence", Capability: bus.Persistence, fn: checkPersistence},
		{Name: "Replay", Capability: bus.Replay, fn: checkReplay},
		{Name: "ReplayByTime", Capability: bus.ReplayByTime, fn: checkReplayByTime},
		{Name: "NativeDelay", Capability: bus.NativeDelay, fn: checkNativeDelay},
		{Name: "Pipelining", Capability: bus.Pipelining, fn: checkPipelining},
		{Name: "Middleware/Retry", fn: checkRetry},
		{Name: "Middleware/PoisonProvenance", fn: checkPoisonProvenance},
		{Name: "Middleware/Redrive", fn: checkRedrive},
		{Name: "Middleware/OrderingConcurrency", Capability: bus.Pipelining, fn: checkOrderingConcurrency},
		{Name: "Middleware/Dedup", fn: checkDedup},
		{Name: "BadInput/InvalidTopic", fn: checkInvalidTopic},
		{Name: "BadInput/UndecodableEvent", fn: checkUndecodable},
	}
}

// run runs c with a fresh env; a check with a capability first learns whether the backend
// declares it, and when it does not, checks the refusal and skips.
func (c Check) run(t T, h *Harness) {
	ctx, cancel := context.WithTimeout(t.Context(), h.Timeout)
	t.Cleanup(cancel)
	s := &env{h: h, ctx: ctx}
	// Topics are removed last, once every bus of the check is closed.
	t.Cleanup(s.removeTopics)
	if c.Capability != "" {
		b := s.open(t, "caps")
		declared := b.Capabilities().Has(c.Capability)
		declare(t, declared)
		if !declared {
			err := b.Require(c.Capability)
			if !errors.Is(err, bus.ErrNotSupported) {
				t.Fatalf("%s is not declared, so Require must refuse it with bus.ErrNotSupported; got %v", c.Capability, err)
			}
			if !strings.Contains(err.Error(), b.Backend()) {
				t.Errorf("the refusal %q does not name the backend %s", err, b.Backend())
			}
			t.Skipf("not declared: %v", err)
		}
	}
	c.fn(t, s)
}

// env is what a check works with: the harness and the check's deadline.
type env struct {
	h   *Harness
	ctx context.Context

	mu       sync.Mutex
	removals []func() // the harness's cleanups of the check's topics
}

// topic returns a topic of the check's own; the harness's cleanup of it runs after the
// check's buses are closed.
func (s *env) topic(t T) string {
	t.Helper()
	return s.h.Topic(laterT{T: t, s: s})
}

func (s *env) removeTopics() {
	s.mu.Lock()
	fs := s.removals
	s.removals = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// laterT defers the cleanups registered through it to the end of the check.
type laterT struct {
	T
	s *env
}

func (l laterT) Cleanup(f func()) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.removals = append(l.s.removals, f)
}

// open opens a bus in a consumer group of this check alone, named after what, closed when
// the check ends.
func (s *env) open(t T, what string, opts ...bus.Option) *bus.Bus {
	t.Helper()
	return s.openGroup(t, group(what), opts...)
}

func (s *env) openGroup(t T, g string, opts ...bus.Option) *bus.Bus {
	t.Helper()
	b, err := s.h.Open(s.ctx, g, opts...)
	if err != nil {
		t.Fatalf("open a bus in group %s: %v", g, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if s.h.Name == "" {
		s.h.Name = b.Backend()
	}
	return b
}

// group names a consumer group of one check alone.
func group(what string) string { return "conformance-" + what + "-" + watermill.NewShortUUID() }

// subscribe subscribes before anything is published: on a broker without retention (RabbitMQ)
// a group receives only what arrives after its queue exists.
func (s *env) subscribe(t T, b *bus.Bus, topic string) <-chan *message.Message {
	t.Helper()
	msgs, err := b.Subscriber.Subscribe(s.ctx, topic)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", topic, err)
	}
	return msgs
}

func (s *env) publish(t T, b *bus.Bus, topic string, evs ...bus.Event) {
	t.Helper()
	if err := b.Publish(s.ctx, topic, evs...); err != nil {
		t.Fatalf("publish %d events to %s: %v", len(evs), topic, err)
	}
}

// receive waits for the next message, failing the check at the deadline.
func (s *env) receive(t T, msgs <-chan *message.Message, what string) *message.Message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatalf("the subscription closed while waiting for %s", what)
		}
		return m
	case <-s.ctx.Done():
		t.Fatalf("no %s before the deadline", what)
		return nil
	}
}

// wait waits for done, failing the check at the deadline with what it waited for.
func (s *env) wait(t T, done <-chan struct{}, what func() string) {
	t.Helper()
	select {
	case <-done:
	case <-s.ctx.Done():
		t.Fatalf("%s before the deadline", what())
	}
}

func event(id string) bus.Event { return bus.Event{ID: id, Type: "conformance.v1", Source: "bustest"} }

func seqOf(t T, m *message.Message) int {
	t.Helper()
	n, err := seqIn(m)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return n
}

// seqIn reads the sequence number an ordering check put in an event's data.
func seqIn(m *message.Message) (int, error) {
	ev, err := bus.ParseEvent(m)
	if err != nil {
		return 0, fmt.Errorf("message %s: %w", m.UUID, err)
	}
	var n int
	if err := ev.DecodeData(nil, &n); err != nil {
		return 0, fmt.Errorf("message %s: %w", m.UUID, err)
	}
	return n, nil
}

// quiet waits briefly and reports whether no message arrived on msgs: the only way to see
// that something does not happen. Any message that does arrive is returned.
func quiet(msgs <-chan *message.Message, d time.Duration) *message.Message {
	select {
	case m := <-msgs:
		return m
	case <-time.After(d):
		return nil
	}
}
