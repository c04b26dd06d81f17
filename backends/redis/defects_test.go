package redis_test

// Tests for the four defects of the bare watermill-redisstream adapter that this backend fixes.
// Each scenario runs against this backend; with -redis.adapter it runs against the bare adapter
// instead (publisher and subscriber of watermill-redisstream v1.4.5 with their defaults), where
// it is expected to fail: that is how each test was checked to detect its defect.

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

var againstAdapter = flag.Bool("redis.adapter", false,
	"run the defect tests against the bare watermill-redisstream adapter instead of this backend (they should fail)")

// pubSub is a publisher and subscriber under test, ours or the bare adapter's.
type pubSub struct {
	pub message.Publisher
	sub message.Subscriber
	our *redisbackend.Subscriber // nil for the adapter
}

func newPubSub(t testing.TB, cfg *redisbackend.Config) pubSub {
	t.Helper()
	if !*againstAdapter {
		b, sub := openBus(t, cfg)
		return pubSub{pub: b.Publisher, sub: b.Subscriber, our: sub}
	}
	client := func() goredis.UniversalClient {
		return goredis.NewClient(&goredis.Options{Addr: cfg.Addrs[0]})
	}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client()}, nil)
	require.NoError(t, err)
	consumer := cfg.Consumer.ConsumerName
	if consumer == "" {
		consumer = watermill.NewShortUUID()
	}
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client: client(), ConsumerGroup: cfg.ConsumerGroup, Consumer: consumer,
		BlockTime: cfg.Consumer.BlockTime, ClaimInterval: cfg.Consumer.ClaimInterval, MaxIdleTime: cfg.Consumer.MinIdle,
		CheckConsumersInterval: cfg.Consumer.ClaimInterval, ConsumerTimeout: cfg.Consumer.ConsumerTimeout,
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close(); _ = pub.Close() })
	return pubSub{pub: pub, sub: sub}
}

// tally counts what a consumer handled, by message UUID.
type tally struct {
	mu      sync.Mutex
	handled map[string]int
	changed chan struct{}
}

func newTally() *tally { return &tally{handled: map[string]int{}, changed: make(chan struct{}, 1)} }

func (c *tally) add(uuid string) {
	c.mu.Lock()
	c.handled[uuid]++
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// has reports how many of ids were handled at least once.
func (c *tally) has(ids []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range ids {
		if c.handled[id] > 0 {
			n++
		}
	}
	return n
}

func (c *tally) duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := 0
	for _, n := range c.handled {
		d += n - 1
	}
	return d
}

// consume acks and counts every message until ctx ends; gate, when not nil, is waited on
// before each message is handled.
func consume(ctx context.Context, msgs <-chan *message.Message, c *tally, gate <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if gate != nil {
				select {
				case <-gate:
				case <-ctx.Done():
					return
				}
			}
			c.add(m.UUID)
			m.Ack()
		}
	}
}

func publishN(t testing.TB, pub message.Publisher, topic, tag string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = tag + "-" + strconv.Itoa(i)
		require.NoError(t, pub.Publish(topic, message.NewMessage(ids[i], []byte(strconv.Itoa(i)))))
	}
	return ids
}

func waitHandled(t testing.TB, c *tally, ids []string, within time.Duration, what string) {
	t.Helper()
	deadline := time.After(within)
	for c.has(ids) < len(ids) {
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("%s: %d of %d messages handled within %s; %d lost", what, c.has(ids), len(ids), within, len(ids)-c.has(ids))
		}
	}
}

// Defect 1: a restart that loses the data removes the stream and its group. The bare adapter
// then loops on NOGROUP while the next XADD recreates the stream without a group, so nothing
// published after the restart is ever consumed, silently. Ours recreates the group, consumes
// everything published after the restart, and reports the backlog it lost.
func TestDefect1DataLosingRestart(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{})
	cfg := testConfig(srv.Addr())
	cfg.Consumer.ReadBatch = 20
	losses := recordLosses(cfg)
	ps := newPubSub(t, cfg)
	topic := "orders"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := ps.sub.Subscribe(ctx, topic)
	require.NoError(t, err)

	// Before the restart: 300 published, the handler lets 100 through and then blocks, so
	// the group has a backlog when the data is lost.
	got := newTally()
	gate := make(chan struct{}, 1000)
	for range 100 {
		gate <- struct{}{}
	}
	go consume(ctx, msgs, got, gate)
	before := publishN(t, ps.pub, topic, "before", 300)
	waitHandled(t, got, before[:100], 10*time.Second, "before the restart")
	if ps.our != nil {
		// Wait for the subscriber to have observed the whole backlog, as it would in a
		// service running for longer than one claim interval.
		c := srv.Client()
		defer c.Close()
		require.Eventually(t, func() bool {
			groups, err := c.XInfoGroups(context.Background(), topic).Result()
			if err != nil || len(groups) != 1 {
				return false
			}
			for _, l := range ps.our.Lags() {
				if l.Known && l.Entries == groups[0].Lag && time.Since(l.ObservedAt) < time.Second {
					return true
				}
			}
			return false
		}, 5*time.Second, 20*time.Millisecond)
	}

	srv.Restart() // SHUTDOWN NOSAVE: the stream, its group and the backlog are gone
	for range 1000 {
		gate <- struct{}{}
	}
	after := publishN(t, ps.pub, topic, "after", 500)
	waitHandled(t, got, after, 20*time.Second, "after the restart")

	if ps.our == nil {
		return
	}
	handledBefore := got.has(before)
	lostBefore := len(before) - handledBefore
	t.Logf("published 300 before the restart, handled %d of them (the rest lost with the data); 500 after, all handled; %d duplicates",
		handledBefore, got.duplicates())
	require.Eventually(t, func() bool { return len(losses()) == 1 }, 5*time.Second, 10*time.Millisecond)
	d := losses()[0]
	require.ErrorIs(t, d.Err, redisbackend.ErrDataLoss)
	assert.Contains(t, d.Err.Error(), "vanished")
	assert.True(t, d.LostKnown)
	assert.Positive(t, lostBefore, "the scenario must lose a backlog")
	assert.Equal(t, int64(lostBefore), d.Lost, "the reported backlog is what the group had not read")
	st := ps.our.Stats()
	assert.Equal(t, uint64(1), st.GroupsRecreated)
	assert.Equal(t, uint64(lostBefore), st.LostEntries)
}

// Defect 2: the bare adapter reads one entry per XREADGROUP and acks one per XACK. Ours reads
// ReadBatch entries per call and acks in batches, still only after each handler acked; counted
// with the server's command statistics on a private server.
func TestDefect2BatchedReadsAndAcks(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{})
	cfg := testConfig(srv.Addr())
	cfg.Consumer.ReadBatch = 100
	ps := newPubSub(t, cfg)
	topic := "batched"
	c := srv.Client()
	defer c.Close()
	if sub, ok := ps.sub.(message.SubscribeInitializer); ok {
		require.NoError(t, sub.SubscribeInitialize(topic))
	} else {
		require.NoError(t, c.XGroupCreateMkStream(context.Background(), topic, cfg.ConsumerGroup, "0").Err())
	}
	const n = 1000
	ids := publishN(t, ps.pub, topic, "m", n)
	require.NoError(t, c.ConfigResetStat(context.Background()).Err())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := ps.sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	got := newTally()
	go consume(ctx, msgs, got, nil)
	waitHandled(t, got, ids, 30*time.Second, "batched read")
	require.Eventually(t, func() bool { return pendingCount(t, c, topic, cfg.ConsumerGroup) == 0 }, 5*time.Second, 10*time.Millisecond)

	reads, acks := commandCalls(t, c, "xreadgroup"), commandCalls(t, c, "xack")
	t.Logf("%d entries: %d XREADGROUP calls, %d XACK calls", n, reads, acks)
	assert.LessOrEqual(t, reads, int64(n/cfg.Consumer.ReadBatch+10), "entries must be read in batches of read_batch")
	assert.LessOrEqual(t, acks, int64(n/2), "acks must be sent in batches")
}

func commandCalls(t testing.TB, c *goredis.Client, cmd string) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
			n, err := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	return 0
}

// Defect 3: closing the subscriber right after Ack() must not lose the XACK. Each round
// receives one message, acks it, closes at once, and checks nothing is left pending.
func TestDefect3CloseFlushesLastAck(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "close"
	cfg := testConfig(brokertest.RedisAddr)
	const rounds = 20
	lost := 0
	for i := range rounds {
		ps := newPubSub(t, cfg)
		require.NoError(t, ps.pub.Publish(topic, message.NewMessage(fmt.Sprintf("m%d", i), []byte("x"))))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		msgs, err := ps.sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		m := bustest.Receive(t, ctx, msgs)
		m.Ack()
		require.NoError(t, ps.sub.Close())
		cancel()
		if n := pendingCount(t, c, topic, cfg.ConsumerGroup); n != 0 {
			lost++
		}
		// Clear what a failed round left, so that every round starts clean.
		pend, err := c.XPendingExt(context.Background(), &goredis.XPendingExtArgs{Stream: topic, Group: cfg.ConsumerGroup, Start: "-", End: "+", Count: 100}).Result()
		require.NoError(t, err)
		for _, p := range pend {
			c.XAck(context.Background(), topic, cfg.ConsumerGroup, p.ID)
		}
	}
	assert.Zero(t, lost, "%d of %d rounds left the acked message pending after Close", lost, rounds)
}

// Defect 4: a consumer that died with entries pending; another consumer must claim all of them,
// and the dead consumer may be removed from the group only once nothing is pending on it.
func TestDefect4DeadConsumerPendingClaimed(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{})
	c := srv.Client()
	defer c.Close()
	cfg := testConfig(srv.Addr())
	cfg.Consumer.MinIdle = 300 * time.Millisecond
	cfg.Consumer.ConsumerTimeout = 600 * time.Millisecond
	cfg.Consumer.ClaimBatch = 10 // several XAUTOCLAIM pages
	topic := "claims"
	ps := newPubSub(t, cfg)
	require.NoError(t, c.XGroupCreateMkStream(context.Background(), topic, cfg.ConsumerGroup, "0").Err())

	// The dead consumer took 150 entries and never acked them; a second one left nothing
	// pending and is simply gone.
	dead := publishN(t, ps.pub, topic, "dead", 150)
	res, err := c.XReadGroup(context.Background(), &goredis.XReadGroupArgs{
		Group: cfg.ConsumerGroup, Consumer: "crashed-pod", Streams: []string{topic, ">"}, Count: 150, Block: -1,
	}).Result()
	require.NoError(t, err)
	require.Len(t, res[0].Messages, 150)
	require.NoError(t, c.XGroupCreateConsumer(context.Background(), topic, cfg.ConsumerGroup, "idle-pod").Err())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := ps.sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	got := newTally()
	go consume(ctx, msgs, got, nil)
	live := publishN(t, ps.pub, topic, "live", 150)

	waitHandled(t, got, live, 20*time.Second, "entries published to the live consumer")
	waitHandled(t, got, dead, 20*time.Second, "entries left pending by the crashed consumer")
	require.Eventually(t, func() bool { return pendingCount(t, c, topic, cfg.ConsumerGroup) == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		cs, err := c.XInfoConsumers(context.Background(), topic, cfg.ConsumerGroup).Result()
		require.NoError(t, err)
		for _, x := range cs {
			if x.Name == "crashed-pod" || x.Name == "idle-pod" {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "consumers that are gone and have nothing pending are removed")
	t.Logf("handled all 300; %d duplicates", got.duplicates())
	if ps.our != nil {
		assert.GreaterOrEqual(t, ps.our.Stats().Claimed, uint64(150))
	}
}
