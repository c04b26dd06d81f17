package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestNackLeavesTheEntryPending reads the broker's state after a nack: the entry must still be
// pending in the group, so that a crash after the nack redelivers it. An XACK on the nack path
// would pass every delivery test (the subscriber hands the copy out again from memory) and lose
// the entry on the next crash.
func TestNackLeavesTheEntryPending(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "nack"
	cfg := testConfig(brokertest.RedisAddr)
	b, _ := openBus(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "n-1", Type: "t", Source: "s"}))

	first := bustest.Receive(t, ctx, msgs)
	first.Nack()
	again := bustest.Receive(t, ctx, msgs)
	require.Equal(t, "n-1", again.UUID)
	// Close without a verdict on the copy: whatever the subscriber flushes on the way out, the
	// nack must not have acked the entry.
	require.NoError(t, b.Close())

	pending, err := c.XPending(context.Background(), topic, cfg.ConsumerGroup).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), pending.Count, "the nacked entry must stay pending in group %s", cfg.ConsumerGroup)
}
