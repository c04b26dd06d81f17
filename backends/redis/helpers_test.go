package redis_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// prefix returns a key prefix of the test's own on the shared server, and deletes every key
// under it when the test ends.
func prefix(t testing.TB, c *goredis.Client) string {
	t.Helper()
	p := "eventbus-test:" + watermill.NewShortUUID() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return p
}

// testConfig returns settings that make a test's timings short.
func testConfig(addr string) *redisbackend.Config {
	cfg := redisbackend.DefaultConfig()
	cfg.Addrs = []string{addr}
	cfg.ConsumerGroup = "group-" + watermill.NewShortUUID()
	cfg.Consumer.BlockTime = 100 * time.Millisecond
	cfg.Consumer.ClaimInterval = 100 * time.Millisecond
	cfg.Consumer.MinIdle = 2 * time.Second
	cfg.Consumer.ConsumerTimeout = 0
	cfg.Consumer.DrainTimeout = 2 * time.Second
	cfg.Consumer.NackDelay = 10 * time.Millisecond
	cfg.DialTimeout = time.Second
	cfg.ReadTimeout = time.Second
	cfg.WriteTimeout = time.Second
	return cfg
}

func openBus(t testing.TB, cfg *redisbackend.Config, opts ...bus.Option) (*bus.Bus, *redisbackend.Subscriber) {
	t.Helper()
	b := brokertest.OpenBus(t, redisbackend.Name, cfg, opts...)
	var sub *redisbackend.Subscriber
	require.True(t, b.As(&sub))
	return b, sub
}

// recordLosses makes cfg report data losses to a list and returns a function that reads it.
func recordLosses(cfg *redisbackend.Config) func() []redisbackend.DataLoss {
	var (
		mu     sync.Mutex
		losses []redisbackend.DataLoss
	)
	cfg.OnDataLoss = func(d redisbackend.DataLoss) { mu.Lock(); losses = append(losses, d); mu.Unlock() }
	return func() []redisbackend.DataLoss {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(losses)
	}
}
