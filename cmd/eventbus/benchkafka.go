package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
)

// kafkaBench prepares Kafka runs: every client's topics are created beforehand with the
// workload's partitions, and deleted with the group afterwards. The raw references are
// Sarama's async producer and consumer group (what the driver is built on) and franz-go, the
// fastest Go client, as the ceiling.
func kafkaBench(_ context.Context, admin *bus.Bus, kc *kafka.Config, w workload, _ benchOptions) (*benchBackend, error) {
	var sc *sarama.Config
	var brokers []string
	if !admin.As(&sc) || !admin.As(&brokers) {
		return nil, errors.New("the kafka bus gives no client config")
	}
	ca, err := sarama.NewClusterAdmin(brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka admin: %w", err)
	}
	prepare := func(_ context.Context, topics []string, _ string) error {
		for _, t := range topics {
			err := ca.CreateTopic(t, &sarama.TopicDetail{NumPartitions: w.Partitions, ReplicationFactor: kc.Topics.ReplicationFactor}, false)
			if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
				return fmt.Errorf("create topic %s: %w", t, err)
			}
		}
		return nil
	}
	cleanup := func(_ context.Context, topics []string, group string) error {
		var errs []error
		for _, t := range topics {
			if err := ca.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("delete topic %s: %w", t, err))
			}
		}
		_ = ca.DeleteConsumerGroup(group) // best effort: a group outlives its members briefly
		return errors.Join(errs...)
	}
	raw := func(_ context.Context, group string) (benchClient, error) {
		return &saramaClient{brokers: brokers, group: group, cfg: rawSaramaConfig(sc)}, nil
	}
	be := &benchBackend{
		durability: map[string]string{
			"eventbus": "acks " + kc.Publisher.Acks + ", compression " + kc.Publisher.Compression + ", replication factor " + strconv.Itoa(int(kc.Topics.ReplicationFactor)),
			"sarama":   "acks all (WaitForAll), compression none, offsets marked after the handler",
		},
		targets: []benchTarget{{prepare: prepare, cleanup: cleanup}, {name: "sarama", open: raw, prepare: prepare, cleanup: cleanup}},
		close:   ca.Close,
	}
	if sc.Net.TLS.Enable || sc.Net.SASL.Enable {
		be.durability["franz-go"] = "not run: bench does not pass TLS or SASL settings to franz-go"
		return be, nil
	}
	be.durability["franz-go"] = "acks all, idempotent (its defaults), offsets autocommitted after polling"
	be.targets = append(be.targets, benchTarget{name: "franz-go", prepare: prepare, cleanup: cleanup,
		open: func(_ context.Context, group string) (benchClient, error) {
			return &franzClient{brokers: brokers, group: group}, nil
		}})
	return be, nil
}

// rawSaramaConfig is the bus's Sarama config (version, TLS, SASL, timeouts) set up as a
// plain Sarama user would for at-least-once: acks from all in-sync replicas, successes
// returned, new groups starting at the oldest offset.
func rawSaramaConfig(sc *sarama.Config) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sc.Version
	c.Net = sc.Net
	c.ClientID = sc.ClientID + "-bench-raw"
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.MaxMessageBytes = sc.Producer.MaxMessageBytes
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Session.Timeout = sc.Consumer.Group.Session.Timeout
	c.Consumer.Group.Heartbeat.Interval = sc.Consumer.Group.Heartbeat.Interval
	c.Consumer.Group.Rebalance.Timeout = sc.Consumer.Group.Rebalance.Timeout
	return c
}

// saramaClient is Sarama's async producer, each Publish waiting for its messages' successes,
// and its consumer group marking each message after the handler.
type saramaClient struct {
	brokers []string
	group   string
	cfg     *sarama.Config

	once    sync.Once
	prod    sarama.AsyncProducer
	prodErr error
	cg      sarama.ConsumerGroup
	wg      sync.WaitGroup
}

func (c *saramaClient) producer() (sarama.AsyncProducer, error) {
	c.once.Do(func() {
		c.prod, c.prodErr = sarama.NewAsyncProducer(c.brokers, c.cfg)
		if c.prodErr != nil {
			return
		}
		c.wg.Add(2)
		go func() {
			defer c.wg.Done()
			for m := range c.prod.Successes() {
				m.Metadata.(chan error) <- nil
			}
		}()
		go func() {
			defer c.wg.Done()
			for e := range c.prod.Errors() {
				e.Msg.Metadata.(chan error) <- e.Err
			}
		}()
	})
	return c.prod, c.prodErr
}

func (c *saramaClient) Publish(ctx context.Context, topic, key string, payloads [][]byte) error {
	p, err := c.producer()
	if err != nil {
		return err
	}
	done := make(chan error, len(payloads))
	for _, pl := range payloads {
		m := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(pl), Metadata: done}
		if key != "" {
			m.Key = sarama.StringEncoder(key)
		}
		select {
		case p.Input() <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var errs []error
	for range payloads {
		if err := <-done; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *saramaClient) Consume(ctx context.Context, topics []string, handle func([]byte)) error {
	cg, err := sarama.NewConsumerGroup(c.brokers, c.group, c.cfg)
	if err != nil {
		return err
	}
	c.cg = cg
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, topics, saramaHandler(handle)); err != nil {
				return
			}
		}
	}()
	return nil
}

func (c *saramaClient) Close() error {
	var errs []error
	if c.cg != nil {
		errs = append(errs, c.cg.Close())
	}
	if c.prod != nil {
		errs = append(errs, c.prod.Close())
	}
	c.wg.Wait()
	return errors.Join(errs...)
}

type saramaHandler func([]byte)

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h(m.Value)
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

// franzClient is franz-go with its defaults: ProduceSync of a call's records, and a group
// consumer polling fetches.
type franzClient struct {
	brokers []string
	group   string

	once    sync.Once
	prod    *kgo.Client
	prodErr error
	cons    *kgo.Client
	wg      sync.WaitGroup
}

func (c *franzClient) Publish(ctx context.Context, topic, key string, payloads [][]byte) error {
	c.once.Do(func() { c.prod, c.prodErr = kgo.NewClient(kgo.SeedBrokers(c.brokers...)) })
	if c.prodErr != nil {
		return c.prodErr
	}
	recs := make([]*kgo.Record, len(payloads))
	for i, p := range payloads {
		recs[i] = &kgo.Record{Topic: topic, Value: p}
		if key != "" {
			recs[i].Key = []byte(key)
		}
	}
	return c.prod.ProduceSync(ctx, recs...).FirstErr()
}

func (c *franzClient) Consume(ctx context.Context, topics []string, handle func([]byte)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.ConsumerGroup(c.group), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	c.cons = cl
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) { handle(r.Value) })
		}
	}()
	return nil
}

func (c *franzClient) Close() error {
	if c.cons != nil {
		c.cons.Close()
	}
	c.wg.Wait()
	if c.prod != nil {
		c.prod.Close()
	}
	return nil
}
