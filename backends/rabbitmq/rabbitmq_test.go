package rabbitmq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

func TestEnvelopeAndPositionRoundTrip(t *testing.T) {
	cfg := testConfig(brokertest.RabbitMQRunURL(t))
	b := openBackend(t, cfg)
	topic := uniqueTopic("enrollments")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)

	when := time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC)
	require.NoError(t, b.Publish(ctx, topic, bus.Event{
		ID: "evt-1", Type: "org.openedx.learning.course.enrollment.created.v1", Source: "openedx/lms/web",
		Time: when, Key: "user-42", Data: map[string]any{"user_id": 42},
		Metadata: map[string]string{"traceparent": "00-abc-def-01"},
	}))

	m := bustest.Receive(t, ctx, msgs)
	ev, err := bus.ParseEvent(m)
	require.NoError(t, err)
	assert.Equal(t, "evt-1", m.UUID)
	assert.Equal(t, "org.openedx.learning.course.enrollment.created.v1", ev.Type)
	assert.Equal(t, "openedx/lms/web", ev.Source)
	assert.Equal(t, "user-42", ev.Key)
	assert.Equal(t, "application/json", ev.ContentType)
	assert.True(t, when.Equal(ev.Time))
	assert.Equal(t, map[string]string{"traceparent": "00-abc-def-01"}, ev.Metadata)
	assert.JSONEq(t, `{"user_id":42}`, string(m.Payload))

	pos, ok := bus.PositionOf(m)
	require.True(t, ok, "the subscriber records the position")
	assert.Equal(t, bus.Position{Backend: "rabbitmq", Topic: topic, ConsumerGroup: "eventbus", Coordinates: rabbitmq.Coordinates("eventbus."+topic, 1)}, pos)
	assert.Equal(t, fmt.Sprintf("rabbitmq %s eventbus.%s#1 (group eventbus)", topic, topic), pos.String())
	m.Ack()
}

// A message from another producer with headers that are not text is delivered, never dropped,
// with the reason in bus.HeaderInvalidReason; readable non-string headers become text.
func TestUndecodableHeadersAreDeliveredWithReason(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	b := openBackend(t, testConfig(url))
	topic := uniqueTopic("foreign")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.PublishWithContext(ctx, "eventbus", topic, true, false, amqp.Publishing{
		MessageId:   "foreign-1",
		ContentType: "text/plain",
		Headers: amqp.Table{
			"ce_type": "x.v1", "attempt": int32(3), "ok": true,
			"blob":    []byte{0xff, 0xfe, 0x00},
			"x-death": []any{amqp.Table{"count": int64(1), "queue": "q"}},
		},
		Body: []byte("hello"),
	}))

	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "foreign-1", m.UUID)
	assert.Equal(t, "hello", string(m.Payload))
	assert.Equal(t, "3", m.Metadata.Get("attempt"))
	assert.Equal(t, "true", m.Metadata.Get("ok"))
	assert.Equal(t, "text/plain", m.Metadata.Get(bus.HeaderContentType))
	assert.JSONEq(t, `[{"count":1,"queue":"q"}]`, m.Metadata.Get("x-death"))
	assert.Equal(t, "//4A", m.Metadata.Get("blob"), "bytes that are not text come in base64")
	assert.Equal(t, `header "blob" holds 3 bytes that are not UTF-8 text (given here in base64)`, m.Metadata.Get(bus.HeaderInvalidReason))
	m.Ack()
}

// With publisher.declare_consumer_group and declare_groups the publisher declares those groups'
// queues, so messages published before the groups first subscribe wait for them; a group nobody
// declared gets nothing old.
func TestPublishDeclaresConfiguredGroupQueue(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("early")
	cfg := testConfig(url)
	cfg.ConsumerGroup = "lms"
	cfg.Publisher.DeclareConsumerGroup = true
	cfg.Publisher.DeclareGroups = []string{"credentials"}
	pub := openBackend(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, pub.Publish(ctx, topic, bus.Event{ID: "early-1", Type: "t", Source: "s"}))

	for _, group := range []string{"lms", "credentials"} {
		cfg := testConfig(url)
		cfg.ConsumerGroup = group
		b := openBackend(t, cfg)
		msgs, err := b.Subscriber.Subscribe(ctx, topic)
		require.NoError(t, err)
		m := bustest.Receive(t, ctx, msgs)
		assert.Equal(t, "early-1", m.UUID, group)
		m.Ack()
	}

	// A group whose queue did not exist when early-1 was published never gets it: the first
	// message its queue holds is one published after it subscribed.
	late := testConfig(url)
	late.ConsumerGroup = "late"
	b := openBackend(t, late)
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	require.NoError(t, pub.Publish(ctx, topic, bus.Event{ID: "marker", Type: "t", Source: "s"}))
	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "marker", m.UUID, "the late group got a message published before its queue existed")
	m.Ack()
}

// With no queue bound for a topic RabbitMQ would drop the message; the publisher publishes
// mandatory and fails instead, saying which topic and which setting keeps messages for a group.
// With the default config the publisher declares no queue of its own, so nothing is left
// behind that nobody reads.
func TestUnroutablePublishFails(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	b := openBackend(t, testConfig(url))
	topic := uniqueTopic("nobody")
	err := b.Publish(context.Background(), topic, bus.Event{ID: "lost-1", Type: "t", Source: "s"})
	require.ErrorIs(t, err, rabbitmq.ErrUnroutable)
	assert.Contains(t, err.Error(), "message lost-1")
	assert.Contains(t, err.Error(), "no queue is bound to topic "+topic)
	assert.Contains(t, err.Error(), "rabbitmq.publisher.declare_groups")
	assert.Contains(t, err.Error(), "NO_ROUTE")
	assertNoQueue(t, url, "eventbus."+topic)

	// Once a group subscribed, the same publish goes through.
	require.NoError(t, b.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic))
	require.NoError(t, b.Publish(context.Background(), topic, bus.Event{ID: "kept-1", Type: "t", Source: "s"}))
}

func TestTwoGroupsEachGetEveryMessageAndInstancesShare(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("groups")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := func(group string) <-chan *message.Message {
		cfg := testConfig(url)
		cfg.ConsumerGroup = group
		b := openBackend(t, cfg)
		msgs, err := b.Subscriber.Subscribe(ctx, topic)
		require.NoError(t, err)
		return msgs
	}
	a1, a2, other := open("a"), open("a"), open("b")
	pub := openBackend(t, testConfig(url))
	const n = 40
	for i := range n {
		require.NoError(t, pub.Publish(ctx, topic, bus.Event{ID: fmt.Sprint(i), Type: "t", Source: "s"}))
	}
	seenA := map[string]int{}
	fromA1 := 0
	for len(seenA) < n {
		select {
		case m := <-a1:
			seenA[m.UUID]++
			fromA1++
			m.Ack()
		case m := <-a2:
			seenA[m.UUID]++
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("group a got %d of %d", len(seenA), n)
		}
	}
	assert.Greater(t, fromA1, 0, "both instances of group a get work")
	assert.Less(t, fromA1, n, "both instances of group a get work")
	for range n {
		bustest.Receive(t, ctx, other).Ack()
	}
}

func TestCapabilitiesAndReplayNotSupported(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	b := openBackend(t, testConfig(url), bus.Require(bus.ConsumerGroups, bus.Persistence))
	caps := b.Capabilities()
	assert.False(t, caps.Replay)
	assert.False(t, caps.PerKeyOrdering)
	assert.False(t, caps.Pipelining)

	_, err := bus.OpenConfig(context.Background(), rabbitmq.Name, testConfig(url), bus.Require(bus.Replay), bus.WithLogger(brokertest.Logger()))
	require.ErrorIs(t, err, bus.ErrNotSupported)
	assert.Contains(t, err.Error(), "backend rabbitmq: replay (only with queue.type: stream")

	sac := testConfig(url)
	sac.Queue.SingleActiveConsumer = true
	b = openBackend(t, sac, bus.Require(bus.PerKeyOrdering))
	assert.False(t, b.Capabilities().Pipelining)
	// Handing out ten at a time, a nacked message comes back after later ones: order is then
	// the ordering middleware's to keep, not the subscriber's (the conformance suite, bus/bustest, checks this).
	sac.Consumer.MaxInFlight = 10
	b = openBackend(t, sac, bus.Require(bus.Pipelining))
	assert.False(t, b.Capabilities().PerKeyOrdering)

	// A caller asking for a window (the ordering middleware, the dlq tool) gets a pipelining
	// subscriber even when the file says max_in_flight 1, with prefetch raised to cover it.
	b = openBackend(t, testConfig(url), bus.WithMaxInFlight(200), bus.Require(bus.Pipelining))
	assert.True(t, b.Capabilities().Pipelining)

	var conn *amqp.Connection
	require.True(t, b.As(&conn))
	assert.False(t, conn.IsClosed())
}

// With a single active consumer only one instance of the group receives; a nacked message is
// handed out again before later ones, so the group sees the topic in publish order.
func TestSingleActiveConsumerKeepsOrderAcrossNacks(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("ordered")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := testConfig(url)
	cfg.Queue.SingleActiveConsumer = true
	first, second := openBackend(t, cfg), openBackend(t, cfg)
	active, err := first.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	standby, err := second.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)

	const n = 30
	for i := range n {
		require.NoError(t, first.Publish(ctx, topic, bus.Event{Type: "t", Source: "s", Key: "k", Data: i}))
	}
	var got []int
	nacked := false
	for len(got) < n {
		var m *message.Message
		select { // a message to the standby consumer at any point breaks single-active-consumer
		case m = <-active:
		case sm := <-standby:
			t.Fatalf("the standby consumer got %s while the active one was consuming", sm.UUID)
		case <-ctx.Done():
			t.Fatalf("%d of %d messages before the deadline", len(got), n)
		}
		var i int
		require.NoError(t, json.Unmarshal(m.Payload, &i))
		if i == 10 && !nacked {
			nacked = true
			m.Nack()
			continue
		}
		if i == 10 {
			assert.Equal(t, "true", m.Metadata.Get(wamqp.MetadataRedeliveredKey))
		}
		got = append(got, i)
		m.Ack()
	}
	for i, v := range got {
		require.Equal(t, i, v, "order broken: %v", got)
	}
}

// A stream queue keeps history: a group that subscribes later reads it from the start, which
// is what the Replay capability promises.
func TestStreamReplaysFromOldest(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("audit")
	cfg := testConfig(url)
	cfg.Queue.Type = rabbitmq.QueueStream
	b := openBackend(t, cfg, bus.Require(bus.Replay))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 5 {
		require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: fmt.Sprint("s", i), Type: "t", Source: "s"}))
	}
	for _, group := range []string{"first-reader", "second-reader"} {
		r := openBackend(t, cfg, bus.WithConsumerGroup(group), bus.WithStartFrom(bus.StartOldest))
		msgs, err := r.Subscriber.Subscribe(ctx, topic)
		require.NoError(t, err)
		for i := range 5 {
			m := bustest.Receive(t, ctx, msgs)
			assert.Equal(t, fmt.Sprint("s", i), m.UUID, group)
			pos, ok := bus.PositionOf(m)
			require.True(t, ok)
			_, off, stream, err := rabbitmq.ParseCoordinates(pos.Coordinates)
			require.NoError(t, err)
			assert.True(t, stream, "a stream delivery's position is its offset: %s", pos.Coordinates)
			assert.Equal(t, int64(i), off, "stream offset")
			m.Ack()
		}
	}
	// From newest, the first message read is one published after subscribing, not s0.
	newest := openBackend(t, cfg, bus.WithStartFrom(bus.StartNewest))
	msgs, err := newest.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	require.NoError(t, newest.Publish(ctx, topic, bus.Event{ID: "marker", Type: "t", Source: "s"}))
	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "marker", m.UUID, "start_from newest read retained history")
	m.Ack()
}

// A temporary group's queue expires once unused; other groups' queues do not.
func TestTemporaryGroupQueueExpires(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("cli")
	cfg := testConfig(url)
	cfg.Queue.TemporaryGroupExpiry = 2 * time.Second
	tmp := openBackend(t, cfg, bus.WithTemporaryGroup("cli-session"))
	require.NoError(t, tmp.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic))
	durable := openBackend(t, cfg, bus.WithConsumerGroup("service"))
	require.NoError(t, durable.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic))

	exists := func(queue string) bool {
		conn, err := amqp.Dial(url)
		require.NoError(t, err)
		defer conn.Close()
		ch, err := conn.Channel()
		require.NoError(t, err)
		_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil
	}
	require.True(t, exists("cli-session."+topic))
	require.Eventually(t, func() bool { return !exists("cli-session." + topic) }, 30*time.Second, 250*time.Millisecond,
		"the temporary group's queue should expire")
	assert.True(t, exists("service."+topic))
}

func TestInvalidTopicsAreRefused(t *testing.T) {
	b := openBackend(t, testConfig(brokertest.RabbitMQRunURL(t)))
	for _, topic := range []string{"", "a.*", "orders.#", strings.Repeat("x", 201)} {
		err := b.Publisher.Publish(topic, message.NewMessage("m", nil))
		require.ErrorIs(t, err, rabbitmq.ErrInvalidTopic, topic)
		require.ErrorIs(t, err, bus.ErrInvalidEvent, topic)
		_, err = b.Subscriber.Subscribe(context.Background(), topic)
		require.ErrorIs(t, err, rabbitmq.ErrInvalidTopic, topic)
		require.ErrorIs(t, err, bus.ErrInvalidEvent, topic)
	}
}

// A group whose queue exists with other arguments gets an error saying what to align, at
// Subscribe, not a silent failure later.
func TestQueueArgumentMismatchIsExplained(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("mismatch")
	classic := testConfig(url)
	classic.Queue.Type = rabbitmq.QueueClassic
	require.NoError(t, openBackend(t, classic).Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic))

	quorum := openBackend(t, testConfig(url))
	_, err := quorum.Subscriber.Subscribe(context.Background(), topic)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PRECONDITION_FAILED")
	assert.Contains(t, err.Error(), "align queue.type")
}

// consumer_group "" gives each subscription a private queue: both get every message, and the
// capabilities say that neither groups nor persistence hold.
func TestEmptyGroupGivesPrivateQueues(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	cfg := testConfig(url)
	cfg.ConsumerGroup = ""
	b := openBackend(t, cfg)
	assert.False(t, b.Capabilities().ConsumerGroups)
	assert.False(t, b.Capabilities().Persistence)
	topic := uniqueTopic("private")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	second, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "to-both", Type: "t", Source: "s"}))
	for _, msgs := range []<-chan *message.Message{first, second} {
		m := bustest.Receive(t, ctx, msgs)
		assert.Equal(t, "to-both", m.UUID)
		pos, ok := bus.PositionOf(m)
		require.True(t, ok)
		queue, _, _, err := rabbitmq.ParseCoordinates(pos.Coordinates)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(queue, "amq.gen-"), "server-named queue, got %q", queue)
		m.Ack()
	}
}

// With max_in_flight N the subscriber hands out N messages before any is acked (Pipelining),
// and not one more.
func TestMaxInFlightBoundsPipelining(t *testing.T) {
	cfg := testConfig(brokertest.RabbitMQRunURL(t))
	cfg.Consumer.MaxInFlight = 5
	b := openBackend(t, cfg, bus.Require(bus.Pipelining))
	topic := uniqueTopic("pipelined")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	for i := range 8 {
		require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: fmt.Sprint(i), Type: "t", Source: "s"}))
	}
	var held []*message.Message
	for range 5 {
		held = append(held, bustest.Receive(t, ctx, msgs))
	}
	bustest.ExpectNothing(t, msgs, 300*time.Millisecond)
	held[2].Ack()
	sixth := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "5", sixth.UUID)
	sixth.Ack()
	for _, m := range append(held[:2], held[3:]...) {
		m.Ack()
	}
	bustest.Receive(t, ctx, msgs).Ack()
	bustest.Receive(t, ctx, msgs).Ack()
}
