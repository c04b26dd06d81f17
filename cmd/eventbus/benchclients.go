package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// newBenchBackend builds the targets for cfg's backend: the bus first, then the raw clients,
// which reach the broker with the connection settings the bus uses (read back with bus.As).
func newBenchBackend(ctx context.Context, cfg *config.Config, w workload, o benchOptions) (*benchBackend, error) {
	backendConfig := func() (any, error) { return bus.BackendConfig(cfg) }
	stopEmbedded := func() error { return nil }
	if bc, err := backendConfig(); err != nil {
		return nil, err
	} else if kc, ok := bc.(*kafka.Config); ok && kc.Embedded {
		// Every bus would start an embedded broker of its own: one serves them all, and the
		// raw clients, in this process.
		b, err := embedded.Start(embedded.Options{DataDir: kc.EmbeddedDataDir, Partitions: w.Partitions})
		if err != nil {
			return nil, fmt.Errorf("start the embedded Kafka broker: %w", err)
		}
		stopEmbedded = b.Close
		backendConfig = func() (any, error) {
			bc, err := bus.BackendConfig(cfg)
			if err == nil {
				kc := bc.(*kafka.Config)
				kc.Embedded, kc.Brokers = false, b.Addrs()
			}
			return bc, err
		}
	}
	openBus := func(ctx context.Context, group string) (*bus.Bus, error) {
		bc, err := backendConfig()
		if err != nil {
			return nil, err
		}
		return bus.OpenConfig(ctx, cfg.Backend, bc, bus.WithTemporaryGroup(group), bus.WithStartFrom(bus.StartOldest), bus.WithLogger(o.logger))
	}
	// A bus of its own for the raw clients' connection settings and the broker's admin work.
	admin, err := openBus(ctx, o.prefix+"admin")
	if err != nil {
		return nil, errors.Join(err, stopEmbedded())
	}
	closeAdmin := func() error { return errors.Join(admin.Close(), stopEmbedded()) }
	bc, err := backendConfig()
	if err != nil {
		return nil, errors.Join(err, closeAdmin())
	}
	var be *benchBackend
	switch c := bc.(type) {
	case *kafka.Config:
		be, err = kafkaBench(ctx, admin, c, w, o)
	case *rabbitmq.Config:
		be, err = rabbitBench(ctx, admin, c, o)
	default:
		if cfg.Backend == "redis" {
			be, err = redisBench(ctx, admin, o)
		} else {
			be = busOnlyBench(admin, cfg.Backend)
		}
	}
	if err != nil {
		return nil, errors.Join(err, closeAdmin())
	}
	eb := be.targets[0]
	eb.name = "eventbus"
	eb.open = func(ctx context.Context, group string) (benchClient, error) {
		b, err := openBus(ctx, group)
		if err != nil {
			return nil, err
		}
		return &busClient{b: b}, nil
	}
	be.targets[0] = eb
	closeBackend := be.close
	be.close = func() error { return errors.Join(closeBackend(), closeAdmin()) }
	return be, nil
}

// busClient runs the workload through the bus: Publish of events whose data is the payload,
// and the subscriber's messages acked one by one.
type busClient struct{ b *bus.Bus }

func (c *busClient) Publish(ctx context.Context, topic, key string, payloads [][]byte) error {
	evs := make([]bus.Event, len(payloads))
	for i, p := range payloads {
		evs[i] = bus.Event{Type: "io.eventbus.bench.v1", Source: "eventbus-bench", Key: key, Data: p, ContentType: "application/octet-stream"}
	}
	return c.b.Publish(ctx, topic, evs...)
}

func (c *busClient) Consume(ctx context.Context, topics []string, handle func([]byte)) error {
	for _, topic := range topics {
		msgs, err := c.b.Subscriber.Subscribe(ctx, topic)
		if err != nil {
			return err
		}
		go func(msgs <-chan *message.Message) {
			for m := range msgs {
				handle(m.Payload)
				m.Ack()
			}
		}(msgs)
	}
	return nil
}

// Prepare makes the broker keep what is published to topics for this client's group before it
// consumes (Watermill's SubscribeInitializer: RabbitMQ declares the group's queue).
func (c *busClient) Prepare(topics []string) error {
	si, ok := c.b.Subscriber.(message.SubscribeInitializer)
	if !ok {
		return nil
	}
	for _, topic := range topics {
		if err := si.SubscribeInitialize(topic); err != nil {
			return err
		}
	}
	return nil
}

func (c *busClient) Close() error { return c.b.Close() }

// queueName is the RabbitMQ driver's queue name template filled in.
func queueName(tmpl, group, topic string) string {
	return strings.NewReplacer("{topic}", topic, "{group}", group).Replace(tmpl)
}

// busOnlyBench runs a backend bench has no raw client for: the bus alone, its topics (and the
// run's group) removed afterwards through the driver's DeleteTopics.
func busOnlyBench(admin *bus.Bus, backend string) *benchBackend {
	cleanup := func(ctx context.Context, topics []string, group string) error {
		if err := admin.DeleteTopics(ctx, topics, group); err != nil && !errors.Is(err, bus.ErrNotSupported) {
			return err
		}
		return nil
	}
	return &benchBackend{
		durability: map[string]string{"raw": "bench has no raw client for backend " + backend + ": the bus runs alone, without ratios"},
		targets:    []benchTarget{{prepare: func(context.Context, []string, string) error { return nil }, cleanup: cleanup}},
		close:      func() error { return nil },
	}
}
