package middleware_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// TestParkSurvivesARestart: with router.poison.store: redis, a key parked by one consumer stays
// parked for the next one, in a new process state (a new bus and router: what a restart or a
// rebalance gives), until its poisoned message is redriven and succeeds. With the memory store
// the second consumer would handle the key's later messages while its earlier one is broken.
func TestParkSurvivesARestart(t *testing.T) {
	c := brokertest.Redis(t)
	addr := startBroker(t, 1)
	topic, group := "park-restart-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	cfg := orderingConfig(4)
	cfg.Poison.OnPoisoned = middleware.Park
	cfg.Poison.Store = "redis"
	cfg.Poison.Redis.KeyPrefix = "eventbus-test:park:" + watermill.NewShortUUID() + ":"
	t.Cleanup(func() {
		keys, _ := c.Keys(context.Background(), cfg.Poison.Redis.KeyPrefix+"*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	ev := func(id string) bus.Event { return bus.Event{ID: id, Type: "t", Source: "s", Key: "a"} }

	// The first consumer: a-1 fails for good, a-2 is parked behind it. Then it stops.
	first := openBus(t, kafkaConfig(addr, group, 16, 1))
	r1, err := router.New(first, cfg)
	require.NoError(t, err)
	r1.AddConsumerHandler("h", topic, first.Subscriber, func(m *message.Message) error {
		if m.UUID == "a-1" {
			return middleware.Permanent(errors.New("bad a-1"))
		}
		return nil
	})
	runRouter(t, r1)
	require.NoError(t, first.Publish(context.Background(), topic, ev("a-1"), ev("a-2")))
	poisoned := readTopic(t, addr, topic+".poison", 2)
	require.Equal(t, "a-2", poisoned[1].UUID)
	require.NoError(t, r1.Close())
	require.NoError(t, first.Close())

	// The next consumer in the group knows nothing of a-1 in memory: a-3 must still be parked.
	second := openBus(t, kafkaConfig(addr, group, 16, 1))
	r2, err := router.New(second, cfg)
	require.NoError(t, err)
	seen := newCalls()
	r2.AddConsumerHandler("h", topic, second.Subscriber, func(m *message.Message) error {
		seen.add(m)
		return nil // fixed by now
	})
	runRouter(t, r2)
	require.NoError(t, second.Publish(context.Background(), topic, ev("a-3")))
	third := readTopic(t, addr, topic+".poison", 3)[2]
	assert.Equal(t, "a-3", third.UUID)
	p, err := middleware.ParseProvenance(third)
	require.NoError(t, err)
	assert.Equal(t, middleware.ReasonParked, p.Reason, "a-3 after a restart")
	assert.Equal(t, "a-1", p.ParkedBehind)
	assert.Equal(t, 0, seen.len(), "the restarted consumer handled a message of a parked key")

	// Redriving a-1, which now succeeds, unparks the key: a-4 is handled after it.
	prov, err := middleware.ParseProvenance(poisoned[0])
	require.NoError(t, err)
	require.NoError(t, second.Publisher.Publish(topic, middleware.Redriven(poisoned[0], prov)))
	require.NoError(t, second.Publish(context.Background(), topic, ev("a-4")))
	seen.wait(t, 2)
	got := seen.snapshot()
	assert.Equal(t, []string{"a-1", "a-4"}, []string{got[0].UUID, got[1].UUID})
	keys, err := c.Keys(context.Background(), cfg.Poison.Redis.KeyPrefix+"*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys, "an unparked key's state is deleted")
}
