package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// A restarted instance (same consumer name) takes back its own pending entries at once, without
// waiting MinIdle for them to be claimed.
func TestRestartedConsumerReadsOwnPendingFirst(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "own"
	cfg := testConfig(brokertest.RedisAddr)
	cfg.Consumer.ConsumerName = "pod-1"
	cfg.Consumer.MinIdle = time.Hour // no claiming in this test
	cfg.Consumer.DrainTimeout = 100 * time.Millisecond
	first, _ := openBus(t, cfg)
	ids := publishN(t, first.Publisher, topic, "m", 3)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := first.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	assert.Equal(t, ids[0], bustest.Receive(t, ctx, msgs).UUID) // handed out, never acked
	require.NoError(t, first.Close())
	require.Equal(t, int64(3), pendingCount(t, c, topic, cfg.ConsumerGroup), "all three stay pending on pod-1")

	second, _ := openBus(t, cfg)
	msgs, err = second.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	for _, id := range ids {
		m := bustest.Receive(t, ctx, msgs)
		assert.Equal(t, id, m.UUID, "own pending entries come back first, in order")
		m.Ack()
	}
	require.Eventually(t, func() bool { return pendingCount(t, c, topic, cfg.ConsumerGroup) == 0 }, 5*time.Second, 10*time.Millisecond)
}

// With max_in_flight 1 a nacked message is handed out again before the next one.
func TestNackRedeliversBeforeNext(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "nack"
	b, sub := openBus(t, testConfig(brokertest.RedisAddr))
	ids := publishN(t, b.Publisher, topic, "m", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	m := bustest.Receive(t, ctx, msgs)
	require.Equal(t, ids[0], m.UUID)
	m.Nack()
	again := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, ids[0], again.UUID)
	pos, ok := bus.PositionOf(again)
	require.True(t, ok, "a redelivered message keeps its position")
	assert.NotEmpty(t, pos.Coordinates)
	again.Ack()
	next := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, ids[1], next.UUID)
	next.Ack()
	assert.Equal(t, uint64(1), sub.Stats().Nacked)
}

// max_in_flight bounds how many messages are out unacked; acking one lets the next out.
func TestPipeliningWindow(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "window"
	cfg := testConfig(brokertest.RedisAddr)
	cfg.Consumer.MaxInFlight = 4
	b, _ := openBus(t, cfg, bus.Require(bus.Pipelining))
	assert.True(t, b.Capabilities().Pipelining)
	publishN(t, b.Publisher, topic, "m", 6)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	var out []*message.Message
	for range 4 {
		out = append(out, bustest.Receive(t, ctx, msgs))
	}
	assert.Equal(t, []string{"m-0", "m-1", "m-2", "m-3"}, []string{out[0].UUID, out[1].UUID, out[2].UUID, out[3].UUID})
	select {
	case m := <-msgs:
		t.Fatalf("a fifth message %s was handed out with four unacked", m.UUID)
	case <-time.After(300 * time.Millisecond): // asserting that nothing arrives needs a wait
	}
	// Acks are independent: acking the last one, not the first, frees a slot.
	out[3].Ack()
	fifth := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "m-4", fifth.UUID)
	fifth.Ack()
	out[0].Ack()
	out[1].Ack()
	out[2].Ack()
}

func TestStartFromNewestAndTime(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "start"
	old, err := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, ID: "1000-0", Values: []any{"id", "old", "event_data", ""}}).Result()
	require.NoError(t, err)
	require.Equal(t, "1000-0", old)
	_, err = c.XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, ID: "2000-0", Values: []any{"id", "at-2s", "event_data", ""}}).Result()
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// newest: only entries added after the group was created.
	cfg := testConfig(brokertest.RedisAddr)
	b, _ := openBus(t, cfg, bus.WithStartFrom(bus.StartNewest))
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	_, err = c.XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, Values: []any{"id", "new", "event_data", ""}}).Result()
	require.NoError(t, err)
	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "new", m.UUID)
	m.Ack()

	// a time: the first entry at or after it.
	cfg2 := testConfig(brokertest.RedisAddr)
	cfg2.Consumer.StartFrom = time.UnixMilli(2000).UTC().Format(time.RFC3339Nano)
	b2, _ := openBus(t, cfg2)
	msgs2, err := b2.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	m = bustest.Receive(t, ctx, msgs2)
	assert.Equal(t, "at-2s", m.UUID)
	m.Ack()

	// Rewind moves an existing group back, here to the very start.
	var client goredis.UniversalClient
	require.True(t, b2.As(&client))
	require.NoError(t, redisbackend.Rewind(ctx, client, topic, cfg2.ConsumerGroup, "0"))
	m = bustest.Receive(t, ctx, msgs2)
	assert.Equal(t, "new", m.UUID, "entries buffered before the rewind still come")
	m.Ack()
	m = bustest.Receive(t, ctx, msgs2)
	assert.Equal(t, "old", m.UUID)
	m.Ack()
}

func TestCapabilitiesFollowServerPersistence(t *testing.T) {
	c := brokertest.Redis(t)
	_ = prefix(t, c)
	b, _ := openBus(t, testConfig(brokertest.RedisAddr), bus.Require(bus.ConsumerGroups, bus.Replay, bus.ReplayByTime))
	caps := b.Capabilities()
	assert.False(t, caps.Persistence, "the shared server keeps nothing on disk")
	assert.Contains(t, caps.Notes[bus.Persistence], "appendonly is off")
	assert.False(t, caps.PerKeyOrdering)
	assert.False(t, caps.Pipelining)
	assert.Equal(t, 1<<20, caps.MaxMessageBytes, "redis.publisher.max_message_bytes's default")

	_, err := bus.OpenConfig(context.Background(), redisbackend.Name, testConfig(brokertest.RedisAddr), bus.WithLogger(brokertest.Logger()), bus.Require(bus.Persistence))
	require.ErrorIs(t, err, bus.ErrNotSupported)
	assert.Contains(t, err.Error(), "backend redis: persistence (none: appendonly is off")

	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{Persist: true})
	pb, _ := openBus(t, testConfig(srv.Addr()), bus.Require(bus.Persistence))
	assert.Contains(t, pb.Capabilities().Notes[bus.Persistence], "appendonly yes, appendfsync always")

	var client goredis.UniversalClient
	require.True(t, pb.As(&client))
	require.NoError(t, client.Ping(context.Background()).Err())
	var addrs []string
	require.True(t, pb.As(&addrs))
	assert.Equal(t, []string{srv.Addr()}, addrs)
}

func TestOpenFailsClearlyWhenRedisIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("dials a closed port; skipped with -short")
	}
	cfg := testConfig("127.0.0.1:" + strconv.Itoa(brokertest.FreePort(t)))
	_, err := bus.OpenConfig(context.Background(), redisbackend.Name, cfg, bus.WithLogger(brokertest.Logger()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to redis ["+cfg.Addrs[0]+"]")
}

// Entries a stopped instance left pending under the same consumer name, idle long enough to be
// claimed, are both this consumer's own pending entries (read from id 0) and claimable
// (XAUTOCLAIM): each must still be handed out once. Before the fix both paths delivered them
// (12 entries, 17 deliveries), two copies at once with max_in_flight > 1.
func TestOwnIdlePendingDeliveredOnce(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "own-idle"
	cfg := testConfig(brokertest.RedisAddr)
	cfg.Consumer.ConsumerName = "pod-1"
	cfg.Consumer.MinIdle = 200 * time.Millisecond
	cfg.Consumer.ClaimInterval = 50 * time.Millisecond
	cfg.Consumer.MaxInFlight = 32
	cfg.Consumer.ReadBatch = 1 // several pending reads, so that they overlap the first claim
	const n = 12
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		require.NoError(t, c.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: map[string]any{"payload": strconv.Itoa(i)}}).Err())
	}
	// The stopped instance: pod-1 read every entry and never acked.
	require.NoError(t, c.XGroupCreate(ctx, topic, cfg.ConsumerGroup, "0").Err())
	require.NoError(t, c.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: cfg.ConsumerGroup, Consumer: "pod-1", Streams: []string{topic, ">"}, Count: n, Block: -1,
	}).Err())
	require.Eventually(t, func() bool {
		p, err := c.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: topic, Group: cfg.ConsumerGroup, Start: "-", End: "+", Count: n}).Result()
		if err != nil || len(p) != n {
			return false
		}
		for _, e := range p {
			if e.Idle < 2*cfg.Consumer.MinIdle {
				return false
			}
		}
		return true
	}, 5*time.Second, 20*time.Millisecond, "entries idle long enough to be claimable")

	b, sub := openBus(t, cfg)
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	seen := map[string]int{}
	var out []*message.Message // held unacked, so that a second copy would be out at the same time
	for len(seen) < n {
		m := bustest.Receive(t, ctx, msgs)
		pos, ok := bus.PositionOf(m)
		require.True(t, ok)
		seen[pos.Coordinates]++
		out = append(out, m)
	}
	// Several claim ticks pass with every entry held: a copy would be handed out meanwhile.
	quiet := time.After(10 * cfg.Consumer.ClaimInterval)
wait:
	for {
		select {
		case m := <-msgs:
			pos, _ := bus.PositionOf(m)
			seen[pos.Coordinates]++
			out = append(out, m)
		case <-quiet:
			break wait
		}
	}
	for _, m := range out {
		m.Ack()
	}
	assert.Equal(t, n, len(out), "deliveries of %d entries, per entry id: %v", n, seen)
	require.Eventually(t, func() bool { return pendingCount(t, c, topic, cfg.ConsumerGroup) == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, uint64(n), sub.Stats().Delivered)
}

// A temporary group (bus.WithTemporaryGroup: the CLI's consume, the demo) is destroyed on Close
// on every stream it read; a stream that reading a missing topic created, still empty, goes
// with it. A stream with entries stays, and so do other groups.
func TestTemporaryGroupRemovedOnClose(t *testing.T) {
	c := brokertest.Redis(t)
	p := prefix(t, c)
	withData, missing := p+"with-data", p+"missing"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.XAdd(ctx, &goredis.XAddArgs{Stream: withData, Values: map[string]any{"payload": "x"}}).Err())
	require.NoError(t, c.XGroupCreate(ctx, withData, "service", "0").Err())

	cfg := testConfig(brokertest.RedisAddr)
	b, _ := openBus(t, cfg, bus.WithTemporaryGroup("eventbus-cli-tmp"))
	for _, topic := range []string{withData, missing} {
		_, err := b.Subscriber.Subscribe(ctx, topic)
		require.NoError(t, err)
	}
	groups := func(stream string) []string {
		gs, err := c.XInfoGroups(ctx, stream).Result()
		require.NoError(t, err)
		var names []string
		for _, g := range gs {
			names = append(names, g.Name)
		}
		return names
	}
	require.ElementsMatch(t, []string{"service", "eventbus-cli-tmp"}, groups(withData))
	require.Equal(t, int64(1), c.Exists(ctx, missing).Val(), "subscribing created the stream")
	require.NoError(t, b.Close())

	assert.Equal(t, []string{"service"}, groups(withData), "the temporary group is gone, the service's stays")
	assert.Equal(t, int64(1), c.XLen(ctx, withData).Val(), "entries stay")
	assert.Equal(t, int64(0), c.Exists(ctx, missing).Val(), "the empty stream the subscription created is gone")

	// A service's group is never removed.
	cfg.ConsumerGroup = "service"
	b2, _ := openBus(t, cfg)
	_, err := b2.Subscriber.Subscribe(ctx, withData)
	require.NoError(t, err)
	require.NoError(t, b2.Close())
	assert.Equal(t, []string{"service"}, groups(withData))
}
