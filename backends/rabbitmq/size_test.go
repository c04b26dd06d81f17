package rabbitmq_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPublishRefusesOversizeMessage: a message over publisher.max_message_bytes fails with
// bus.ErrTooLarge, naming the message, its size, the limit and the key, and never reaches the
// queue; one exactly at the limit goes through.
func TestPublishRefusesOversizeMessage(t *testing.T) {
	const limit = 4096
	cfg := testConfig(brokertest.RabbitMQRunURL(t))
	cfg.Publisher.MaxMessageBytes = limit
	b := openBackend(t, cfg)
	assert.Equal(t, limit, b.Capabilities().MaxMessageBytes)
	topic := uniqueTopic("sized")
	require.NoError(t, b.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic))

	err := b.Publish(context.Background(), topic, bustest.SizedEvent(t, "big", limit+1, nil))
	require.ErrorIs(t, err, bus.ErrTooLarge)
	for _, want := range []string{"message big", topic, "4097 bytes", "limit of 4096", "rabbitmq.publisher.max_message_bytes"} {
		assert.Contains(t, err.Error(), want)
	}
	fits := bustest.SizedEvent(t, "fits", limit, nil)
	require.NoError(t, b.Publish(context.Background(), topic, fits))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "fits", m.UUID, "the refused message reached the queue")
	assert.True(t, bytes.Equal(fits.Data.([]byte), m.Payload))
	m.Ack()
}
