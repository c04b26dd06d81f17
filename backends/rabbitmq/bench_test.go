package rabbitmq_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// The benchmarks measure the driver beside raw amqp091-go in the same run, on the shared
// broker, and log each variant's rate as a ratio of the raw reference:
//
//	go test -run '^$' -bench . -benchtime 20000x ./backends/rabbitmq/
//
// Every variant publishes persistent 200-byte messages to a quorum queue bound to the
// "eventbus" topic exchange, as the driver's defaults do.

var benchPayload = make([]byte, 200)

var (
	benchParallelism = []int{4, 16, 64}
	benchChannels    = 8
)

func init() {
	if v := os.Getenv("BENCH_CHANNELS"); v != "" {
		benchChannels, _ = strconv.Atoi(v)
	}
}

// benchQueue declares a quorum queue bound to the eventbus exchange for topic and deletes it
// when the benchmark ends.
func benchQueue(b *testing.B, url, queue, topic string) *amqp.Channel {
	b.Helper()
	conn, err := amqp.Dial(url)
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	require.NoError(b, err)
	require.NoError(b, ch.ExchangeDeclare("eventbus", "topic", true, false, false, false, nil))
	_, err = ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	require.NoError(b, err)
	require.NoError(b, ch.QueueBind(queue, topic, "eventbus", false, nil))
	b.Cleanup(func() { _, _ = ch.QueueDelete(queue, false, false, false) })
	return ch
}

// asRawQueue makes the driver declare its group's queue as benchQueue does (a plain quorum
// queue: no delivery limit, dead-letter target or length bound), so that consuming a queue the
// benchmark filled beforehand does not fail on inequivalent arguments.
func asRawQueue(cfg *rabbitmq.Config) *rabbitmq.Config {
	cfg.Queue.DeliveryLimit, cfg.Queue.DeadLetterQueue, cfg.Queue.MaxLengthBytes = 0, "", 0
	return cfg
}

// rawPublish publishes n messages on one confirming channel with up to window confirms
// outstanding: the fastest safe way amqp091-go offers.
func rawPublish(b *testing.B, ch *amqp.Channel, topic string, n, window int) {
	b.Helper()
	require.NoError(b, ch.Confirm(false))
	rawPublishConfirming(b, ch, topic, n, window)
}

type rates map[string]float64

func (r rates) record(b *testing.B, name string) {
	r[name] = float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(r[name], "msgs/s")
}

func (r rates) log(b *testing.B, reference string) {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b.Logf("%-40s %9.0f msgs/s  %.2fx %s", n, r[n], r[n]/r[reference], reference)
	}
}

func BenchmarkPublish(b *testing.B) {
	url := brokertest.RabbitMQRunURL(b)
	r := rates{}

	b.Run("raw-amqp091-async-confirms", func(b *testing.B) {
		topic := uniqueTopic("bench-raw")
		ch := benchQueue(b, url, "bench."+topic, topic)
		b.ResetTimer()
		rawPublish(b, ch, topic, b.N, 256)
		r.record(b, "raw-amqp091-async-confirms")
	})

	// The driver as a service uses it: one message per Publish, from many goroutines, each
	// Publish waiting for its confirm.
	for _, par := range benchParallelism {
		name := fmt.Sprintf("eventbus-%d-goroutines-%d-channels", par*runtime.GOMAXPROCS(0), benchChannels)
		b.Run(name, func(b *testing.B) {
			topic := uniqueTopic("bench-eb")
			benchQueue(b, url, "bench."+topic, topic)
			cfg := testConfig(url)
			cfg.Publisher.DeclareConsumerGroup = false
			cfg.Publisher.Channels = benchChannels
			bb := openBackend(b, cfg)
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bb.Publisher.Publish(topic, message.NewMessage(watermill.NewUUID(), benchPayload)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			r.record(b, name)
		})
	}

	// Batches of 100 messages per Publish, pipelined on one channel like the raw reference.
	b.Run("eventbus-batches-of-100", func(b *testing.B) {
		topic := uniqueTopic("bench-batch")
		benchQueue(b, url, "bench."+topic, topic)
		cfg := testConfig(url)
		cfg.Publisher.DeclareConsumerGroup = false
		bb := openBackend(b, cfg)
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += 100 {
			batch := make([]*message.Message, min(100, b.N-sent))
			for i := range batch {
				batch[i] = message.NewMessage(watermill.NewUUID(), benchPayload)
			}
			require.NoError(b, bb.Publisher.Publish(topic, batch...))
		}
		r.record(b, "eventbus-batches-of-100")
	})

	// The bare adapter as configured by default: a channel opened and closed per Publish,
	// no confirms (so no guarantee either).
	b.Run("watermill-amqp-default", func(b *testing.B) {
		topic := uniqueTopic("bench-wa")
		benchQueue(b, url, "bench."+topic, topic)
		cfg := wamqp.NewDurablePubSubConfig(url, nil)
		cfg.Exchange.GenerateName = wamqp.GenerateExchangeNameConstant("eventbus")
		cfg.Exchange.Type = "topic"
		cfg.Publish.GenerateRoutingKey = func(topic string) string { return topic }
		pub, err := wamqp.NewPublisher(cfg, watermill.NopLogger{})
		require.NoError(b, err)
		b.Cleanup(func() { _ = pub.Close() })
		b.ResetTimer()
		for range b.N {
			require.NoError(b, pub.Publish(topic, message.NewMessage(watermill.NewUUID(), benchPayload)))
		}
		r.record(b, "watermill-amqp-default")
	})
	r.log(b, "raw-amqp091-async-confirms")
}

func BenchmarkConsume(b *testing.B) {
	url := brokertest.RabbitMQRunURL(b)
	r := rates{}

	b.Run("raw-amqp091-prefetch-100", func(b *testing.B) {
		topic := uniqueTopic("bench-raw")
		queue := "bench." + topic
		ch := benchQueue(b, url, queue, topic)
		rawPublish(b, ch, topic, b.N, 256)
		require.NoError(b, ch.Qos(100, 0, false))
		b.ResetTimer()
		deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
		require.NoError(b, err)
		for range b.N {
			d := <-deliveries
			require.NoError(b, d.Ack(false))
		}
		b.StopTimer()
		r.record(b, "raw-amqp091-prefetch-100")
	})

	for _, inFlight := range []int{1, 100} {
		name := fmt.Sprintf("eventbus-prefetch-100-max-in-flight-%d", inFlight)
		b.Run(name, func(b *testing.B) {
			topic := uniqueTopic("bench-eb")
			group := "bench-" + watermill.NewShortUUID()
			ch := benchQueue(b, url, group+"."+topic, topic)
			rawPublish(b, ch, topic, b.N, 256)
			cfg := asRawQueue(testConfig(url))
			cfg.ConsumerGroup = group
			cfg.Consumer.MaxInFlight = inFlight
			bb := openBackend(b, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ResetTimer()
			msgs, err := bb.Subscriber.Subscribe(ctx, topic)
			require.NoError(b, err)
			for range b.N {
				(<-msgs).Ack()
			}
			b.StopTimer()
			r.record(b, name)
		})
	}
	r.log(b, "raw-amqp091-prefetch-100")
}

// BenchmarkPublishRatio alternates rounds of the raw reference and of the driver (256
// goroutines publishing one message per call, as many in flight as the reference's window) and
// reports their rates and the ratio. Alternating keeps the comparison fair on a machine whose
// load changes while it runs. One iteration is one round of each:
//
//	go test -run '^$' -bench Ratio -benchtime 5x ./backends/rabbitmq/
func BenchmarkPublishRatio(b *testing.B) {
	url := brokertest.RabbitMQRunURL(b)
	const perRound, goroutines = 4000, 256
	rawTopic, ebTopic := uniqueTopic("ratio-raw"), uniqueTopic("ratio-eb")
	ch := benchQueue(b, url, "bench."+rawTopic, rawTopic)
	benchQueue(b, url, "bench."+ebTopic, ebTopic)
	require.NoError(b, ch.Confirm(false))
	cfg := testConfig(url)
	cfg.Publisher.DeclareConsumerGroup = false
	bb := openBackend(b, cfg)

	var rawTime, ebTime time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rawPublishConfirming(b, ch, rawTopic, perRound, goroutines)
		rawTime += time.Since(start)

		start = time.Now()
		var wg sync.WaitGroup
		work := make(chan struct{}, perRound)
		for range perRound {
			work <- struct{}{}
		}
		close(work)
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					if err := bb.Publisher.Publish(ebTopic, message.NewMessage(watermill.NewUUID(), benchPayload)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		ebTime += time.Since(start)
	}
	n := float64(b.N * perRound)
	raw, eb := n/rawTime.Seconds(), n/ebTime.Seconds()
	b.ReportMetric(raw, "raw-msgs/s")
	b.ReportMetric(eb, "eventbus-msgs/s")
	b.ReportMetric(eb/raw, "ratio")
}

// rawPublishConfirming is rawPublish on a channel already in confirm mode.
func rawPublishConfirming(b *testing.B, ch *amqp.Channel, topic string, n, window int) {
	b.Helper()
	pending := make([]*amqp.DeferredConfirmation, 0, window)
	flush := func() {
		for _, dc := range pending {
			if !dc.Wait() {
				b.Fatal("raw publish nacked")
			}
		}
		pending = pending[:0]
	}
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirm("eventbus", topic, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, MessageId: fmt.Sprint(i), Body: benchPayload,
		})
		require.NoError(b, err)
		pending = append(pending, dc)
		if len(pending) == window {
			flush()
		}
	}
	flush()
}

// BenchmarkConsumeRatio alternates rounds of consuming a backlog with raw amqp091-go (prefetch
// 100, an ack per message) and with the driver's defaults (prefetch 100, one message handed
// out at a time), and reports their rates and the ratio.
func BenchmarkConsumeRatio(b *testing.B) {
	url := brokertest.RabbitMQRunURL(b)
	const perRound = 4000
	topic := uniqueTopic("ratio-consume")
	group := "bench-" + watermill.NewShortUUID()
	rawQueue := "bench." + topic
	ch := benchQueue(b, url, rawQueue, topic)
	benchQueue(b, url, group+"."+topic, topic) // both queues get every message
	require.NoError(b, ch.Confirm(false))
	require.NoError(b, ch.Qos(100, 0, false))
	cfg := asRawQueue(testConfig(url))
	cfg.ConsumerGroup = group
	bb := openBackend(b, cfg)

	var rawTime, ebTime time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		rawPublishConfirming(b, ch, topic, perRound, 256)
		b.StartTimer()

		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		deliveries, err := ch.ConsumeWithContext(ctx, rawQueue, "", false, false, false, false, nil)
		require.NoError(b, err)
		for range perRound {
			require.NoError(b, (<-deliveries).Ack(false))
		}
		cancel()
		rawTime += time.Since(start)

		start = time.Now()
		ctx, cancel = context.WithCancel(context.Background())
		msgs, err := bb.Subscriber.Subscribe(ctx, topic)
		require.NoError(b, err)
		for range perRound {
			(<-msgs).Ack()
		}
		cancel()
		for range msgs {
			// Wait for the subscription to close: its unacked prefetch goes back to the queue.
		}
		ebTime += time.Since(start)
	}
	n := float64(b.N * perRound)
	raw, eb := n/rawTime.Seconds(), n/ebTime.Seconds()
	b.ReportMetric(raw, "raw-msgs/s")
	b.ReportMetric(eb, "eventbus-msgs/s")
	b.ReportMetric(eb/raw, "ratio")
}
