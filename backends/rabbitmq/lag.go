package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// lagFunc answers driver.Conn.Lag with a passive queue.declare of the group's queue: its
// message count is the messages ready for the group (Lag). AMQP does not report unacked
// messages (the management API does), so Pending is -1. A queue that does not exist yet has
// lag 0: the group has not subscribed, and nothing was routed to it. A stream queue has no
// per-group position visible over AMQP: ErrNotSupported.
func lagFunc(conn *Connection, topo topology, group string) driver.LagFunc {
	return func(ctx context.Context, topic string) ([]driver.PartitionLag, error) {
		if topo.stream() {
			return nil, fmt.Errorf("rabbitmq lag of %s: a stream queue's consumer offsets are not visible over AMQP: %w", topic, driver.ErrNotSupported)
		}
		if group == "" {
			return nil, fmt.Errorf("rabbitmq lag of %s: no consumer group configured (private queues): %w", topic, driver.ErrNotSupported)
		}
		queue := topo.queueName(topic, group)
		ch, err := conn.Channel(ctx)
		if err != nil {
			return nil, fmt.Errorf("rabbitmq lag of %s: %w: %w", queue, driver.ErrUnavailable, err)
		}
		defer ch.Close()
		pl := driver.PartitionLag{Topic: topic, Group: group, Partition: queue, Pending: -1}
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			var ae *amqp.Error
			if errors.As(err, &ae) && ae.Code == amqp.NotFound {
				return []driver.PartitionLag{pl}, nil
			}
			return nil, fmt.Errorf("rabbitmq lag of %s: %w: %w", queue, driver.ErrUnavailable, err)
		}
		pl.Lag = int64(q.Messages)
		return []driver.PartitionLag{pl}, nil
	}
}
