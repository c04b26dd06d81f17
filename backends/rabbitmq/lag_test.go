package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestLagIsQueueDepth: lag is the group's queue's ready messages: 0 before the queue exists,
// the published count once the publisher declared it, and 0 again once consumed and acked.
// A stream queue cannot tell: ErrNotSupported.
func TestLagIsQueueDepth(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("lag")
	cfg := testConfig(url)
	cfg.ConsumerGroup = "lms"
	cfg.Consumer.Prefetch = 1
	cfg.Publisher.DeclareGroups = []string{"lms"} // its queue keeps messages from the first publish
	b := openBackend(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	parts, err := b.Lag(ctx, topic)
	require.NoError(t, err)
	assert.Equal(t, []bus.PartitionLag{{Topic: topic, Group: "lms", Partition: "lms." + topic, Lag: 0, Pending: -1}}, parts)

	for range 3 {
		require.NoError(t, b.Publish(ctx, topic, bus.Event{Type: "t", Source: "s"}))
	}
	parts, err = b.Lag(ctx, topic)
	require.NoError(t, err)
	assert.EqualValues(t, 3, parts[0].Lag, "the publisher declares the group's queue (publisher.declare_groups)")

	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	for range 3 {
		bustest.Receive(t, ctx, msgs).Ack()
	}
	require.Eventually(t, func() bool {
		p, err := b.Lag(ctx, topic)
		return err == nil && p[0].Lag == 0
	}, 10*time.Second, 20*time.Millisecond)

	scfg := testConfig(url)
	scfg.ConsumerGroup = "lms"
	scfg.Queue.Type = rabbitmq.QueueStream
	sb := openBackend(t, scfg)
	_, err = sb.Lag(ctx, topic)
	assert.ErrorIs(t, err, bus.ErrNotSupported)
}
