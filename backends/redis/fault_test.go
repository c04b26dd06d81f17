package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// publishWhile publishes n messages tagged tag from a few goroutines, retrying each until the
// broker takes it (it may be restarting), and calls during(i) after the i-th publish so that a
// test can break the broker at a known point. It returns the ids in publish order.
func publishWhile(t testing.TB, pub message.Publisher, topic, tag string, n int, during func(i int)) []string {
	t.Helper()
	ids := make([]string, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for attempt := 0; ; attempt++ {
					err := pub.Publish(topic, message.NewMessage(ids[i], []byte("x")))
					if err == nil {
						break
					}
					if attempt > 200 {
						t.Errorf("publish %s: %v", ids[i], err)
						return
					}
					time.Sleep(25 * time.Millisecond) // the broker is restarting; nothing to wait on
				}
			}
		}()
	}
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%d", tag, i)
	}
	for i := range n {
		next <- i
		if during != nil {
			during(i)
		}
	}
	close(next)
	wg.Wait()
	return ids
}

// A restart that keeps the data (append-only file) loses nothing: every message published is
// handled, through two restarts while publishing and consuming go on.
func TestRestartKeepsData(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{Persist: true})
	cfg := testConfig(srv.Addr())
	ps := newPubSub(t, cfg)
	topic := "kept"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := ps.sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	got := newTally()
	go consume(ctx, msgs, got, nil)

	const n = 1500
	ids := publishWhile(t, ps.pub, topic, "m", n, func(i int) {
		if i == n/3 || i == n/2 {
			srv.Restart()
		}
	})
	waitHandled(t, got, ids, 30*time.Second, "through two restarts with data kept")
	t.Logf("published %d, handled %d, lost 0, duplicates %d", n, got.has(ids), got.duplicates())
	if ps.our != nil {
		st := ps.our.Stats()
		assert.Zero(t, st.GroupsRecreated, "the group survived the restarts")
		assert.Zero(t, st.LostEntries)
	}
}

// FLUSHALL in the middle of a stream: everything published after it is handled, and the
// backlog lost with it is reported, as a lower bound.
func TestFlushAllMidStream(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{})
	c := srv.Client()
	defer c.Close()
	cfg := testConfig(srv.Addr())
	cfg.Consumer.ReadBatch = 10
	losses := recordLosses(cfg)
	ps := newPubSub(t, cfg)
	topic := "flushed"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := ps.sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	got := newTally()
	// A handler slower than the publisher, so that a backlog builds up before the flush.
	slow := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case slow <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	go consume(ctx, msgs, got, slow)

	const n = 600
	var flushedAt int
	ids := publishWhile(t, ps.pub, topic, "m", n, func(i int) {
		if i != n/2 {
			return
		}
		// Flush once the subscriber has seen a backlog, as it would have in a service that
		// ran for longer than one claim interval.
		require.Eventually(t, func() bool {
			if ps.our == nil {
				return true
			}
			for _, l := range ps.our.Lags() {
				if l.Known && l.Entries > 50 {
					return true
				}
			}
			return false
		}, 5*time.Second, 5*time.Millisecond)
		require.NoError(t, c.FlushAll(context.Background()).Err())
		flushedAt = i
	})
	// The publishers run concurrently, so a few messages around the flush may have gone
	// either way; everything published well after it must be handled.
	after := ids[flushedAt+8:]
	waitHandled(t, got, after, 30*time.Second, "after FLUSHALL")
	handledBefore := got.has(ids[:flushedAt])
	t.Logf("published %d before FLUSHALL, handled %d of them; %d after, all handled", flushedAt, handledBefore, len(after))

	if ps.our == nil {
		return
	}
	require.Eventually(t, func() bool { return len(losses()) >= 1 }, 5*time.Second, 10*time.Millisecond)
	d := losses()[0]
	require.ErrorIs(t, d.Err, redisbackend.ErrDataLoss)
	require.True(t, d.LostKnown)
	assert.Positive(t, d.Lost, "the backlog observed before the flush is reported")
	assert.LessOrEqual(t, d.Lost, int64(flushedAt+8-handledBefore), "with one consumer the report is a lower bound, never more than was lost")
	assert.Equal(t, uint64(1), ps.our.Stats().GroupsRecreated)
}

// helperEnv makes the test binary act as a consumer process for TestConsumerKilledWithPending
// (see TestMain): "addr,group,topic".
const helperEnv = "EVENTBUS_REDIS_TEST_CONSUMER"

func TestMain(m *testing.M) {
	brokertest.ChildMain(m, helperEnv, func(spec string) int {
		err := runKilledConsumer(spec) // returns only on an error: the parent kills the process
		fmt.Fprintln(os.Stderr, "helper consumer:", err)
		return 1
	})
}

// runKilledConsumer reads entries as consumer "killed-pod", never acks them, says "holding"
// once five are in its handlers, and waits to be killed.
func runKilledConsumer(spec string) error {
	parts := strings.SplitN(spec, ",", 3)
	if len(parts) != 3 {
		return fmt.Errorf("%s=%q: want addr,group,topic", helperEnv, spec)
	}
	cfg := testConfig(parts[0])
	cfg.ConsumerGroup = parts[1]
	cfg.Consumer.ConsumerName = "killed-pod"
	cfg.Consumer.ReadBatch = 50
	cfg.Consumer.MaxInFlight = 5
	b, err := bus.OpenConfig(context.Background(), redisbackend.Name, cfg, bus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	msgs, err := b.Subscriber.Subscribe(context.Background(), parts[2])
	if err != nil {
		return err
	}
	for range 5 {
		<-msgs // handed out, never acked: the handlers are "running" when the process dies
	}
	fmt.Println("holding")
	select {}
}

// A consumer process killed (SIGKILL) while it holds entries, buffered and in its handlers:
// another consumer of the group claims every one of them once they are idle for MinIdle.
func TestConsumerKilledWithPending(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{})
	c := srv.Client()
	defer c.Close()
	cfg := testConfig(srv.Addr())
	cfg.Consumer.MinIdle = 500 * time.Millisecond
	topic := "killed"
	ps := newPubSub(t, cfg)
	require.NoError(t, c.XGroupCreateMkStream(context.Background(), topic, cfg.ConsumerGroup, "0").Err())
	ids := publishN(t, ps.pub, topic, "m", 200)

	holding := make(chan struct{}, 1)
	child, eof := brokertest.StartChild(t, helperEnv, srv.Addr()+","+cfg.ConsumerGroup+","+topic, func(line string) {
		if line == "holding" {
			select {
			case holding <- struct{}{}:
			default:
			}
		}
	})
	select {
	case <-holding:
	case <-eof:
		t.Fatal("the consumer process did not start")
	}
	pendingOnKilled := int64(0)
	require.Eventually(t, func() bool {
		p, err := c.XPending(context.Background(), topic, cfg.ConsumerGroup).Result()
		require.NoError(t, err)
		pendingOnKilled = p.Consumers["killed-pod"]
		return pendingOnKilled >= 5
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, child.Process.Kill())
	<-eof
	_ = child.Wait()
	t.Logf("consumer process killed holding %d pending entries", pendingOnKilled)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := ps.sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	got := newTally()
	go consume(ctx, msgs, got, nil)
	waitHandled(t, got, ids, 20*time.Second, "after the consumer was killed")
	require.Eventually(t, func() bool { return pendingCount(t, c, topic, cfg.ConsumerGroup) == 0 }, 5*time.Second, 10*time.Millisecond)
	if ps.our != nil {
		assert.GreaterOrEqual(t, ps.our.Stats().Claimed, uint64(pendingOnKilled))
	}
	t.Logf("published 200, handled all, lost 0, duplicates %d", got.duplicates())
}

// publisher.max_len trims the stream on publish; pending entries of a stopped consumer that were trimmed
// before anyone acked them are reported with their ids when claimed, never dropped silently.
func TestTrimmedPendingEntriesAreReported(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{})
	c := srv.Client()
	defer c.Close()
	cfg := testConfig(srv.Addr())
	cfg.Consumer.MinIdle = 200 * time.Millisecond
	cfg.Publisher.MaxLen = 10
	losses := recordLosses(cfg)
	ps := newPubSub(t, cfg)
	topic := "trimmed"
	require.NoError(t, c.XGroupCreateMkStream(context.Background(), topic, cfg.ConsumerGroup, "0").Err())
	publishN(t, ps.pub, topic, "old", 5)
	res, err := c.XReadGroup(context.Background(), &goredis.XReadGroupArgs{
		Group: cfg.ConsumerGroup, Consumer: "stopped-pod", Streams: []string{topic, ">"}, Count: 5, Block: -1,
	}).Result()
	require.NoError(t, err)
	require.Len(t, res[0].Messages, 5)
	publishN(t, ps.pub, topic, "new", 1000) // max_len ~10 trims the five pending ones away
	n, err := c.XLen(context.Background(), topic).Result()
	require.NoError(t, err)
	assert.Less(t, n, int64(1000), "the stream is trimmed (approximately) to max_len")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := ps.sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	go consume(ctx, msgs, newTally(), nil)
	require.Eventually(t, func() bool { return len(losses()) > 0 }, 10*time.Second, 10*time.Millisecond)
	d := losses()[0]
	require.ErrorIs(t, d.Err, redisbackend.ErrDataLoss)
	assert.Contains(t, d.Err.Error(), "trimmed or deleted")
	assert.Len(t, d.IDs, 5)
	assert.Equal(t, int64(5), d.Lost)
	require.Eventually(t, func() bool { return pendingCount(t, c, topic, cfg.ConsumerGroup) == 0 }, 5*time.Second, 10*time.Millisecond)
}
