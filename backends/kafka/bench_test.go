package kafka_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// The benchmarks run the bus beside the bare watermill-kafka adapter and raw Sarama on the
// embedded broker, in the same process, alternating the variants round by round so that a
// change of load on the machine hits all of them alike. Each reports every variant's msgs/s and
// the median of the rounds' ratios (bus over reference):
//
//	go test -run '^$' -bench . -benchmem -benchtime 3x ./backends/kafka/
//
// One iteration is one round of every variant. Payloads are 1 KiB; acks=all.

var kafkaPayload = make([]byte, 1024)

// benchSetup starts a broker and opens a bus on it; sc is the bus's Sarama config, which the
// references use too.
func benchSetup(b *testing.B) (addr string, bb *bus.Bus, sc *sarama.Config) {
	b.Helper()
	addr = brokertest.StartKafka(b, 1)
	var err error
	bb, err = bus.OpenConfig(context.Background(), kafka.Name, brokertest.KafkaConfig(addr, "bench", 0, 1), bus.WithLogger(brokertest.Logger()))
	require.NoError(b, err)
	b.Cleanup(func() { _ = bb.Close() })
	require.True(b, bb.As(&sc))
	return addr, bb, sc
}

type rounds struct {
	mu    sync.Mutex
	times map[string][]time.Duration
}

func (r *rounds) add(name string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.times == nil {
		r.times = map[string][]time.Duration{}
	}
	r.times[name] = append(r.times[name], d)
}

// report reports each variant's rate over perRound messages a round, and ours' median ratio
// to each other variant.
func (r *rounds) report(b *testing.B, perRound int, ours string) {
	for name, ts := range r.times {
		var total time.Duration
		for _, t := range ts {
			total += t
		}
		b.ReportMetric(float64(perRound*len(ts))/total.Seconds(), name+"-msgs/s")
		if name == ours {
			continue
		}
		var ratios []float64
		for i, t := range ts {
			ratios = append(ratios, t.Seconds()/r.times[ours][i].Seconds())
		}
		slices.Sort(ratios)
		b.ReportMetric(ratios[len(ratios)/2], ours+"/"+name)
	}
}

// parallel runs n calls of f from g goroutines and returns how long they took.
func parallel(n, g int, f func() error) (time.Duration, error) {
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	errc := make(chan error, g)
	start := time.Now()
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := f(); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return time.Since(start), <-errc
}

// warm creates topic and fetches its metadata, untimed, so that the variant that runs first in
// a round does not pay for it.
func warm(b *testing.B, bb *bus.Bus, topic string) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	require.NoError(b, bb.Publish(context.Background(), topic, benchEvent()))
}

func benchEvent() bus.Event {
	return bus.Event{Type: "io.eventbus.bench.v1", Source: "bench", Data: kafkaPayload, ContentType: "application/octet-stream"}
}

// BenchmarkPublish: 256 goroutines, one event per call, acks=all. The variants are the bus
// (envelope, checks, then the adapter), the driver's publisher given the bare adapter's message
// (no envelope headers), the bare watermill-kafka publisher (the bus's overhead is the
// difference) and Sarama's async producer with a Publish-like wait per message (the
// goal's reference).
func BenchmarkPublish(b *testing.B) {
	addr, bb, sc := benchSetup(b)
	const perRound, goroutines = 5000, 256
	wpub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: []string{addr}, Marshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: sc}, watermill.NopLogger{})
	require.NoError(b, err)
	defer wpub.Close()
	rc := sarama.NewConfig()
	rc.Producer.RequiredAcks = sarama.WaitForAll
	rc.Producer.Return.Successes = true
	async, err := sarama.NewAsyncProducer([]string{addr}, rc)
	require.NoError(b, err)
	defer async.Close()
	go func() {
		for m := range async.Successes() {
			m.Metadata.(chan error) <- nil
		}
	}()
	go func() {
		for e := range async.Errors() {
			e.Msg.Metadata.(chan error) <- e.Err
		}
	}()
	ctx := context.Background()
	var r rounds
	for i := 0; b.Loop(); i++ {
		topic := "bench-publish-" + strconv.Itoa(i)
		warm(b, bb, topic)
		d, err := parallel(perRound, goroutines, func() error { return bb.Publish(ctx, topic, benchEvent()) })
		require.NoError(b, err)
		r.add("bus", d)
		// The driver's publisher with the bare adapter's message: no envelope headers.
		d, err = parallel(perRound, goroutines, func() error {
			return bb.Publisher.Publish(topic, message.NewMessage(watermill.NewUUID(), kafkaPayload))
		})
		require.NoError(b, err)
		r.add("driver-no-envelope", d)
		d, err = parallel(perRound, goroutines, func() error {
			return wpub.Publish(topic, message.NewMessage(watermill.NewUUID(), kafkaPayload))
		})
		require.NoError(b, err)
		r.add("watermill", d)
		d, err = parallel(perRound, goroutines, func() error {
			done := make(chan error, 1)
			async.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(kafkaPayload), Metadata: done}
			return <-done
		})
		require.NoError(b, err)
		r.add("sarama-async", d)
	}
	r.report(b, perRound, "bus")
}

// BenchmarkPublishBatch: Publish of 500 events from 8 goroutines, beside Sarama's
// SyncProducer.SendMessages of the same 500 (one batch, returning when all are acknowledged).
func BenchmarkPublishBatch(b *testing.B) {
	addr, bb, _ := benchSetup(b)
	const batch, calls, goroutines = 500, 40, 8
	rc := sarama.NewConfig()
	rc.Producer.RequiredAcks = sarama.WaitForAll
	rc.Producer.Return.Successes = true
	syncp, err := sarama.NewSyncProducer([]string{addr}, rc)
	require.NoError(b, err)
	defer syncp.Close()
	events := make([]bus.Event, batch)
	for i := range events {
		events[i] = benchEvent()
	}
	ctx := context.Background()
	var r rounds
	for i := 0; b.Loop(); i++ {
		topic := "bench-batch-" + strconv.Itoa(i)
		warm(b, bb, topic)
		d, err := parallel(calls, goroutines, func() error {
			evs := slices.Clone(events) // Publish fills in ids
			return bb.Publish(ctx, topic, evs...)
		})
		require.NoError(b, err)
		r.add("bus", d)
		d, err = parallel(calls, goroutines, func() error {
			msgs := make([]*sarama.ProducerMessage, batch)
			for j := range msgs {
				msgs[j] = &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(kafkaPayload)}
			}
			return syncp.SendMessages(msgs)
		})
		require.NoError(b, err)
		r.add("sarama-sendmessages", d)
	}
	r.report(b, batch*calls, "bus")
}

// BenchmarkConsume: a consumer group member taking a backlog of 1 KiB records and acking each:
// the bus's subscriber (the default, watermill-kafka), the pipelined one (max_in_flight 64),
// the bare watermill-kafka subscriber, and a raw Sarama consumer group marking each message.
func BenchmarkConsume(b *testing.B) {
	addr, bb, sc := benchSetup(b)
	const perRound = 20000
	ctx := context.Background()
	fill := func(topic string) {
		b.StopTimer()
		defer b.StartTimer()
		evs := make([]bus.Event, 500)
		for done := 0; done < perRound; done += len(evs) {
			for i := range evs {
				evs[i] = benchEvent()
			}
			require.NoError(b, bb.Publish(ctx, topic, evs...))
		}
	}
	viaSubscriber := func(sub message.Subscriber, topic string) time.Duration {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		start := time.Now()
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(b, err)
		for range perRound {
			(<-msgs).Ack()
		}
		return time.Since(start)
	}
	openSub := func(group string, window int) message.Subscriber {
		cfg := brokertest.KafkaConfig(addr, group, window, 1)
		cfg.Consumer.StartFrom = "oldest"
		s, err := bus.OpenConfig(ctx, kafka.Name, cfg, bus.WithLogger(brokertest.Logger()))
		require.NoError(b, err)
		b.Cleanup(func() { _ = s.Close() })
		return s.Subscriber
	}
	var r rounds
	for i := 0; b.Loop(); i++ {
		topic := "bench-consume-" + strconv.Itoa(i)
		fill(topic)
		r.add("bus", viaSubscriber(openSub("bus-"+strconv.Itoa(i), 0), topic))
		r.add("bus-pipelined", viaSubscriber(openSub("pipe-"+strconv.Itoa(i), 64), topic))

		wc := *sc
		wc.Consumer.Offsets.Initial = sarama.OffsetOldest
		wsub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{Brokers: []string{addr}, Unmarshaler: wkafka.DefaultMarshaler{},
			OverwriteSaramaConfig: &wc, ConsumerGroup: "wm-" + strconv.Itoa(i)}, watermill.NopLogger{})
		require.NoError(b, err)
		r.add("watermill", viaSubscriber(wsub, topic))
		require.NoError(b, wsub.Close())

		rc := sarama.NewConfig()
		rc.Consumer.Offsets.Initial = sarama.OffsetOldest
		cg, err := sarama.NewConsumerGroup([]string{addr}, "raw-"+strconv.Itoa(i), rc)
		require.NoError(b, err)
		h := &countingHandler{want: perRound, done: make(chan struct{})}
		cctx, cancel := context.WithCancel(ctx)
		start := time.Now()
		go func() {
			for cctx.Err() == nil && cg.Consume(cctx, []string{topic}, h) == nil {
			}
		}()
		<-h.done
		r.add("sarama-group", time.Since(start))
		cancel()
		require.NoError(b, cg.Close())
	}
	r.report(b, perRound, "bus")
}

type countingHandler struct {
	want, got int
	done      chan struct{}
}

func (*countingHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*countingHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *countingHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		s.MarkMessage(m, "")
		if h.got++; h.got == h.want {
			close(h.done)
		}
	}
	return nil
}
