package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// The tests in this file hold the driver to issue 15: no queue grows without limit unless the
// config asks for it.

// rawChannel is a channel on a connection of the test's own to the broker at url, beside the
// driver's, for what a test does or checks without it; both are closed when the test ends.
func rawChannel(t *testing.T, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	return ch
}

// assertNoQueue checks with a passive declare that queue does not exist (404 NOT_FOUND).
func assertNoQueue(t *testing.T, url, queue string) {
	t.Helper()
	_, err := rawChannel(t, url).QueueDeclarePassive(queue, true, false, false, false, nil)
	var ae *amqp.Error
	require.True(t, errors.As(err, &ae), "queue %s exists (passive declare: %v)", queue, err)
	assert.Equal(t, amqp.NotFound, ae.Code, "passive declare of %s: %v", queue, err)
}

// The default config: a service that publishes a topic nobody subscribed to leaves no queue
// behind (its own group's included), and Publish says so instead of dropping the message.
func TestDefaultPublishLeavesNoQueueBehind(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	cfg := rabbitmq.DefaultConfig()
	cfg.URL = testConfig(url).URL
	b := openBackend(t, cfg)
	topic := uniqueTopic("published-only")
	for i := range 3 {
		err := b.Publish(context.Background(), topic, bus.Event{ID: fmt.Sprint("unread-", i), Type: "t", Source: "s"})
		require.ErrorIs(t, err, rabbitmq.ErrUnroutable)
		assert.Contains(t, err.Error(), "topic "+topic)
		assert.Contains(t, err.Error(), "rabbitmq.publisher.declare_groups")
	}
	assertNoQueue(t, url, cfg.ConsumerGroup+"."+topic)
}

// A group's queue holds at most queue.max_length_bytes; once full the broker nacks further
// messages and Publish fails with ErrNacked (class bus.ErrUnavailable), keeping what the queue
// holds instead of dropping its oldest messages.
func TestFullQueueMakesPublishFail(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	cfg := testConfig(url)
	cfg.ConsumerGroup = "slow"
	cfg.Publisher.DeclareGroups = []string{"slow"}
	payload := make([]byte, 100)
	for i := range payload {
		payload[i] = 'x'
	}
	// Room for two bodies of a little over 100 bytes, not three.
	cfg.Queue.MaxLengthBytes = 250
	b := openBackend(t, cfg)
	topic := uniqueTopic("bounded")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	event := func(id string) bus.Event {
		return bus.Event{ID: id, Type: "t", Source: "s", Data: payload, ContentType: "application/octet-stream"}
	}
	require.NoError(t, b.Publish(ctx, topic, event("kept-1")))
	require.NoError(t, b.Publish(ctx, topic, event("kept-2")))
	var err error
	for i := range 3 { // the queue may take one past the limit: it checks before it stores
		if err = b.Publish(ctx, topic, event(fmt.Sprint("refused-", i))); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, rabbitmq.ErrNacked)
	require.ErrorIs(t, err, bus.ErrUnavailable)
	assert.Contains(t, err.Error(), "queue bound to topic "+topic+" is full")
	assert.Contains(t, err.Error(), "rabbitmq.queue.max_length_bytes")

	// The oldest messages are still there, in order: nothing was dropped to make room.
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "kept-1", m.UUID)
	m.Ack()
	m = bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "kept-2", m.UUID)
	m.Ack()
}

// The queue of a temporary group (the CLI's, the demo's) drops its oldest messages when full,
// so a stalled tool never makes a service's Publish fail.
func TestFullToolingQueueDropsOldest(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("tooling")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	toolCfg := testConfig(url)
	toolCfg.ConsumerGroup = "cli-tool"
	toolCfg.Queue.MaxLength = 2
	tool := openBackend(t, toolCfg, bus.WithTemporaryGroup("cli-tool"))
	require.NoError(t, tool.Subscriber.(interface{ SubscribeInitialize(string) error }).SubscribeInitialize(topic))

	svcCfg := testConfig(url)
	svcCfg.Queue.MaxLength = 2
	svc := openBackend(t, svcCfg)
	for i := range 5 {
		require.NoError(t, svc.Publish(ctx, topic, bus.Event{ID: fmt.Sprint("e-", i), Type: "t", Source: "s"}))
	}
	assert.Equal(t, 2, queueMessages(url, "cli-tool."+topic), "the tool's queue kept the newest two")
}

// The publisher declares no queue of its own group, yet the router's poison queue is kept for
// that group from the first poisoned message (the router prepares the poison topic through
// the subscriber), so `eventbus dlq` finds it, and a poisoned message is handled once, not
// redelivered because its poison publish was unroutable.
func TestPoisonQueueIsKeptForTheGroup(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	cfg := testConfig(url)
	cfg.ConsumerGroup = "billing"
	b := openBackend(t, cfg)
	r, err := router.New(b, router.DefaultConfig())
	require.NoError(t, err)
	topic := uniqueTopic("invoices")
	var calls atomic.Int32
	r.AddConsumerHandler("poisoned", topic, b.Subscriber, func(*message.Message) error {
		calls.Add(1)
		return middleware.Permanent(errors.New("rejected"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()
	defer func() { _ = r.Close(); <-done }()

	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "bad-1", Type: "t", Source: "s"}))
	poisonQueue := "billing." + topic + ".poison"
	require.Eventually(t, func() bool { return queueMessages(url, poisonQueue) == 1 }, 20*time.Second, 20*time.Millisecond,
		"the poisoned message reaches %s", poisonQueue)
	assert.Equal(t, int32(1), calls.Load(), "handled once: the first poison publish went through")
}

// queueMessages returns how many messages queue holds, or -1 when it does not exist (yet).
func queueMessages(url, queue string) int {
	conn, err := amqp.Dial(url)
	if err != nil {
		return -1
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return -1
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}
