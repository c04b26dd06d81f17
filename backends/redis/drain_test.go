package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// When a subscription's context ends (a router stopping), the message in a handler keeps a live
// context through the drain and its ack reaches Redis; the entries read ahead and never handed
// out are left idle for min_idle, so that another consumer's next claim takes them instead of
// waiting min_idle for them.
func TestEndedSubscriptionDrainsAndReleasesReadAhead(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "drain"
	cfg := testConfig(brokertest.RedisAddr)
	cfg.Consumer.MinIdle = time.Hour // nothing reaches it by waiting in this test
	cfg.Consumer.ClaimInterval = time.Minute
	cfg.Consumer.DrainTimeout = 10 * time.Second
	b, sub := openBus(t, cfg)
	ids := publishN(t, b.Publisher, topic, "m", 5)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	m := bustest.Receive(t, context.Background(), msgs)
	require.Equal(t, ids[0], m.UUID)
	cancel()
	for range msgs { // closed once no more messages are handed out
	}
	require.NoError(t, m.Context().Err(), "the handler's context ended with the subscription, not with the drain")
	m.Ack()
	require.NoError(t, b.Close())
	assert.Error(t, m.Context().Err(), "the message's context ends once its verdict is in")

	pending, err := c.XPendingExt(context.Background(), &goredis.XPendingExtArgs{
		Stream: topic, Group: cfg.ConsumerGroup, Start: "-", End: "+", Count: 10,
	}).Result()
	require.NoError(t, err)
	require.Len(t, pending, 4, "the message acked during the drain is no longer pending; the four read ahead are")
	for i, p := range pending {
		assert.Equal(t, ids[i+1], idOf(t, c, topic, p.ID))
		assert.GreaterOrEqual(t, p.Idle, cfg.Consumer.MinIdle, "%s is not claimable at once: idle %s", p.ID, p.Idle)
		assert.Equal(t, int64(1), p.RetryCount, "releasing does not count as a delivery")
	}
	assert.Equal(t, uint64(4), sub.Stats().Released)
}

// idOf returns the event id (the message UUID) of stream entry id.
func idOf(t *testing.T, c *goredis.Client, topic, id string) string {
	t.Helper()
	entries, err := c.XRange(context.Background(), topic, id, id).Result()
	require.NoError(t, err)
	require.Len(t, entries, 1)
	v, _ := entries[0].Values[redisbackend.FieldID].(string)
	return v
}
