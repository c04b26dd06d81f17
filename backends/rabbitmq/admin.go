package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// newAdmin answers driver.Admin on RabbitMQ: Status from passive queue.declare (depth and
// consumer count of each group's queue); Rewind is always refused, saying why.
func newAdmin(conn *Connection, topo topology, group string) *driver.Admin {
	return &driver.Admin{
		Rewind: func(_ context.Context, topic, group string, _ driver.RewindTarget, _ bool) ([]driver.PartitionPosition, error) {
			return nil, rewindRefusal(topo, topic, group)
		},
		Status: func(ctx context.Context, topic string, groups []string) ([]driver.TopicStatus, error) {
			return status(ctx, conn, topo, group, topic, groups)
		},
		DeleteTopics: func(ctx context.Context, topics, groups []string) error {
			return deleteTopics(ctx, conn, topo, group, topics, groups)
		},
	}
}

// deleteTopics answers driver.Admin.DeleteTopics: the stream queue of each topic, or the queues
// of the groups (the configured one, those the publisher declares, those named) on each topic
// and their dead-letter queues. The exchange is shared by every topic and stays.
func deleteTopics(ctx context.Context, conn *Connection, topo topology, configured string, topics, groups []string) error {
	all := append(append([]string{configured}, topo.cfg.Publisher.DeclareGroups...), groups...)
	var queues []string
	for _, topic := range topics {
		if topo.stream() {
			queues = append(queues, topo.queueName(topic, ""))
			continue
		}
		for _, g := range all {
			if q := topo.queueName(topic, g); q != "" && !slices.Contains(queues, q) {
				queues = append(queues, q)
				if dl := topo.deadLetterName(q); dl != "" {
					queues = append(queues, dl)
				}
			}
		}
	}
	for _, q := range queues {
		if err := conn.DeleteQueue(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// rewindRefusal says why a group's position cannot be moved on RabbitMQ, and what to do.
func rewindRefusal(topo topology, topic, group string) error {
	if topo.stream() {
		return fmt.Errorf("rabbitmq replay of %s for group %s: AMQP stream consumers keep no server-side offset for a group (each subscription says where it starts, with x-stream-offset), so there is no position to move; start the next subscription where you want instead: consumer.start_from, bus.WithStartAt or consume --from TIME: %w",
			topic, group, driver.ErrNotSupported)
	}
	return fmt.Errorf("rabbitmq replay of %s for group %s: a %s queue deletes a message once it is acked, so there is nothing to go back to; set rabbitmq.queue.type: stream to keep a replayable log: %w",
		topic, group, topo.cfg.Queue.Type, driver.ErrNotSupported)
}

// status describes the queues of topic's groups: those named, else the configured group (AMQP
// cannot list queues or exchanges; the management API can). A topic must be named.
func status(ctx context.Context, conn *Connection, topo topology, configured, topic string, groups []string) ([]driver.TopicStatus, error) {
	if topic == "" {
		return nil, fmt.Errorf("rabbitmq status: AMQP cannot list exchanges or queues; name a topic: %w", driver.ErrNotSupported)
	}
	if len(groups) == 0 && configured != "" {
		groups = []string{configured}
	}
	groups = slices.Clone(groups)
	sort.Strings(groups)
	ts := driver.TopicStatus{Topic: topic}
	if topo.stream() {
		s := topo.cfg.Stream
		switch {
		case s.MaxAge > 0 && s.MaxBytes > 0:
			ts.Retention = fmt.Sprintf("stream.max_age %s, stream.max_bytes %d", s.MaxAge, s.MaxBytes)
		case s.MaxAge > 0:
			ts.Retention = fmt.Sprintf("stream.max_age %s", s.MaxAge)
		case s.MaxBytes > 0:
			ts.Retention = fmt.Sprintf("stream.max_bytes %d", s.MaxBytes)
		}
		q, exists, err := inspect(ctx, conn, topo.queueName(topic, ""))
		if err != nil {
			return nil, err
		}
		// AMQP reports no message count for a stream (queue.declare-ok says 0), and every group
		// reads the same stream keeping no position on the server: neither what the stream
		// retains nor a group's lag is known, only the stream's consumers.
		for _, g := range groups {
			ts.Groups = append(ts.Groups, driver.GroupStatus{Group: g, Consumers: q.Consumers, State: state(exists, q.Consumers)})
		}
		return []driver.TopicStatus{ts}, nil
	}
	if v, ok := topo.cfg.Queue.Arguments["x-max-length"]; ok {
		ts.Retention = fmt.Sprintf("x-max-length %v", v)
	}
	for _, g := range groups {
		queue := topo.queueName(topic, g)
		q, exists, err := inspect(ctx, conn, queue)
		if err != nil {
			return nil, err
		}
		gs := driver.GroupStatus{Group: g, Consumers: q.Consumers, State: state(exists, q.Consumers)}
		gs.Lag = []driver.PartitionLag{{Topic: topic, Group: g, Partition: queue, Lag: int64(q.Messages), Pending: -1}}
		ts.Groups = append(ts.Groups, gs)
	}
	return []driver.TopicStatus{ts}, nil
}

func state(exists bool, consumers int) string {
	switch {
	case !exists:
		return "absent"
	case consumers > 0:
		return "active"
	}
	return "inactive"
}

// inspect looks queue up without declaring it: a passive declare on a channel of its own (a
// missing queue closes the channel). ok is false, with no error, when it does not exist.
func inspect(ctx context.Context, conn *Connection, queue string) (amqp.Queue, bool, error) {
	ch, err := conn.Channel(ctx)
	if err != nil {
		return amqp.Queue{}, false, fmt.Errorf("rabbitmq: inspect queue %s: %w: %w", queue, driver.ErrUnavailable, err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return amqp.Queue{}, false, nil
	}
	if err != nil {
		return amqp.Queue{}, false, classify("rabbitmq: inspect queue "+queue, err)
	}
	return q, true, nil
}
