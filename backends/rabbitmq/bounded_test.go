package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
)

// The tests in this file hold the driver to issue 15: no queue grows without limit unless the
// config asks for it.

// assertNoQueue checks with a passive declare that queue does not exist (404 NOT_FOUND).
func assertNoQueue(t *testing.T, url, queue string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	var ae *amqp.Error
	require.True(t, errors.As(err, &ae), "queue %s exists (passive declare: %v)", queue, err)
	assert.Equal(t, amqp.NotFound, ae.Code, "passive declare of %s: %v", queue, err)
}

// queueDepth returns how many messages queue holds.
func queueDepth(t *testing.T, url, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(t, err)
	return q.Messages
}

// The default config: a service that publishes a topic nobody subscribed to leaves no queue
// behind (its own group's included), and Publish says so instead of dropping the message.
func TestDefaultPublishLeavesNoQueueBehind(t *testing.T) {
	url := brokerURL(t)
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
	url := brokerURL(t)
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
	m := receive(t, ctx, msgs)
	assert.Equal(t, "kept-1", m.UUID)
	m.Ack()
	m = receive(t, ctx, msgs)
	assert.Equal(t, "kept-2", m.UUID)
	m.Ack()
}

// The queue of a temporary group (the CLI's, the demo's) drops its oldest messages when full,
// so a stalled tool never makes a service's Publish fail.
func TestFullToolingQueueDropsOldest(t *testing.T) {
	url := brokerURL(t)
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
	assert.Equal(t, 2, queueDepth(t, url, "cli-tool."+topic))
}
