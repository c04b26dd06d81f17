package rabbitmq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// A quorum queue dead-letters a message once it has been requeued queue.delivery_limit times
// (RabbitMQ 4 applies 20 when no limit is declared, and without a dead-letter target discards
// the message). The driver declares the limit and a "<queue>.dead" queue to receive it: after
// the limit the message is there, not lost.
func TestDeliveryLimitDeadLettersInsteadOfDropping(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	cfg := testConfig(url)
	cfg.Queue.DeliveryLimit = 2
	b := openBackend(t, cfg)
	topic := uniqueTopic("limit")
	queue, dead := cfg.ConsumerGroup+"."+topic, cfg.ConsumerGroup+"."+topic+".dead"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "evt-limit", Type: "t", Source: "s"}))

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	depth := func(q string) int {
		ch, err := conn.Channel()
		if err != nil {
			return -1
		}
		defer ch.Close()
		st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			return -1
		}
		return st.Messages
	}

	deliveries := 0
	for depth(dead) != 1 {
		select {
		case m := <-msgs:
			deliveries++
			require.Equal(t, "evt-limit", m.UUID)
			m.Nack() // requeued to the broker after NackDelay
		case <-ctx.Done():
			t.Fatalf("after %d deliveries the message is neither redelivered nor in %s", deliveries, dead)
		case <-time.After(50 * time.Millisecond):
		}
	}
	assert.Equal(t, 3, deliveries, "the first delivery and two requeues")
	assert.Equal(t, 0, depth(queue), "the group's queue no longer holds it")

	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	d, ok, err := ch.Get(dead, true)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "evt-limit", d.MessageId)
}

// A temporary group's queues (bus.WithTemporaryGroup: the CLI's consume, the demo), and their
// dead-letter queues, are deleted on Close rather than left to expire; a service's stay.
func TestTemporaryGroupQueuesDeletedOnClose(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("tmp")
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	exists := func(q string) bool {
		ch, err := conn.Channel()
		require.NoError(t, err)
		defer ch.Close()
		_, err = ch.QueueDeclarePassive(q, true, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return false
		}
		require.NoError(t, err)
		return true
	}
	use := func(opts ...bus.Option) {
		b := openBackend(t, testConfig(url), opts...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		msgs, err := b.Subscriber.Subscribe(ctx, topic)
		require.NoError(t, err)
		require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "e", Type: "t", Source: "s"}))
		bustest.Receive(t, ctx, msgs).Ack()
		require.NoError(t, b.Close())
	}

	use(bus.WithTemporaryGroup("cli-tmp"))
	assert.False(t, exists("cli-tmp."+topic), "the temporary group's queue is left behind")
	assert.False(t, exists("cli-tmp."+topic+".dead"), "its dead-letter queue is left behind")

	use(bus.WithConsumerGroup("service"))
	assert.True(t, exists("service."+topic))
	assert.True(t, exists("service."+topic+".dead"))
}

// The dead-letter queue is bounded like the group's queue (queue.max_length_bytes), dropping its
// oldest dead letters when full: a queue the bus declares never grows without limit. RabbitMQ
// accepts a redeclaration only with the same arguments, so declaring it with the expected ones
// checks what the driver declared.
func TestDeadLetterQueueIsBounded(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	cfg := testConfig(url)
	b := openBackend(t, cfg)
	topic := uniqueTopic("deadbound")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)

	dead := cfg.ConsumerGroup + "." + topic + ".dead"
	_, err = rawChannel(t, url).QueueDeclare(dead, true, false, false, false, amqp.Table{
		"x-queue-type":       "quorum",
		"x-delivery-limit":   cfg.Queue.DeliveryLimit,
		"x-max-length-bytes": cfg.Queue.MaxLengthBytes,
		"x-overflow":         "drop-head",
	})
	assert.NoError(t, err, "%s was declared with other arguments than a bounded dead-letter queue's", dead)
}
