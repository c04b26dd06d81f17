package bustest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// handlerName is the router handler every middleware check registers.
const handlerName = "conformance-handler"

// fastRetry is the router: section the middleware checks start from: quick, deterministic
// retries, so that a check takes milliseconds per attempt.
const fastRetry = `router:
  close_timeout: 5s
  retry: {max_attempts: %d, initial_interval: 10ms, max_interval: 50ms, jitter: 0, max_elapsed_time: 30s}
  ordering: {concurrency: %d, redelivery_delay: 50ms}
%s`

// runRouter builds a router for b from a router: section, as a service does
// (router.FromConfig), with h handling topic, runs it until the check ends and returns once
// its handler has subscribed. tap, when not nil, sees every message the subscriber hands the
// router, before any middleware.
func (s *env) runRouter(t T, b *bus.Bus, topic, routerYAML string, h message.NoPublishHandlerFunc, tap func(*message.Message)) {
	t.Helper()
	cfg, err := config.Parse("conformance-router.yaml", []byte(routerYAML))
	if err != nil {
		t.Fatalf("the check's router config: %v", err)
	}
	r, err := router.FromConfig(b, cfg, router.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("build the router: %v", err)
	}
	if tap != nil {
		r.AddSubscriberDecorators(func(sub message.Subscriber) (message.Subscriber, error) {
			return tapped{Subscriber: sub, tap: tap}, nil
		})
	}
	r.AddConsumerHandler(handlerName, topic, b.Subscriber, h)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = r.Close()
		<-ran
	})
	select {
	case <-r.Running():
	case err := <-ran:
		ran <- err
		t.Fatalf("the router stopped before it ran: %v", err)
	case <-s.ctx.Done():
		t.Fatalf("the router did not start before the deadline")
	}
}

// tapped passes every message its subscriber delivers to tap first.
type tapped struct {
	message.Subscriber
	tap func(*message.Message)
}

func (s tapped) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for m := range in {
			s.tap(m)
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// poisonReader subscribes to topic's poison topic (the default "{topic}.poison") in a group of
// its own, before anything can be poisoned.
func (s *env) poisonReader(t T, topic string) <-chan *message.Message {
	t.Helper()
	return s.subscribe(t, s.open(t, "poison-reader"), middleware.DefaultPoisonConfig().PoisonTopic(topic))
}

// counter counts handler calls per message id and signals when one reaches a count.
type counter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *counter) add(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[id]++
	return c.calls[id]
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

// checkRetry: a handler that fails twice and then succeeds is called three times, and the
// message is then acked, not poisoned.
func checkRetry(t T, s *env) {
	b := s.open(t, "retry")
	topic := s.topic(t)
	var calls counter
	delivered := make(chan *message.Message, 16)
	s.runRouter(t, b, topic, fmt.Sprintf(fastRetry, 5, 1, ""), func(m *message.Message) error {
		if n := calls.add(m.UUID); n <= 2 {
			return fmt.Errorf("attempt %d fails on purpose", n)
		}
		return nil
	}, func(m *message.Message) { delivered <- m })
	s.publish(t, b, topic, event("flaky"))
	m := s.receive(t, delivered, "the delivery of the event")
	select {
	case <-m.Acked():
	case <-m.Nacked():
		t.Fatalf("the message was nacked after %d handler calls; retries should have handled it", calls.get("flaky"))
	case <-s.ctx.Done():
		t.Fatalf("the message was not acked before the deadline (%d handler calls)", calls.get("flaky"))
	}
	if n := calls.get("flaky"); n != 3 {
		t.Errorf("the handler was called %d times; failing twice then succeeding takes 3 calls", n)
	}
}

// poisonOne publishes one event whose handler always fails (with max_attempts attempts),
// and returns the poison queue's copy and its provenance. fail decides the handler's error;
// it may start returning nil to let a redriven copy through.
func (s *env) poisonOne(t T, b *bus.Bus, topic string, attempts int, fail func(*message.Message) error) (*message.Message, middleware.Provenance) {
	t.Helper()
	poisoned := s.poisonReader(t, topic)
	s.runRouter(t, b, topic, fmt.Sprintf(fastRetry, attempts, 1, ""), fail, nil)
	ev := event("doomed")
	ev.Key = "doomed-key"
	s.publish(t, b, topic, ev)
	pm := s.receive(t, poisoned, "the failed event in the poison queue")
	pm.Ack()
	if pm.UUID != "doomed" {
		t.Fatalf("the poison queue holds %s, want doomed", pm.UUID)
	}
	prov, err := middleware.ParseProvenance(pm)
	if err != nil {
		t.Fatalf("provenance: %v", err)
	}
	return pm, prov
}

// checkPoisonProvenance: a message whose retries are exhausted lands in the poison queue with
// its key and every provenance field: reason, error, handler, topic, group, position (backend
// and coordinates), attempts, first and last failure.
func checkPoisonProvenance(t T, s *env) {
	g := group("poison")
	b := s.openGroup(t, g)
	topic := s.topic(t)
	start := time.Now()
	pm, prov := s.poisonOne(t, b, topic, 3, func(*message.Message) error { return errors.New("boom on purpose") })
	end := time.Now()

	if got := pm.Metadata.Get(bus.HeaderKey); got != "doomed-key" {
		t.Errorf("poisoned message key %q, want doomed-key", got)
	}
	want := []struct{ field, got, want string }{
		{"reason", string(prov.Reason), string(middleware.ReasonExhausted)},
		{"handler", prov.Handler, handlerName},
		{"topic", prov.Topic, topic},
		{"group", prov.Group, g},
		{"position backend", prov.Position.Backend, b.Backend()},
		{"attempts", fmt.Sprint(prov.Attempts), "3"},
	}
	for _, w := range want {
		if w.got != w.want {
			t.Errorf("provenance %s is %q, want %q", w.field, w.got, w.want)
		}
	}
	if prov.Position.Coordinates == "" {
		t.Errorf("provenance has no position coordinates (%s)", middleware.HeaderPoisonCoordinates)
	}
	if !strings.Contains(prov.Error, "boom on purpose") {
		t.Errorf("provenance error %q does not carry the handler's error", prov.Error)
	}
	if prov.FirstFailure.Before(start) || prov.LastFailure.After(end) || prov.LastFailure.Before(prov.FirstFailure) {
		t.Errorf("failure times first %s, last %s are not in order within the check's run [%s, %s]",
			prov.FirstFailure, prov.LastFailure, start, end)
	}
}

// checkRedrive: a poisoned message sent back to its topic (middleware.Redriven, what
// `eventbus dlq redrive` publishes) reaches the handler again, same id, with its redrive count.
func checkRedrive(t T, s *env) {
	b := s.open(t, "redrive")
	topic := s.topic(t)
	var mu sync.Mutex
	healed := false
	redriven := make(chan *message.Message, 1)
	pm, prov := s.poisonOne(t, b, topic, 1, func(m *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if !healed {
			return middleware.Permanent(errors.New("not yet"))
		}
		select {
		case redriven <- m:
		default:
		}
		return nil
	})
	mu.Lock()
	healed = true
	mu.Unlock()
	if err := b.Publisher.Publish(prov.Topic, middleware.Redriven(pm, prov)); err != nil {
		t.Fatalf("redrive to %s: %v", prov.Topic, err)
	}
	m := s.receive(t, redriven, "the redriven event at the handler")
	if m.UUID != "doomed" {
		t.Errorf("the handler got %s, want the redriven doomed", m.UUID)
	}
	if got := m.Metadata.Get(middleware.HeaderRedriveCount); got != "1" {
		t.Errorf("redriven message %s is %q, want 1", middleware.HeaderRedriveCount, got)
	}
	if got := m.Metadata.Get(middleware.HeaderPoisonReason); got != "" {
		t.Errorf("the redriven message still carries provenance (%s %q)", middleware.HeaderPoisonReason, got)
	}
}

// checkOrderingConcurrency: on a pipelining backend, the router's ordering middleware handles
// several keys in parallel and each key in publish order, also when a message is retried.
func checkOrderingConcurrency(t T, s *env) {
	b := s.open(t, "ordering")
	topic := s.topic(t)
	const keys, perKey = 4, 15
	var mu sync.Mutex
	last := map[string]int{}
	handled := 0
	failedOnce := false
	done := make(chan struct{})
	s.runRouter(t, b, topic, fmt.Sprintf(fastRetry, 5, 4, ""), func(m *message.Message) error {
		key := m.Metadata.Get(bus.HeaderKey)
		seq, err := seqIn(m)
		if err != nil {
			t.Errorf("%v", err)
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		prev, seen := last[key]
		switch {
		case seen && seq <= prev:
			return nil // a redelivery of one already handled
		case (!seen && seq != 0) || (seen && seq != prev+1):
			t.Errorf("key %s: event %d handled after %d: a later event overtook an earlier one", key, seq, prev)
		}
		if key == "k1" && seq == perKey/2 && !failedOnce {
			failedOnce = true
			return errors.New("fails once on purpose: the key's later events must wait")
		}
		last[key] = seq
		if handled++; handled == keys*perKey {
			close(done)
		}
		return nil
	}, nil)
	for i := range perKey {
		for k := range keys {
			ev := event(fmt.Sprintf("k%d-%d", k, i))
			ev.Key, ev.Data = fmt.Sprintf("k%d", k), i
			s.publish(t, b, topic, ev)
		}
	}
	s.wait(t, done, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d of %d events handled", handled, keys*perKey)
	})
}

// checkDedup: with router.dedup on (memory store), an event id delivered twice is handled
// once; both deliveries are acked.
func checkDedup(t T, s *env) {
	b := s.open(t, "dedup")
	topic := s.topic(t)
	var calls counter
	var mu sync.Mutex
	var deliveries []*message.Message
	twice := make(chan struct{})
	s.runRouter(t, b, topic, fmt.Sprintf(fastRetry, 3, 1, "  dedup: {enabled: true, store: memory, window: 1h}\n"),
		func(m *message.Message) error { calls.add(m.UUID); return nil },
		func(m *message.Message) {
			if m.UUID != "dup" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if deliveries = append(deliveries, m); len(deliveries) == 2 {
				close(twice)
			}
		})
	// The copies have no key, so on Kafka they may land in two partitions and be in flight at
	// once: the second then waits on the first's claim in the dedup store and is skipped when
	// the first succeeded.
	dup := event("dup")
	s.publish(t, b, topic, dup)
	s.publish(t, b, topic, dup)
	s.wait(t, twice, func() string { return "the two deliveries of event id dup" })
	mu.Lock()
	both := deliveries[:2]
	mu.Unlock()
	for i, m := range both {
		select {
		case <-m.Acked():
		case <-m.Nacked():
			t.Fatalf("delivery %d of dup was nacked", i+1)
		case <-s.ctx.Done():
			t.Fatalf("delivery %d of dup was not acked before the deadline", i+1)
		}
	}
	if n := calls.get("dup"); n != 1 {
		t.Errorf("the handler was called %d times for one event id delivered twice; dedup should make it 1", n)
	}
}
