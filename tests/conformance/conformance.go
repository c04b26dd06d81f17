// Package conformance checks that a backend keeps the guarantees it declares: one suite, run
// against real brokers, for every backend. A declared capability must pass its test; an
// undeclared one must be refused at start-up with bus.ErrNotSupported, so a service never
// relies on something the broker does not do.
//
// It is a package, not only a test, so that users can run it against their own brokers and
// configuration:
//
//	func TestOurBroker(t *testing.T) {
//		cfg, _ := config.Load("eventbus.yaml")
//		conformance.Run(t, conformance.ConfigHarness(cfg))
//	}
//
// What it covers: delivery with the envelope intact, redelivery after a nack, consumer groups,
// per-key ordering and replay. Persistence across a broker restart needs control of the broker
// and is covered by each backend's own fault tests.
package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// Harness tells the suite how to reach the backend under test.
type Harness struct {
	// Open opens a bus in the named consumer group, whose new subscriptions start from the
	// oldest message. The harness closes it when t ends.
	Open func(t *testing.T, group string) *bus.Bus
	// Topic returns a topic name no other test uses, and removes the topic when t ends if the
	// broker keeps it. Default: "conformance-<random>", never removed.
	Topic func(t *testing.T) string
	// Timeout bounds each test. Default: 60s.
	Timeout time.Duration
}

// ConfigHarness opens buses from cfg, as a service would.
func ConfigHarness(cfg *config.Config) Harness {
	return Harness{Open: func(t *testing.T, group string) *bus.Bus {
		t.Helper()
		b, err := bus.Open(context.Background(), cfg, bus.WithConsumerGroup(group),
			bus.WithStartFrom(bus.StartOldest), bus.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err, "open the %s backend", cfg.Backend)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}}
}

// Run runs every conformance test as a subtest of t.
func Run(t *testing.T, h Harness) {
	if h.Topic == nil {
		h.Topic = func(*testing.T) string { return "conformance-" + watermill.NewShortUUID() }
	}
	if h.Timeout == 0 {
		h.Timeout = 60 * time.Second
	}
	s := suite{h: h}
	t.Run("Delivery", s.testDelivery)
	t.Run("NackRedelivers", s.testNackRedelivers)
	t.Run("ConsumerGroups", s.testConsumerGroups)
	t.Run("PerKeyOrdering", s.testPerKeyOrdering)
	t.Run("Replay", s.testReplay)
}

type suite struct{ h Harness }

func (s suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// group names a consumer group of this test alone.
func group(name string) string { return "conformance-" + name + "-" + watermill.NewShortUUID() }

// subscribe subscribes before anything is published: on a broker without retention (RabbitMQ)
// a group receives only what arrives after its queue exists.
func subscribe(t *testing.T, ctx context.Context, b *bus.Bus, topic string) <-chan *message.Message {
	t.Helper()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err, "subscribe to %s", topic)
	return msgs
}

func receive(t *testing.T, ctx context.Context, msgs <-chan *message.Message, what string) *message.Message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		require.True(t, ok, "subscription closed while waiting for %s", what)
		return m
	case <-ctx.Done():
		t.Fatalf("no %s before the deadline", what)
		return nil
	}
}

// requireRefused checks that a capability the backend does not declare is refused at start-up.
func requireRefused(t *testing.T, b *bus.Bus, c bus.Capability) {
	t.Helper()
	err := b.Require(c)
	require.ErrorIs(t, err, bus.ErrNotSupported, "%s is not declared, so Require must refuse it", c)
	assert.Contains(t, err.Error(), b.Backend(), "the error names the backend")
	t.Logf("%s: not declared (%v)", c, err)
}

// testDelivery: every event arrives once acked, with its envelope, key, metadata and data intact,
// and raw bytes untouched.
func (s suite) testDelivery(t *testing.T) {
	ctx := s.ctx(t)
	b := s.h.Open(t, group("delivery"))
	topic := s.h.Topic(t)
	msgs := subscribe(t, ctx, b, topic)

	when := time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC)
	want := map[string]bus.Event{}
	for i := range 10 {
		ev := bus.Event{
			ID: fmt.Sprintf("evt-%d", i), Type: "org.openedx.learning.course.enrollment.created.v1",
			Source: "openedx/lms/web", Subject: fmt.Sprintf("user/%d", i), Time: when, Key: fmt.Sprintf("user-%d", i%3),
			Data: map[string]int{"n": i}, Metadata: map[string]string{"traceparent": fmt.Sprintf("00-%032d-01", i)},
		}
		want[ev.ID] = ev
		require.NoError(t, b.Publish(ctx, topic, ev))
	}
	raw := []byte{0x00, 0xff, 0x10, '\n'}
	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "raw", Type: "raw.v1", Source: "s", Data: raw, ContentType: "application/octet-stream"}))

	for len(want) > 0 || raw != nil {
		m := receive(t, ctx, msgs, fmt.Sprintf("the %d events not yet received", len(want)+1))
		ev, err := bus.ParseEvent(m)
		require.NoError(t, err)
		if _, ok := bus.PositionOf(m); !ok {
			t.Errorf("event %s: the subscriber recorded no broker position", ev.ID)
		}
		m.Ack()
		if ev.ID == "raw" {
			assert.Equal(t, []byte{0x00, 0xff, 0x10, '\n'}, []byte(m.Payload), "raw bytes pass untouched")
			assert.Equal(t, "application/octet-stream", ev.ContentType)
			raw = nil
			continue
		}
		exp, ok := want[ev.ID]
		if !ok {
			continue // a redelivery of one already checked: at-least-once allows it
		}
		delete(want, ev.ID)
		assert.Equal(t, exp.ID, m.UUID)
		assert.Equal(t, exp.Type, ev.Type)
		assert.Equal(t, exp.Source, ev.Source)
		assert.Equal(t, exp.Subject, ev.Subject)
		assert.Equal(t, bus.SpecVersion, ev.SpecVersion)
		assert.Equal(t, "application/json", ev.ContentType)
		assert.Equal(t, exp.Key, ev.Key)
		assert.True(t, when.Equal(ev.Time), "ce_time %v, want %v", ev.Time, when)
		assert.Equal(t, exp.Metadata["traceparent"], ev.Metadata["traceparent"])
		var data map[string]int
		require.NoError(t, ev.DecodeData(nil, &data))
		assert.Equal(t, exp.Data, data)
	}
}

// testNackRedelivers: a nacked message comes back; nothing is lost to a failed handler.
func (s suite) testNackRedelivers(t *testing.T) {
	ctx := s.ctx(t)
	b := s.h.Open(t, group("nack"))
	topic := s.h.Topic(t)
	msgs := subscribe(t, ctx, b, topic)
	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "again", Type: "t", Source: "s"}))

	first := receive(t, ctx, msgs, "the event")
	require.Equal(t, "again", first.UUID)
	first.Nack()
	second := receive(t, ctx, msgs, "the nacked event again")
	assert.Equal(t, "again", second.UUID)
	second.Ack()
}

// testConsumerGroups: every group gets every event; the members of one group together get every
// event. (How a group's members split the work depends on partitions and is not asserted.)
func (s suite) testConsumerGroups(t *testing.T) {
	ctx := s.ctx(t)
	groupA, groupB := group("a"), group("b")
	a1 := s.h.Open(t, groupA)
	if !a1.Capabilities().ConsumerGroups {
		requireRefused(t, a1, bus.ConsumerGroups)
		return
	}
	a2, other := s.h.Open(t, groupA), s.h.Open(t, groupB)
	topic := s.h.Topic(t)
	inA1, inA2, inB := subscribe(t, ctx, a1, topic), subscribe(t, ctx, a2, topic), subscribe(t, ctx, other, topic)

	const n = 30
	for i := range n {
		require.NoError(t, a1.Publish(ctx, topic, bus.Event{ID: fmt.Sprintf("g-%d", i), Type: "t", Source: "s"}))
	}
	seenA, seenB := map[string]bool{}, map[string]bool{}
	for len(seenA) < n || len(seenB) < n {
		select {
		case m := <-inA1:
			seenA[m.UUID] = true
			m.Ack()
		case m := <-inA2:
			seenA[m.UUID] = true
			m.Ack()
		case m := <-inB:
			seenB[m.UUID] = true
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("group a got %d of %d events, group b %d", len(seenA), n, len(seenB))
		}
	}
}

// testPerKeyOrdering: with one subscriber, events of one key arrive in publish order, also
// across a nack. A backend that does not declare it must refuse it.
func (s suite) testPerKeyOrdering(t *testing.T) {
	ctx := s.ctx(t)
	b := s.h.Open(t, group("order"))
	if !b.Capabilities().PerKeyOrdering {
		requireRefused(t, b, bus.PerKeyOrdering)
		return
	}
	topic := s.h.Topic(t)
	msgs := subscribe(t, ctx, b, topic)
	const keys, perKey = 5, 20
	for i := range perKey {
		for k := range keys {
			require.NoError(t, b.Publish(ctx, topic, bus.Event{
				ID: fmt.Sprintf("k%d-%d", k, i), Type: "t", Source: "s", Key: fmt.Sprintf("k%d", k), Data: i,
			}))
		}
	}
	next := map[string]int{}
	nacked := false
	for handled := 0; handled < keys*perKey; {
		m := receive(t, ctx, msgs, "the next event")
		key := m.Metadata.Get(bus.HeaderKey)
		var seq int
		ev, err := bus.ParseEvent(m)
		require.NoError(t, err)
		require.NoError(t, ev.DecodeData(nil, &seq))
		if seq < next[key] {
			m.Ack() // a redelivery of one already handled
			continue
		}
		require.Equal(t, next[key], seq, "key %s: event %s arrived out of order", key, m.UUID)
		if !nacked && seq == perKey/2 {
			nacked = true
			m.Nack() // it must come back before the key's later events
			continue
		}
		next[key]++
		handled++
		m.Ack()
	}
}

// testReplay: a group that acknowledged everything is not where replay ends: a new group reads
// the topic again from the oldest retained event.
func (s suite) testReplay(t *testing.T) {
	ctx := s.ctx(t)
	first := s.h.Open(t, group("replay-first"))
	if !first.Capabilities().Replay {
		requireRefused(t, first, bus.Replay)
		return
	}
	topic := s.h.Topic(t)
	msgs := subscribe(t, ctx, first, topic)
	const n = 10
	for i := range n {
		require.NoError(t, first.Publish(ctx, topic, bus.Event{ID: fmt.Sprintf("r-%d", i), Type: "t", Source: "s"}))
	}
	for seen := map[string]bool{}; len(seen) < n; {
		m := receive(t, ctx, msgs, "the first reading")
		seen[m.UUID] = true
		m.Ack()
	}
	require.NoError(t, first.Close())

	again := s.h.Open(t, group("replay-again"))
	msgs = subscribe(t, ctx, again, topic)
	seen := map[string]bool{}
	for len(seen) < n {
		m := receive(t, ctx, msgs, fmt.Sprintf("replayed event %d of %d", len(seen)+1, n))
		seen[m.UUID] = true
		m.Ack()
	}
}
