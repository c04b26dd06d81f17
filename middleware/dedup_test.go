package middleware_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/middleware/redisstore"
	"github.com/eventbus-go/eventbus/router"
)

func TestMemoryStoreExpiresAndStaysBounded(t *testing.T) {
	ctx := context.Background()
	s := middleware.NewMemoryStore(3)
	// Seen within the window (an hour: no machine is that slow), forgotten after it (a
	// nanosecond: over by the time it is asked).
	require.NoError(t, s.Mark(ctx, "a", time.Hour))
	seen, err := s.Seen(ctx, "a")
	require.NoError(t, err)
	assert.True(t, seen)
	require.NoError(t, s.Mark(ctx, "gone", time.Nanosecond))
	require.Eventually(t, func() bool { seen, _ := s.Seen(ctx, "gone"); return !seen }, 5*time.Second, 5*time.Millisecond, "the window ended")

	for _, k := range []string{"b", "c", "d", "e"} { // "a" is the oldest of the full store
		require.NoError(t, s.Mark(ctx, k, time.Hour))
	}
	assert.LessOrEqual(t, s.Len(), 3)
	seen, _ = s.Seen(ctx, "b")
	assert.False(t, seen, "the oldest id goes first when the store is full")
	seen, _ = s.Seen(ctx, "e")
	assert.True(t, seen)
}

// redisStore opens a store on the shared Redis with a key prefix of its own, and deletes the
// keys it wrote when the test ends.
func redisStore(t *testing.T) (*redisstore.Dedup, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Redis server at 127.0.0.1:6379; run without -short")
	}
	cfg := redisstore.DefaultConfig()
	cfg.KeyPrefix = "eventbus-test:dedup:" + watermill.NewShortUUID() + ":"
	s, err := redisstore.OpenDedup(context.Background(), cfg)
	require.NoError(t, err, "the shared Redis at 127.0.0.1:6379 must be running (scripts/brokers.sh ensure)")
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
		defer c.Close()
		ctx := context.Background()
		keys, err := c.Keys(ctx, cfg.KeyPrefix+"*").Result()
		if err == nil && len(keys) > 0 {
			_ = c.Del(ctx, keys...).Err()
		}
		_ = s.Close()
	})
	return s, cfg.KeyPrefix
}

func TestRedisStore(t *testing.T) {
	s, prefix := redisStore(t)
	ctx := context.Background()
	seen, err := s.Seen(ctx, "g/h/evt-1")
	require.NoError(t, err)
	assert.False(t, seen)
	require.NoError(t, s.Mark(ctx, "g/h/evt-1", time.Hour))
	seen, err = s.Seen(ctx, "g/h/evt-1")
	require.NoError(t, err)
	assert.True(t, seen)

	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	ttl, err := c.PTTL(ctx, prefix+"g/h/evt-1").Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 59*time.Minute, "the id expires with the window, set on the key")
	require.NoError(t, s.Mark(ctx, "g/h/evt-2", time.Millisecond))
	require.Eventually(t, func() bool { seen, err := s.Seen(ctx, "g/h/evt-2"); return err == nil && !seen }, 5*time.Second, 20*time.Millisecond)
}

// TestDedupAcrossInstancesWithRedis: two consumers of one group share the Redis store, so an
// event delivered to the second after the first handled it is skipped; another group handles
// it; an event that failed into the poison queue is not recorded, so its redrive is handled.
func TestDedupAcrossInstancesWithRedis(t *testing.T) {
	store, _ := redisStore(t)
	addr := startBroker(t, 1)
	topic, group := "dedup-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	cfg := fastConfig()
	cfg.Dedup.Enabled = true
	cfg.Dedup.Window = time.Minute

	consume := func(group string, fail bool) (*calls, *router.Router) {
		b := openBus(t, kafkaConfig(addr, group, 0, 1))
		r, err := router.New(b, cfg, router.WithDedupStore(store))
		require.NoError(t, err)
		seen := newCalls()
		r.AddConsumerHandler("h", topic, b.Subscriber, func(m *message.Message) error {
			seen.add(m)
			if fail {
				return middleware.Permanent(fmt.Errorf("rejected %s", m.UUID))
			}
			return nil
		})
		runRouter(t, r)
		return seen, r
	}

	pub := openBus(t, kafkaConfig(addr, "publisher", 0, 1))
	require.NoError(t, pub.Publish(context.Background(), topic, bus.Event{ID: "evt-1", Type: "t", Source: "s"}))
	first, r1 := consume(group, false)
	first.wait(t, 1)
	require.Eventually(t, brokertest.KafkaCommittedIs(addr, group, topic, 1), 15*time.Second, 50*time.Millisecond)
	require.NoError(t, r1.Close())

	// The same event again (a producer retry, say), now to another instance of the group.
	require.NoError(t, pub.Publish(context.Background(), topic, bus.Event{ID: "evt-1", Type: "t", Source: "s"}, bus.Event{ID: "evt-2", Type: "t", Source: "s"}))
	second, _ := consume(group, false)
	second.wait(t, 1)
	require.Eventually(t, brokertest.KafkaCommittedIs(addr, group, topic, 3), 15*time.Second, 50*time.Millisecond)
	got := second.snapshot()
	require.Len(t, got, 1, "the duplicate of evt-1 reached the handler")
	assert.Equal(t, "evt-2", got[0].UUID)

	// Another group gets every event (once: its own dedup skips the second evt-1 too).
	other, _ := consume("other-"+watermill.NewShortUUID(), false)
	other.wait(t, 2)
	ids := []string{}
	for _, m := range other.snapshot() {
		ids = append(ids, m.UUID)
	}
	assert.ElementsMatch(t, []string{"evt-1", "evt-2"}, ids)

	// A poisoned event is not recorded as handled: both copies of evt-1 are tried and poisoned.
	failing, _ := consume("failing-"+watermill.NewShortUUID(), true)
	failing.wait(t, 3)
	poisoned := readTopic(t, addr, topic+".poison", 3)
	ids = ids[:0]
	for _, m := range poisoned {
		ids = append(ids, m.UUID)
	}
	assert.ElementsMatch(t, []string{"evt-1", "evt-1", "evt-2"}, ids, "each delivery tried and poisoned, the duplicate too")
	assert.Equal(t, map[int32]int64{0: 3}, partitionEnds(t, addr, topic+".poison"), "no more poison records than deliveries")
}
