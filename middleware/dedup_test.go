package middleware_test

import (
	"context"
	"fmt"
	"sync/atomic"
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

// claimStores are the two DedupClaimers, each new for its test.
func claimStores(t *testing.T) map[string]func(t *testing.T) middleware.DedupClaimer {
	return map[string]func(t *testing.T) middleware.DedupClaimer{
		"memory": func(*testing.T) middleware.DedupClaimer { return middleware.NewMemoryStore(100) },
		"redis":  func(t *testing.T) middleware.DedupClaimer { s, _ := redisStore(t); return s },
	}
}

func TestStoreClaims(t *testing.T) {
	for name, open := range claimStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			claim := func(key string, ttl time.Duration) middleware.ClaimState {
				t.Helper()
				st, err := s.Claim(ctx, key, ttl)
				require.NoError(t, err)
				return st
			}
			assert.Equal(t, middleware.Claimed, claim("k1", time.Hour))
			assert.Equal(t, middleware.Busy, claim("k1", time.Hour), "a second copy finds the claim")
			seen, err := s.Seen(ctx, "k1")
			require.NoError(t, err)
			assert.False(t, seen, "a claim is not a mark")
			require.NoError(t, s.Mark(ctx, "k1", time.Hour))
			assert.Equal(t, middleware.Done, claim("k1", time.Hour), "the mark replaces the claim")

			assert.Equal(t, middleware.Claimed, claim("k2", time.Hour))
			require.NoError(t, s.Release(ctx, "k2"))
			assert.Equal(t, middleware.Claimed, claim("k2", time.Hour), "a released claim can be taken")

			// A claim that is not extended expires (its consumer died); one that is, lasts.
			assert.Equal(t, middleware.Claimed, claim("k3", 50*time.Millisecond))
			require.Eventually(t, func() bool { return claim("k3", time.Hour) == middleware.Claimed }, 5*time.Second, 10*time.Millisecond)
			assert.Equal(t, middleware.Claimed, claim("k4", 300*time.Millisecond))
			require.NoError(t, s.Extend(ctx, "k4", time.Hour))
			time.Sleep(400 * time.Millisecond) // past the first ttl, to show the extension holds
			assert.Equal(t, middleware.Busy, claim("k4", time.Hour))
		})
	}
}

// Two Redis stores are two consumers: neither releases nor extends the other's claim.
func TestRedisClaimsAreTheirOwners(t *testing.T) {
	a, prefix := redisStore(t)
	b := redisstore.DedupFromClient(redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}), prefix, time.Second)
	ctx := context.Background()
	st, err := a.Claim(ctx, "k", time.Hour)
	require.NoError(t, err)
	require.Equal(t, middleware.Claimed, st)
	require.NoError(t, b.Release(ctx, "k"))
	require.NoError(t, b.Extend(ctx, "k", time.Millisecond))
	st, err = b.Claim(ctx, "k", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, middleware.Busy, st, "b released and shortened nothing of a's")
}

// Two copies of an event handled at the same moment (a redelivery racing the original after a
// rebalance): the second waits for the first and is skipped when it succeeded, handled when
// it failed, and handled once the claim expires when its consumer died holding it.
func TestDedupCopiesInFlight(t *testing.T) {
	for name, open := range claimStores(t) {
		t.Run(name, func(t *testing.T) {
			run := func(t *testing.T, firstFails bool) int32 {
				store := open(t)
				mw, err := middleware.NewDedup(store, time.Hour, 200*time.Millisecond, nil)
				require.NoError(t, err)
				var calls atomic.Int32
				entered, release := make(chan struct{}), make(chan struct{})
				h := mw(func(m *message.Message) ([]*message.Message, error) {
					if calls.Add(1) == 1 {
						close(entered)
						<-release // held past several claim ttls: the claim must be extended
						if firstFails {
							return nil, fmt.Errorf("first copy failed")
						}
					}
					return nil, nil
				})
				first := make(chan error, 1)
				go func() { _, err := h(message.NewMessage("evt-1", nil)); first <- err }()
				<-entered
				second := make(chan error, 1)
				go func() { _, err := h(message.NewMessage("evt-1", nil)); second <- err }()
				select {
				case err := <-second:
					t.Fatalf("the second copy ended while the first was handled (err %v)", err)
				case <-time.After(700 * time.Millisecond):
				}
				close(release)
				err1 := <-first
				require.NoError(t, <-second)
				if firstFails {
					require.Error(t, err1)
				} else {
					require.NoError(t, err1)
				}
				return calls.Load()
			}
			t.Run("first succeeds", func(t *testing.T) { assert.EqualValues(t, 1, run(t, false), "the second copy is skipped") })
			t.Run("first fails", func(t *testing.T) { assert.EqualValues(t, 2, run(t, true), "the second copy is handled") })
			t.Run("first consumer died", func(t *testing.T) {
				store := open(t)
				mw, err := middleware.NewDedup(store, time.Hour, 200*time.Millisecond, nil)
				require.NoError(t, err)
				// A claim nobody extends or releases: what a consumer killed mid-handler leaves.
				st, err := store.Claim(context.Background(), "//evt-2", 200*time.Millisecond)
				require.NoError(t, err)
				require.Equal(t, middleware.Claimed, st)
				var calls atomic.Int32
				_, err = mw(func(*message.Message) ([]*message.Message, error) { calls.Add(1); return nil, nil })(message.NewMessage("evt-2", nil))
				require.NoError(t, err)
				assert.EqualValues(t, 1, calls.Load(), "handled once the dead consumer's claim expired")
			})
			t.Run("drain while waiting", func(t *testing.T) {
				store := open(t)
				mw, err := middleware.NewDedup(store, time.Hour, time.Hour, nil)
				require.NoError(t, err)
				st, err := store.Claim(context.Background(), "//evt-3", time.Hour)
				require.NoError(t, err)
				require.Equal(t, middleware.Claimed, st)
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				msg := message.NewMessage("evt-3", nil)
				msg.SetContext(ctx)
				var calls atomic.Int32
				_, err = mw(func(*message.Message) ([]*message.Message, error) { calls.Add(1); return nil, nil })(msg)
				require.ErrorIs(t, err, context.DeadlineExceeded, "nacked, to come back: not acked unhandled")
				assert.Zero(t, calls.Load())
			})
		})
	}
}
