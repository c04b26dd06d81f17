package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// replayBackend is a backend as the replay and status tests use it: the CLI's config file, and
// a service's bus in a consumer group that starts at the oldest message.
type replayBackend struct {
	name, topic, cfg string
	service          func(t *testing.T, ctx context.Context, group string) *bus.Bus
}

func replayBackends(t *testing.T, test func(t *testing.T, be replayBackend)) {
	t.Run("kafka", func(t *testing.T) {
		addr := brokertest.StartKafka(t, 3)
		test(t, replayBackend{name: "kafka", topic: "enrollments-" + watermill.NewShortUUID(),
			cfg: writeFile(t, "eventbus.yaml", brokertest.KafkaYAML(addr)+"  topics: {partitions: 3}\n"), service: kafkaService(addr)})
	})
	t.Run("redis", func(t *testing.T) {
		brokertest.Redis(t)
		test(t, replayBackend{name: "redis", topic: brokertest.RedisStream(t, "eventbus-test-replay"),
			cfg: writeFile(t, "eventbus.yaml", redisReplayYAML), service: redisService})
	})
}

// redisReplayYAML has a short block time: a stopped consumer stops counting as live after 5
// of them.
const redisReplayYAML = "backend: redis\nredis:\n  addrs: [" + brokertest.RedisAddr + "]\n  consumer: {block_time: 100ms}\n"

// kafkaService opens a service's bus in group on the broker at addr (3 partitions a topic,
// the pipelined subscriber), starting at the oldest record.
func kafkaService(addr string) func(t *testing.T, ctx context.Context, group string) *bus.Bus {
	return func(t *testing.T, ctx context.Context, group string) *bus.Bus {
		b, err := bus.OpenConfig(ctx, "kafka", brokertest.KafkaConfig(addr, group, 16, 3), bus.WithLogger(quietLogger()), bus.WithStartFrom(bus.StartOldest))
		require.NoError(t, err)
		return b
	}
}

// redisService opens a service's bus in group on the shared Redis, starting at the oldest entry.
func redisService(t *testing.T, ctx context.Context, group string) *bus.Bus {
	cfg := redis.DefaultConfig()
	cfg.Addrs = []string{brokertest.RedisAddr}
	cfg.ConsumerGroup = group
	cfg.Consumer.BlockTime = 100 * time.Millisecond
	b, err := bus.OpenConfig(ctx, "redis", cfg, bus.WithLogger(quietLogger()), bus.WithStartFrom(bus.StartOldest))
	require.NoError(t, err)
	return b
}

// handled runs a service in group on be.topic that acks every message and records its id, until
// stop is called (which closes the bus, committing what was acked).
func handled(t *testing.T, ctx context.Context, be replayBackend, group string) (b *bus.Bus, ids func() []string, stop func()) {
	b = be.service(t, ctx, group)
	msgs, err := b.Subscriber.Subscribe(ctx, be.topic)
	require.NoError(t, err)
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range msgs {
			mu.Lock()
			seen = append(seen, msg.UUID)
			mu.Unlock()
			msg.Ack()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			require.NoError(t, b.Close())
			<-done
		})
	}
	t.Cleanup(stop)
	return b, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}, stop
}

// caughtUp reports whether the group's lag and pending are 0 on every partition or stream.
func caughtUp(ctx context.Context, b *bus.Bus, topic string) bool {
	lag, err := b.Lag(ctx, topic)
	if err != nil || len(lag) == 0 {
		return false
	}
	for _, l := range lag {
		if l.Lag != 0 || l.Pending > 0 {
			return false
		}
	}
	return true
}

func publishN(t *testing.T, ctx context.Context, b *bus.Bus, topic, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	evs := make([]bus.Event, 0, n)
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i)
		ids = append(ids, id)
		evs = append(evs, bus.Event{ID: id, Type: "enrollment.created.v1", Source: "lms", Key: id, Data: i})
	}
	for len(evs) > 0 {
		k := min(len(evs), 100)
		require.NoError(t, b.Publish(ctx, topic, evs[:k]...))
		evs = evs[k:]
	}
	return ids
}

func statusJSON(t *testing.T, ctx context.Context, cfg string, args ...string) []topicReport {
	t.Helper()
	code, out, errOut := cli(t, ctx, "", append([]string{"status", "--config", cfg, "--json"}, args...)...)
	require.Equal(t, 0, code, errOut)
	var reports []topicReport
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue // no topics
		}
		var r topicReport
		require.NoError(t, json.Unmarshal([]byte(l), &r), l)
		reports = append(reports, r)
	}
	return reports
}

// 1,000 events handled by a group; replay --since the time between the two halves; exactly
// the later half is handled again. Refused while the group has a live member; --dry-run
// changes nothing.
func TestReplaySinceTheMiddleHandlesTheLaterHalfAgain(t *testing.T) {
	replayBackends(t, func(t *testing.T, be replayBackend) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		const group = "notifier"
		b, ids, stop := handled(t, ctx, be, group)
		first := publishN(t, ctx, b, be.topic, "first", 500)
		// Brokers stamp in milliseconds: the middle is a millisecond after the first half's
		// publish returned, and the second half is published from that millisecond on.
		middle := time.Now().Add(time.Millisecond).Truncate(time.Millisecond)
		for time.Now().Before(middle) {
			time.Sleep(100 * time.Microsecond)
		}
		second := publishN(t, ctx, b, be.topic, "second", 500)
		require.Eventually(t, func() bool { return len(ids()) >= 1000 && caughtUp(ctx, b, be.topic) }, time.Minute, 50*time.Millisecond)
		require.ElementsMatch(t, append(first, second...), ids())

		replay := func(extra ...string) (int, string, string) {
			return cli(t, ctx, "", append([]string{"replay", "--config", be.cfg, "--topic", be.topic, "--group", group, "--since", middle.Format(time.RFC3339Nano)}, extra...)...)
		}
		// The service is still subscribed: its group has a live member.
		code, _, errOut := replay()
		require.Equal(t, 1, code, errOut)
		assert.Contains(t, errOut, "live members")
		assert.Contains(t, errOut, "stop")
		stop()

		// Once the member is gone (Kafka: it left the group; Redis: 5 block times without a
		// read), a dry run shows where the group would go and moves nothing.
		var dry string
		require.Eventually(t, func() bool {
			code, out, _ := replay("--dry-run", "--json")
			dry = out
			return code == 0
		}, 30*time.Second, 100*time.Millisecond)
		var positions []bus.PartitionPosition
		for _, l := range strings.Split(strings.TrimSpace(dry), "\n") {
			var p bus.PartitionPosition
			require.NoError(t, json.Unmarshal([]byte(l), &p), l)
			positions = append(positions, p)
		}
		if be.name == "kafka" {
			require.Len(t, positions, 3)
		} else {
			require.Len(t, positions, 1)
		}
		for _, p := range positions {
			assert.NotEqual(t, p.From, p.To, "partition %s", p.Partition)
		}
		for _, r := range statusJSON(t, ctx, be.cfg, "--topic", be.topic, "--group", group) {
			require.Len(t, r.Groups, 1)
			assert.Equal(t, int64(0), r.Groups[0].Lag, "a dry run moved the group")
		}

		code, out, errOut := replay()
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "PARTITION")
		for _, p := range positions {
			assert.Contains(t, out, p.To)
		}
		// Kafka counts the replayed records as lag; Redis cannot count a group's lag after
		// XGROUP SETID until it has read to the end again: unknown, not the stream's length.
		want := map[string][]int64{"kafka": {500}, "redis": {-1, 500}}[be.name]
		r := statusJSON(t, ctx, be.cfg, "--topic", be.topic, "--group", group)
		assert.Contains(t, want, r[0].Groups[0].Lag)

		b2, ids2, _ := handled(t, ctx, be, group)
		require.Eventually(t, func() bool { return len(ids2()) >= 500 && caughtUp(ctx, b2, be.topic) }, time.Minute, 50*time.Millisecond)
		assert.ElementsMatch(t, second, ids2(), "exactly the later half is handled again")
	})
}

// RabbitMQ keeps no group position to move: replay is refused with ErrNotSupported and a
// sentence saying why and what to do instead, for classic/quorum and stream queues.
func TestReplayOnRabbitMQIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := rabbitmqConfig(t)
	code, _, errOut := cli(t, ctx, "", "replay", "--config", cfg, "--topic", "orders", "--group", "billing", "--since", "1h")
	require.Equal(t, 1, code)
	assert.Contains(t, errOut, "not supported")
	assert.Contains(t, errOut, "deletes a message once it is acked")
	assert.Contains(t, errOut, "queue.type: stream")

	cfg = rabbitmqConfig(t, "  queue: {type: stream}\n")
	code, _, errOut = cli(t, ctx, "", "replay", "--config", cfg, "--topic", "orders", "--group", "billing", "--to", "12", "--dry-run")
	require.Equal(t, 1, code)
	assert.Contains(t, errOut, "not supported")
	assert.Contains(t, errOut, "keep no server-side offset")
	assert.Contains(t, errOut, "consume --from")
}

func TestReplayRejectsBadFlags(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--topic", "t", "--group", "g"}, "give --since"},
		{[]string{"--topic", "t", "--group", "g", "--since", "1h", "--to", "0:1"}, "give one of them"},
		{[]string{"--topic", "t", "--group", "g", "--since", "yesterday"}, "want an RFC 3339 time"},
		{[]string{"--topic", "t", "--group", "g", "--since", "-5m"}, "must be positive"},
		{[]string{"--topic", "t", "--since", "1h"}, `"group" not set`},
	} {
		code, _, errOut := cli(t, ctx, "", append([]string{"replay"}, c.args...)...)
		assert.Equal(t, 1, code, c.args)
		assert.Contains(t, errOut, c.want, c.args)
	}
}

// Replay of a topic the broker does not have fails saying so, and creates nothing (a Kafka
// metadata request for one topic would auto-create it).
func TestReplayOfAnUnknownTopicCreatesNothing(t *testing.T) {
	replayBackends(t, func(t *testing.T, be replayBackend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		missing := be.topic + "-missing"
		code, _, errOut := cli(t, ctx, "", "replay", "--config", be.cfg, "--topic", missing, "--group", "g", "--since", "1h", "--dry-run")
		require.Equal(t, 1, code)
		assert.Contains(t, errOut, "no such topic")
		for _, r := range statusJSON(t, ctx, be.cfg) {
			assert.NotEqual(t, missing, r.Topic, "replay created the topic")
		}
	})
}
