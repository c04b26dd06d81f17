package rabbitmq

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// consumersGoneWithin is how long open waits for a poison queue's consumers to go before it
// refuses to read a queue they hold messages of.
const consumersGoneWithin = 3 * time.Second

// poisonQueue is the queue a consumer group's poisoned messages of a topic are routed to
// (the group's queue of the poison topic). It is read with basic.get, each message held
// unacknowledged until the scan ends and then requeued, unless the run removes it (ack). Nothing
// is declared: a queue that does not exist is reported, not created.
type poisonQueue struct {
	pub                       message.Publisher
	conn                      *Connection
	topo                      topology
	topic, poisonTopic, group string
	queue                     string
	count                     int
	groupQueues               map[string]bool // the group queues a redrive found
	inTx                      bool            // the run redrives: act in transactions
}

// poisonQueueOpener answers driver.Admin.PoisonQueue over conn; pub sends a redrive whose
// provenance names no group.
func poisonQueueOpener(conn *Connection, topo topology, pub message.Publisher) driver.PoisonQueueFunc {
	return func(_ context.Context, o driver.PoisonQueueOptions) (driver.PoisonQueue, error) {
		if topo.stream() {
			return nil, fmt.Errorf("poison queue on rabbitmq queue.type %s: %w (a stream keeps every message: read it with consume --from oldest)", topo.cfg.Queue.Type, driver.ErrNotSupported)
		}
		group := o.Group
		if group == "" {
			group = topo.cfg.ConsumerGroup
		}
		if group == "" {
			return nil, fmt.Errorf("poison queue of %s: %w without a consumer group (rabbitmq keeps poisoned messages in a group's queue): set rabbitmq.consumer_group or name the group", o.Topic, driver.ErrNotSupported)
		}
		return &poisonQueue{pub: pub, conn: conn, topo: topo, topic: o.Topic, poisonTopic: o.PoisonTopic, group: group,
			queue: topo.queueName(o.PoisonTopic, group), groupQueues: map[string]bool{}, inTx: o.Redrive}, nil
	}
}

func (q *poisonQueue) Describe() string {
	return fmt.Sprintf("rabbitmq queue %s (group %s)", q.queue, q.group)
}

// Depth is the number of messages ready in the group's queue of the poison topic: those a
// consumer holds are not counted.
func (q *poisonQueue) Depth(ctx context.Context) (int, error) {
	info, _, err := q.info(ctx)
	return info.Messages, err
}

// info inspects the poison queue; ok is false, with no error, when it does not exist but the
// topic's queue of the group does (nothing was ever poisoned).
func (q *poisonQueue) info(ctx context.Context) (info amqp.Queue, ok bool, err error) {
	info, ok, err = inspect(ctx, q.conn, q.queue)
	if err != nil {
		return info, false, err
	}
	if ok {
		return info, true, nil
	}
	topicQueue := q.topo.queueName(q.topic, q.group)
	if _, ok, err = inspect(ctx, q.conn, topicQueue); err != nil {
		return info, false, err
	}
	if !ok {
		return info, false, fmt.Errorf("%w %s in group %s: neither its queue %s nor the poison queue %s exists on rabbitmq", driver.ErrUnknownTopic, q.topic, q.group, topicQueue, q.queue)
	}
	return info, false, nil
}

func (q *poisonQueue) Open(ctx context.Context) (int, error) {
	info, ok, err := q.info(ctx)
	if err != nil || !ok {
		return 0, err
	}
	// A quorum queue counts each basic.get of a closed channel as a consumer for a moment after
	// the close (its cleanup is asynchronous): give an earlier run's channel time to go.
	for wait := time.Now().Add(consumersGoneWithin); info.Consumers > 0 && time.Now().Before(wait); {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if info, _, err = inspect(ctx, q.conn, q.queue); err != nil {
			return 0, err
		}
	}
	if info.Consumers > 0 {
		return 0, fmt.Errorf("%w: queue %s has %d consumer(s), which hold messages this run cannot see; stop them (another dlq run, or a service subscribed to %s) and run again",
			driver.ErrIncomplete, q.queue, info.Consumers, q.poisonTopic)
	}
	q.count = info.Messages
	return q.count, nil
}

func (q *poisonQueue) Scan(ctx context.Context, act bool, visit func(driver.PoisonRecord) (driver.PoisonDecision, error)) error {
	if q.count == 0 {
		return nil
	}
	ch, err := q.conn.Channel(ctx)
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
				driver.ErrIncomplete, q.queue, q.count, i)
		}
		msg := unmarshal(d)
		// A delivery tag names a delivery, not the message: the record is named by its event id
		// and the time it was poisoned, which stay the same across runs.
		pos := "rabbitmq " + q.queue + " " + msg.UUID + "@" + msg.Metadata.Get(driver.HeaderPoisonLastFailure)
		dec, err := visit(driver.PoisonRecord{Msg: msg, Position: pos})
		if err != nil {
			return err
		}
		if !act || !dec.Remove {
			lastKept = d.DeliveryTag
			continue
		}
		if dec.Send != nil {
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
		dec.Removed()
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

// redrive publishes d.send straight to the queue of d.Group for d.Topic (through the default
// exchange), so that no other group's queue receives it, on ch, whose transaction commits it
// with the ack of its record. The queue must exist: a group that never consumed the topic has
// nothing to redrive to. A message whose provenance names no group goes through the topic's
// exchange like any publish, outside the transaction.
func (q *poisonQueue) redrive(ctx context.Context, ch *amqp.Channel, d driver.PoisonDecision) error {
	if d.Group == "" {
		// No group to address: every group's queue of the topic.
		if err := q.pub.Publish(d.Topic, d.Send); err != nil {
			return fmt.Errorf("redrive %s to %s: %w (it stays in the poison queue)", d.Send.UUID, d.Topic, err)
		}
		return nil
	}
	queue := q.topo.queueName(d.Topic, d.Group)
	if !q.groupQueues[queue] {
		_, ok, err := inspect(ctx, q.conn, queue)
		if err != nil {
			return fmt.Errorf("redrive %s: %w", d.Send.UUID, err)
		}
		if !ok {
			return fmt.Errorf("redrive %s: group %s has no queue %s for topic %s (it stays in the poison queue)", d.Send.UUID, d.Group, queue, d.Topic)
		}
		q.groupQueues[queue] = true
	}
	if err := ch.PublishWithContext(ctx, "", queue, false, false, marshal(d.Send, q.topo.cfg.Publisher.Persistent)); err != nil {
		return fmt.Errorf("redrive %s to queue %s: %w (it stays in the poison queue)", d.Send.UUID, queue, err)
	}
	return nil
}

func (q *poisonQueue) Close() error { return nil }
