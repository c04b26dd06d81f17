package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/middleware"
)

// consumersGoneWithin is how long open waits for a poison queue's consumers to go before it
// refuses to read a queue they hold messages of.
const consumersGoneWithin = 3 * time.Second

// rabbitPoisonQueue is the queue a consumer group's poisoned messages of a topic are routed to
// (the group's queue of the poison topic). It is read with basic.get, each message held
// unacknowledged until the scan ends and then requeued, unless the run removes it (ack). Nothing
// is declared: a queue that does not exist is reported, not created.
type rabbitPoisonQueue struct {
	b                         *bus.Bus
	conn                      *amqp.Connection
	cfg                       *rabbitmq.Config
	topic, poisonTopic, group string
	queue                     string
	count                     int
	groupQueues               map[string]bool // the group queues a redrive found
	inTx                      bool            // the run redrives: act in transactions
}

func newRabbitPoisonQueue(b *bus.Bus, cfg *config.Config, f *dlqFlags, action dlqAction) (*rabbitPoisonQueue, error) {
	bc, err := bus.BackendConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc, ok := bc.(*rabbitmq.Config)
	if !ok {
		return nil, fmt.Errorf("rabbitmq backend config is a %T", bc)
	}
	if rc.Queue.Type == rabbitmq.QueueStream {
		return nil, fmt.Errorf("dlq on rabbitmq queue.type %s: %w (a stream keeps every message; read it with consume --from oldest)", rc.Queue.Type, bus.ErrNotSupported)
	}
	var conn *amqp.Connection
	if !b.As(&conn) {
		return nil, errors.New("rabbitmq backend is not connected")
	}
	group := rc.ConsumerGroup
	if f.dlqGroup != "" {
		group = f.dlqGroup
	}
	if group == "" {
		return nil, errors.New("rabbitmq keeps poisoned messages in a consumer group's queue: set rabbitmq.consumer_group or --dlq-group")
	}
	return &rabbitPoisonQueue{b: b, conn: conn, cfg: rc, topic: f.topic, poisonTopic: f.poisonTopic, group: group,
		queue: rc.QueueName(f.poisonTopic, group), groupQueues: map[string]bool{}, inTx: action == dlqRedrive}, nil
}

func (q *rabbitPoisonQueue) describe() string {
	return fmt.Sprintf("rabbitmq queue %s (group %s)", q.queue, q.group)
}

// inspect declares queue passively: its depth and consumers, or ok false when it does not exist.
func (q *rabbitPoisonQueue) inspect(queue string) (amqp.Queue, bool, error) {
	ch, err := q.conn.Channel()
	if err != nil {
		return amqp.Queue{}, false, err
	}
	defer ch.Close()
	info, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return amqp.Queue{}, false, nil
	}
	return info, err == nil, err
}

func (q *rabbitPoisonQueue) open(ctx context.Context) (int, error) {
	info, ok, err := q.inspect(q.queue)
	if err != nil {
		return 0, fmt.Errorf("inspect queue %s: %w", q.queue, err)
	}
	if !ok {
		topicQueue := q.cfg.QueueName(q.topic, q.group)
		_, ok, err := q.inspect(topicQueue)
		if err != nil {
			return 0, fmt.Errorf("inspect queue %s: %w", topicQueue, err)
		}
		if !ok {
			return 0, fmt.Errorf("%w %s in group %s: neither its queue %s nor the poison queue %s exists on rabbitmq", errUnknownTopic, q.topic, q.group, topicQueue, q.queue)
		}
		return 0, nil
	}
	// A quorum queue counts each basic.get of a closed channel as a consumer for a moment after
	// the close (its cleanup is asynchronous): give an earlier run's channel time to go.
	for wait := time.Now().Add(consumersGoneWithin); info.Consumers > 0 && time.Now().Before(wait); {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if info, _, err = q.inspect(q.queue); err != nil {
			return 0, fmt.Errorf("inspect queue %s: %w", q.queue, err)
		}
	}
	if info.Consumers > 0 {
		return 0, fmt.Errorf("%w: queue %s has %d consumer(s), which hold messages this run cannot see; stop them (another dlq run, or a service subscribed to %s) and run again",
			errIncomplete, q.queue, info.Consumers, q.poisonTopic)
	}
	q.count = info.Messages
	return q.count, nil
}

func (q *rabbitPoisonQueue) scan(ctx context.Context, act bool, visit func(poisonRecord) (dlqDecision, error)) error {
	if q.count == 0 {
		return nil
	}
	ch, err := q.conn.Channel()
	if err != nil {
		return err
	}
	// Closing the channel requeues every message it still holds unacknowledged (the kept ones)
	// and rolls back an uncommitted transaction.
	defer ch.Close()
	tx := act && q.inTx
	if tx {
		// A redrive's publish and the ack of its record commit together: a run that stops
		// between them neither loses the message nor sends it twice. (A purge acks without:
		// a quorum queue makes each commit a replicated write.)
		if err := ch.Tx(); err != nil {
			return fmt.Errorf("tx.select: %w", err)
		}
	}
	var lastKept uint64 // the highest delivery tag the run holds unacknowledged
	for i := 0; i < q.count; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(q.queue, false)
		if err != nil {
			return fmt.Errorf("basic.get from %s: %w", q.queue, err)
		}
		if !ok {
			return fmt.Errorf("%w: queue %s held %d messages when the run started, %d could be read: another consumer took the rest",
				errIncomplete, q.queue, q.count, i)
		}
		msg := rabbitmq.Unmarshal(d)
		// A delivery tag names a delivery, not the message: the record is named by its event id
		// and the time it was poisoned, which stay the same across runs.
		pos := "rabbitmq " + q.queue + " " + msg.UUID + "@" + msg.Metadata.Get(middleware.HeaderPoisonLastFailure)
		dec, err := visit(poisonRecord{msg: msg, position: pos})
		if err != nil {
			return err
		}
		if !act || !dec.remove {
			lastKept = d.DeliveryTag
			continue
		}
		if dec.send != nil {
			if err := q.redrive(ctx, ch, dec); err != nil {
				return err
			}
		}
		if err := d.Ack(false); err != nil {
			return fmt.Errorf("ack %s in %s: %w", msg.UUID, q.queue, err)
		}
		if tx {
			if err := ch.TxCommit(); err != nil {
				return fmt.Errorf("tx.commit of %s: %w", msg.UUID, err)
			}
		}
		dec.removed()
	}
	if lastKept > 0 {
		// Back in the queue, in their places, before the next scan reads it again.
		if err := ch.Nack(lastKept, true, true); err != nil {
			return fmt.Errorf("requeue kept messages of %s: %w", q.queue, err)
		}
		if tx {
			if err := ch.TxCommit(); err != nil {
				return fmt.Errorf("tx.commit of the requeue: %w", err)
			}
		}
	}
	return nil
}

// redrive publishes d.send straight to the queue of d.group for d.topic (through the default
// exchange), so that no other group's queue receives it, on ch, whose transaction commits it
// with the ack of its record. The queue must exist: a group that never consumed the topic has
// nothing to redrive to. A message whose provenance names no group goes through the topic's
// exchange like any publish, outside the transaction.
func (q *rabbitPoisonQueue) redrive(ctx context.Context, ch *amqp.Channel, d dlqDecision) error {
	if d.group == "" {
		return sendRedrive(q.b, d) // no group to address: every group's queue of the topic
	}
	queue := q.cfg.QueueName(d.topic, d.group)
	if !q.groupQueues[queue] {
		_, ok, err := q.inspect(queue)
		if err != nil {
			return fmt.Errorf("redrive %s: inspect queue %s: %w", d.send.UUID, queue, err)
		}
		if !ok {
			return fmt.Errorf("redrive %s: group %s has no queue %s for topic %s (it stays in the poison queue)", d.send.UUID, d.group, queue, d.topic)
		}
		q.groupQueues[queue] = true
	}
	if err := ch.PublishWithContext(ctx, "", queue, false, false, rabbitmq.Marshal(d.send, q.cfg.Publisher.Persistent)); err != nil {
		return fmt.Errorf("redrive %s to queue %s: %w (it stays in the poison queue)", d.send.UUID, queue, err)
	}
	return nil
}

func (q *rabbitPoisonQueue) close() error { return nil }
