package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
)

// rabbitBench prepares RabbitMQ runs: the group's queue of each topic is deleted afterwards.
// The raw reference is amqp091-go on the bus's connection: persistent messages on confirming
// channels (a Publish call waits for its confirms), and a consumer with prefetch 100 acking
// each message after the handler, on a queue of the configured type (quorum for stream).
func rabbitBench(_ context.Context, admin *bus.Bus, rc *rabbitmq.Config, _ benchOptions) (*benchBackend, error) {
	var conn *amqp.Connection
	if !admin.As(&conn) {
		return nil, errors.New("the rabbitmq bus gives no connection")
	}
	queueType := rc.Queue.Type
	if queueType == rabbitmq.QueueStream {
		queueType = rabbitmq.QueueQuorum
	}
	var managed *rabbitmq.Connection
	if !admin.As(&managed) {
		return nil, errors.New("the rabbitmq bus gives no connection")
	}
	cleanup := func(ctx context.Context, topics []string, group string) error {
		for _, t := range topics {
			if err := managed.DeleteQueue(ctx, queueName(rc.Queue.Name, group, t)); err != nil {
				return err
			}
		}
		return nil
	}
	rawPrepare := func(_ context.Context, topics []string, group string) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if err := ch.ExchangeDeclare(rc.Exchange.Name, rc.Exchange.Type, rc.Exchange.Durable, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", rc.Exchange.Name, err)
		}
		for _, t := range topics {
			q := queueName(rc.Queue.Name, group, t)
			if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": queueType}); err != nil {
				return fmt.Errorf("declare queue %s: %w", q, err)
			}
			if err := ch.QueueBind(q, t, rc.Exchange.Name, false, nil); err != nil {
				return fmt.Errorf("bind queue %s: %w", q, err)
			}
		}
		return nil
	}
	return &benchBackend{
		durability: map[string]string{
			"eventbus": fmt.Sprintf("publisher confirms %t, persistent %t, %d channels; %s queues, prefetch %d, max_in_flight %d",
				rc.Publisher.Confirms, rc.Publisher.Persistent, rc.Publisher.Channels, rc.Queue.Type, rc.Consumer.Prefetch, rc.Consumer.MaxInFlight),
			"amqp091-go": fmt.Sprintf("confirms, persistent, a channel per concurrent Publish; %s queues, prefetch 100, manual ack", queueType),
		},
		targets: []benchTarget{
			{prepare: func(context.Context, []string, string) error { return nil }, cleanup: cleanup},
			{name: "amqp091-go", prepare: rawPrepare, cleanup: cleanup, open: func(_ context.Context, group string) (benchClient, error) {
				return &amqpClient{conn: conn, exchange: rc.Exchange.Name, queue: rc.Queue.Name, group: group, pool: make(chan *amqp.Channel, 64)}, nil
			}},
		},
		close: func() error { return nil },
	}, nil
}

type amqpClient struct {
	conn                   *amqp.Connection
	exchange, queue, group string
	pool                   chan *amqp.Channel // idle confirming channels
	mu                     sync.Mutex
	chans                  []*amqp.Channel
}

func (c *amqpClient) channel(confirm bool) (*amqp.Channel, error) {
	ch, err := c.conn.Channel()
	if err != nil {
		return nil, err
	}
	if confirm {
		if err := ch.Confirm(false); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	c.chans = append(c.chans, ch)
	c.mu.Unlock()
	return ch, nil
}

func (c *amqpClient) Publish(ctx context.Context, topic, _ string, payloads [][]byte) error {
	var ch *amqp.Channel
	select {
	case ch = <-c.pool:
	default:
		var err error
		if ch, err = c.channel(true); err != nil {
			return err
		}
	}
	defer func() {
		select {
		case c.pool <- ch:
		default:
		}
	}()
	dcs := make([]*amqp.DeferredConfirmation, 0, len(payloads))
	for _, p := range payloads {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, c.exchange, topic, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: p})
		if err != nil {
			return err
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the broker nacked a message")
		}
	}
	return nil
}

func (c *amqpClient) Consume(ctx context.Context, topics []string, handle func([]byte)) error {
	ch, err := c.channel(false)
	if err != nil {
		return err
	}
	if err := ch.Qos(100, 0, false); err != nil {
		return err
	}
	for _, t := range topics {
		ds, err := ch.Consume(queueName(c.queue, c.group, t), "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		go func() {
			for d := range ds {
				handle(d.Body)
				_ = d.Ack(false)
			}
		}()
	}
	return nil
}

func (c *amqpClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, ch := range c.chans {
		if err := ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
