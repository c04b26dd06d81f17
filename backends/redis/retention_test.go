package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// The tests in this file hold the publisher to issue 15: by default no stream grows without
// limit. Stream ids are millisecond timestamps, so entries "published" days ago are added with
// ids from then instead of waiting.

// addAt adds n entries to stream with ids from at (one millisecond apart) and returns their ids.
func addAt(t *testing.T, c *goredis.Client, stream string, at time.Time, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		id, err := c.XAdd(context.Background(), &goredis.XAddArgs{
			Stream: stream, ID: fmt.Sprintf("%d-0", at.UnixMilli()+int64(i)), Values: map[string]any{"payload": i},
		}).Result()
		require.NoError(t, err)
		ids[i] = id
	}
	return ids
}

// With the default retention (7 days, publisher.retention) a publish trims the entries older
// than that; newer ones stay. Trimming is approximate (~): Redis drops whole nodes of
// stream-node-max-entries (100) entries, so 200 old entries make two nodes that go entirely.
func TestDefaultRetentionTrimsOldEntries(t *testing.T) {
	c := brokertest.Redis(t)
	stream := prefix(t, c) + "retained"
	cfg := testConfig(brokertest.RedisAddr)
	require.Equal(t, 7*24*time.Hour, redisbackend.DefaultConfig().Publisher.Retention)
	maxEntries, err := c.ConfigGet(context.Background(), "stream-node-max-entries").Result()
	require.NoError(t, err)
	require.Equal(t, "100", maxEntries["stream-node-max-entries"], "the test counts on nodes of 100 entries")

	old := addAt(t, c, stream, time.Now().Add(-8*24*time.Hour), 200)
	recent := addAt(t, c, stream, time.Now().Add(-6*24*time.Hour), 10)
	b, _ := openBus(t, cfg)
	require.NoError(t, b.Publisher.Publish(stream, message.NewMessage("new", []byte("{}"))))

	entries, err := c.XRange(context.Background(), stream, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, entries, len(recent)+1, "the %d entries older than 7 days are trimmed, the rest kept", len(old))
	assert.Equal(t, recent[0], entries[0].ID)
}

// retention: 0 in the file keeps every entry, for a topic of its own (publisher.topics) or for
// all.
func TestRetentionZeroKeepsEverythingWhenAsked(t *testing.T) {
	c := brokertest.Redis(t)
	p := prefix(t, c)
	keep, trim := p+"audit", p+"clicks"
	cfg := loadRedisSection(t, fmt.Sprintf("backend: redis\nredis:\n  addrs: [%s]\n  publisher:\n    topics:\n      %q: {retention: 0s}\n", brokertest.RedisAddr, keep))
	require.Equal(t, 7*24*time.Hour, cfg.Publisher.Retention)
	old := time.Now().Add(-30 * 24 * time.Hour)
	addAt(t, c, keep, old, 200)
	addAt(t, c, trim, old, 200)
	b, _ := openBus(t, cfg)
	for _, stream := range []string{keep, trim} {
		require.NoError(t, b.Publisher.Publish(stream, message.NewMessage("new", []byte("{}"))))
	}
	assert.Equal(t, int64(201), c.XLen(context.Background(), keep).Val(), "publisher.topics.%s.retention: 0 keeps everything", keep)
	assert.Equal(t, int64(1), c.XLen(context.Background(), trim).Val(), "other topics keep the default retention")
}

func loadRedisSection(t *testing.T, yaml string) *redisbackend.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	require.NoError(t, err)
	bc, err := bus.BackendConfig(cfg)
	require.NoError(t, err)
	rc := bc.(*redisbackend.Config)
	tc := testConfig(brokertest.RedisAddr)
	tc.Publisher = rc.Publisher
	return tc
}

// A lagging consumer that read entries and stopped before acking them finds them trimmed by the
// retention once they are older than it: the subscription that claims them reports them as
// lost (a DataLoss naming their ids), never drops them silently.
func TestLaggingConsumerReportsEntriesTrimmedByRetention(t *testing.T) {
	c := brokertest.Redis(t)
	stream := prefix(t, c) + "lagging"
	cfg := testConfig(brokertest.RedisAddr)
	cfg.Publisher.Retention = time.Hour // short, against entries added two hours ago
	cfg.Consumer.MinIdle = 200 * time.Millisecond
	losses := recordLosses(cfg)
	require.NoError(t, c.XGroupCreateMkStream(context.Background(), stream, cfg.ConsumerGroup, "0").Err())
	addAt(t, c, stream, time.Now().Add(-2*time.Hour), 150)
	res, err := c.XReadGroup(context.Background(), &goredis.XReadGroupArgs{
		Group: cfg.ConsumerGroup, Consumer: "stopped-pod", Streams: []string{stream, ">"}, Count: 5, Block: -1,
	}).Result()
	require.NoError(t, err)
	require.Len(t, res[0].Messages, 5)
	pendingIDs := make([]string, 5)
	for i, m := range res[0].Messages {
		pendingIDs[i] = m.ID
	}

	b, _ := openBus(t, cfg)
	require.NoError(t, b.Publisher.Publish(stream, message.NewMessage("new", []byte("{}"))))
	require.Less(t, c.XLen(context.Background(), stream).Val(), int64(151), "the first node of old entries is trimmed")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, stream)
	require.NoError(t, err)
	go consume(ctx, msgs, newTally(), nil)
	require.Eventually(t, func() bool { return len(losses()) > 0 }, 10*time.Second, 10*time.Millisecond)
	d := losses()[0]
	require.ErrorIs(t, d.Err, redisbackend.ErrDataLoss)
	assert.Contains(t, d.Err.Error(), "trimmed or deleted")
	assert.ElementsMatch(t, pendingIDs, d.IDs)
	assert.Equal(t, int64(5), d.Lost)
}

// Bad retention settings fail at their line, per topic too.
func TestRetentionConfigErrors(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`backend: redis
redis:
  publisher:
    retention: -1h
    max_len: -5
    topics:
      audit: {retention: 500us, max_len: -1}
`))
	require.NoError(t, err)
	_, err = bus.BackendConfig(cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	msg := err.Error()
	for _, want := range []string{
		"eventbus.yaml:4: redis.publisher.retention: must not be negative",
		"eventbus.yaml:5: redis.publisher.max_len: must not be negative",
		"redis.publisher.topics.audit.retention: 500µs: must be at least 1ms",
		"redis.publisher.topics.audit.max_len: must not be negative",
	} {
		assert.Contains(t, msg, want)
	}
}
