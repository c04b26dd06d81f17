package rabbitmq

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// queueDepth is a queue's end: the number of messages ready in it when captured.
type queueDepth struct{ left int }

func (e *queueDepth) Reached() bool          { return e.left <= 0 }
func (e *queueDepth) Saw(_ *message.Message) { e.left-- }

// backlogEnd answers driver.Admin.BacklogEnd for group: the depth of its queue of the topic,
// captured before the subscription takes messages from it. A stream has no depth an AMQP
// client can read.
func backlogEnd(conn *Connection, topo topology, group string) driver.BacklogEndFunc {
	return func(ctx context.Context, topic string) (driver.BacklogEnd, error) {
		if topo.stream() {
			return nil, fmt.Errorf("rabbitmq: the end of a stream queue is not known to AMQP clients: %w", driver.ErrNotSupported)
		}
		q, exists, err := inspect(ctx, conn, topo.queueName(topic, group))
		if err != nil || !exists {
			return &queueDepth{}, err
		}
		return &queueDepth{left: q.Messages}, nil
	}
}

// consumeNotes answers driver.Admin.ConsumeNotes: a group whose classic or quorum queue does
// not exist yet gets only what is published from now on.
func consumeNotes(conn *Connection, topo topology, group string) driver.ConsumeNotesFunc {
	return func(ctx context.Context, topic string) ([]string, error) {
		if topo.stream() {
			return nil, nil
		}
		var notes []string
		queue := topo.queueName(topic, group)
		_, exists, err := inspect(ctx, conn, queue)
		if err != nil {
			return nil, err
		}
		if !exists {
			hint := "set rabbitmq.queue.type: stream"
			for _, g := range topo.cfg.Publisher.DeclareGroups {
				if g != group {
					hint = fmt.Sprintf("consume as a group whose queue publishers declare (rabbitmq.publisher.declare_groups: %s), or %s", g, hint)
					break
				}
			}
			notes = append(notes, fmt.Sprintf("group %s has no queue for %s yet; subscribing declares %s now, and messages published before it existed are not in it. To read those, %s",
				group, topic, queue, hint))
		}
		return notes, nil
	}
}
