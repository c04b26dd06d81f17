package redis_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// BenchmarkSubscribe compares the subscriber's throughput (read, hand out, handler acks, XACK)
// with a raw reference on the same server in the same run: XREADGROUP COUNT 1000 and one XACK
// per batch, with no decoding and no handler. Both consume the same entries, written in the
// bus's wire format. It reports msgs/s for each and the median ratio of back-to-back runs; run
// it with
//
//	go test -run '^$' -bench BenchmarkSubscribe -benchtime 10x ./backends/redis/
//
// Each iteration consumes `entries` entries with each reader; the subscriber runs with its
// defaults except read_batch, measured at the default (100) and at the reference's 1000.
func BenchmarkSubscribe(b *testing.B) {
	for _, batch := range []int{100, 500, 1000} {
		b.Run("read_batch="+strconv.Itoa(batch), func(b *testing.B) { benchmarkSubscribe(b, batch) })
	}
}

func benchmarkSubscribe(b *testing.B, readBatch int) {
	c := brokertest.Redis(b)
	p := prefix(b, c)
	const entries = 20000
	ctx := context.Background()

	var raw, ours time.Duration
	var ratios []float64
	for i := 0; b.Loop(); i++ {
		rawStream := fill(b, c, p+"raw-"+strconv.Itoa(i), entries)
		r := consumeRaw(b, c, rawStream, entries)
		c.Del(ctx, rawStream)

		ourStream := fill(b, c, p+"ours-"+strconv.Itoa(i), entries)
		o := consumeOurs(b, ourStream, entries, readBatch)
		c.Del(ctx, ourStream)

		raw, ours = raw+r, ours+o
		ratios = append(ratios, r.Seconds()/o.Seconds())
	}
	n := float64(b.N * entries)
	b.ReportMetric(n/raw.Seconds(), "raw-msgs/s")
	b.ReportMetric(n/ours.Seconds(), "subscriber-msgs/s")
	// The median of the ratios of back-to-back runs is steadier than the ratio of totals when
	// other work shares the machine.
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
}

// fill writes n entries as bus.Publish would (one event per entry, every attribute a field),
// pipelined so that filling takes little of the benchmark's wall time.
func fill(b *testing.B, c *goredis.Client, stream string, n int) string {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	ctx := context.Background()
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00")
	for start := 0; start < n; start += 1000 {
		pipe := c.Pipeline()
		for i := start; i < min(start+1000, n); i++ {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{
				"id", watermill.NewUUID(), "type", "org.openedx.learning.course.enrollment.created.v1",
				"source", "openedx/lms/web", "time", now, "specversion", "1.0",
				"datacontenttype", "application/json", "partitionkey", "user-" + strconv.Itoa(i%50),
				"event_data", `{"user":"user-042","seq":` + strconv.Itoa(i) + `,"course":"course-v1:edX+DemoX+Demo_Course"}`,
			}})
		}
		_, err := pipe.Exec(ctx)
		require.NoError(b, err)
	}
	require.NoError(b, c.XGroupCreate(ctx, stream, "g", "0").Err())
	return stream
}

func consumeRaw(b *testing.B, c *goredis.Client, stream string, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	for got := 0; got < n; {
		res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "raw", Streams: []string{stream, ">"}, Count: 1000, Block: time.Second}).Result()
		require.NoError(b, err)
		msgs := res[0].Messages
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		require.NoError(b, c.XAck(ctx, stream, "g", ids...).Err())
		got += len(msgs)
	}
	return time.Since(start)
}

func consumeOurs(b *testing.B, stream string, n, readBatch int) time.Duration {
	b.Helper()
	cfg := redisbackend.DefaultConfig()
	cfg.Addrs = []string{brokertest.RedisAddr}
	cfg.Consumer.ReadBatch = readBatch
	cfg.ConsumerGroup = "g"
	bb, err := bus.OpenConfig(context.Background(), redisbackend.Name, cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(b, err)
	defer bb.Close()
	var sub *redisbackend.Subscriber
	require.True(b, bb.As(&sub))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	msgs, err := bb.Subscriber.Subscribe(ctx, stream)
	require.NoError(b, err)
	for range n {
		m := <-msgs
		m.Ack()
	}
	// Done when Redis has every XACK; Close is not timed, since it also waits for the
	// blocked read in flight (block_time), which is latency rather than throughput.
	for sub.Stats().Acked < uint64(n) {
		time.Sleep(50 * time.Microsecond)
	}
	return time.Since(start)
}
