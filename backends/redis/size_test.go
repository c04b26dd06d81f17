package redis_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPublishRefusesOversizeMessage: a message over publisher.max_message_bytes fails with
// bus.ErrTooLarge, naming the message, its size, the limit and the key, and adds no entry; one
// exactly at the limit goes through.
func TestPublishRefusesOversizeMessage(t *testing.T) {
	const limit = 4096
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "sized"
	cfg := testConfig(brokertest.RedisAddr)
	cfg.Publisher.MaxMessageBytes = limit
	b, _ := openBus(t, cfg)
	assert.Equal(t, limit, b.Capabilities().MaxMessageBytes)

	err := b.Publish(context.Background(), topic, bustest.SizedEvent(t, "big", limit+1, nil))
	require.ErrorIs(t, err, bus.ErrTooLarge)
	for _, want := range []string{"message big", topic, "4097 bytes", "limit of 4096", "redis.publisher.max_message_bytes"} {
		assert.Contains(t, err.Error(), want)
	}
	n, err := c.XLen(context.Background(), topic).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the refused message reached the stream")

	fits := bustest.SizedEvent(t, "fits", limit, nil)
	require.NoError(t, b.Publish(context.Background(), topic, fits))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "fits", m.UUID)
	assert.True(t, bytes.Equal(fits.Data.([]byte), m.Payload), "payload of %d bytes, want %d", len(m.Payload), len(fits.Data.([]byte)))
	m.Ack()
}
