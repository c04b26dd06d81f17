package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// backlogEnd is the end of what a topic held when consume started (--exit-at-end): reached
// once every message up to it was seen.
type backlogEnd interface {
	saw(msg *message.Message)
	reached() bool
}

// captureEnd records the end of topic's backlog for group. On Redis and RabbitMQ it must run
// before subscribing, since reading moves what it looks at (a group's last delivered id, a
// queue's depth); on Kafka after, since subscribing places a group that starts at a time or
// position, and offsets are committed only for what consume acked, after printing it.
func captureEnd(ctx context.Context, b *bus.Bus, cfg *config.Config, topic, group string, from bus.StartFrom, startOpts bus.Options) (backlogEnd, error) {
	switch b.Backend() {
	case kafka.Name:
		return kafkaEnd(b, topic, group, from)
	case redis.Name:
		return redisEnd(ctx, b, topic, group, from, startOpts)
	case rabbitmq.Name:
		return rabbitmqEnd(b, cfg, topic, group)
	}
	return nil, fmt.Errorf("backend %s: the end of a topic is not known to this tool: %w", b.Backend(), bus.ErrNotSupported)
}

// partitionEnds is Kafka's end: the last offset to see per partition (high watermark - 1) of
// the partitions the group has not read to their end yet.
type partitionEnds map[int32]int64

func (e partitionEnds) reached() bool { return len(e) == 0 }

func (e partitionEnds) saw(msg *message.Message) {
	pos, ok := bus.PositionOf(msg)
	if !ok {
		return
	}
	p, off, err := kafka.ParseCoordinates(pos.Coordinates)
	if err == nil && off >= e[p] {
		delete(e, p)
	}
}

func kafkaEnd(b *bus.Bus, topic, group string, from bus.StartFrom) (backlogEnd, error) {
	var sc *sarama.Config
	var brokers []string
	if !b.As(&sc) || !b.As(&brokers) {
		return nil, errors.New("kafka: no client configuration")
	}
	client, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka: connect to %v: %w", brokers, err)
	}
	defer client.Close()
	partitions, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: partitions of %s: %w", topic, err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("kafka: admin client: %w", err)
	}
	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: partitions})
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		// A group that has not joined yet (the subscriber joins in the background) has
		// committed nothing.
		committed, err = &sarama.OffsetFetchResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: offsets of group %s: %w", group, err)
	}
	ends := partitionEnds{}
	for _, p := range partitions {
		high, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("kafka: high watermark of %s partition %d: %w", topic, p, err)
		}
		start := high // a new group starting at newest reads nothing of the backlog
		if blk := committed.GetBlock(topic, p); blk != nil && blk.Err == sarama.ErrNoError && blk.Offset >= 0 {
			start = blk.Offset
		} else if from != bus.StartNewest {
			if start, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
				return nil, fmt.Errorf("kafka: low watermark of %s partition %d: %w", topic, p, err)
			}
		}
		if start < high {
			ends[p] = high - 1
		}
	}
	return ends, nil
}

// streamEnd is Redis's end: the id of the stream's last entry.
type streamEnd struct {
	last string
	done bool
}

func (e *streamEnd) reached() bool { return e.done }

func (e *streamEnd) saw(msg *message.Message) {
	if pos, ok := bus.PositionOf(msg); ok && !idLess(pos.Coordinates, e.last) {
		e.done = true
	}
}

func redisEnd(ctx context.Context, b *bus.Bus, topic, group string, from bus.StartFrom, o bus.Options) (backlogEnd, error) {
	var client goredis.UniversalClient
	if !b.As(&client) {
		return nil, errors.New("redis: no client")
	}
	info, err := client.XInfoStream(ctx, topic).Result()
	if err != nil && !strings.Contains(err.Error(), "no such key") {
		return nil, fmt.Errorf("redis: XINFO STREAM %s: %w", topic, err)
	}
	if err != nil || info.Length == 0 {
		return &streamEnd{done: true}, nil
	}
	e := &streamEnd{last: info.LastEntry.ID}
	// Where the group reads from: its last delivered id when it exists; else where it will be
	// created (mirroring the driver's start options).
	start := "0"
	groups, err := client.XInfoGroups(ctx, topic).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: XINFO GROUPS %s: %w", topic, err)
	}
	exists := false
	for _, g := range groups {
		if g.Name == group {
			start, exists = g.LastDeliveredID, true
		}
	}
	switch {
	case exists:
		e.done = !idLess(start, e.last)
	case o.StartPosition != "":
		e.done = idLess(e.last, o.StartPosition)
	case !o.StartAt.IsZero():
		e.done = !idLess(redis.IDBefore(o.StartAt), e.last)
	case from == bus.StartNewest:
		e.done = true
	}
	return e, nil
}

// idLess compares two stream ids (ms-seq).
func idLess(a, b string) bool {
	parse := func(s string) (uint64, uint64) {
		ms, seq, _ := strings.Cut(s, "-")
		m, _ := strconv.ParseUint(ms, 10, 64)
		q, _ := strconv.ParseUint(seq, 10, 64)
		return m, q
	}
	am, aq := parse(a)
	bm, bq := parse(b)
	return am < bm || am == bm && aq < bq
}

// queueDepth is RabbitMQ's end: the number of messages ready in the group's queue.
type queueDepth struct{ left int }

func (e *queueDepth) reached() bool            { return e.left <= 0 }
func (e *queueDepth) saw(msg *message.Message) { e.left-- }

func rabbitmqEnd(b *bus.Bus, cfg *config.Config, topic, group string) (backlogEnd, error) {
	bc, err := bus.BackendConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc, ok := bc.(*rabbitmq.Config)
	if !ok {
		return nil, errors.New("rabbitmq: no config")
	}
	if rc.Queue.Type == rabbitmq.QueueStream {
		return nil, fmt.Errorf("rabbitmq: the end of a stream queue is not known to AMQP clients: %w", bus.ErrNotSupported)
	}
	q, exists, err := inspectQueue(b, rc.QueueName(topic, group))
	if err != nil || !exists {
		return &queueDepth{}, err
	}
	return &queueDepth{left: q.Messages}, nil
}

// inspectQueue looks queue up without declaring it (a passive declare on a channel of its own,
// since a missing queue closes the channel).
func inspectQueue(b *bus.Bus, queue string) (amqp.Queue, bool, error) {
	var conn *amqp.Connection
	if !b.As(&conn) {
		return amqp.Queue{}, false, errors.New("rabbitmq: no connection")
	}
	ch, err := conn.Channel()
	if err != nil {
		return amqp.Queue{}, false, fmt.Errorf("rabbitmq: open channel: %w", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return amqp.Queue{}, false, nil
	}
	if err != nil {
		return amqp.Queue{}, false, fmt.Errorf("rabbitmq: inspect queue %s: %w", queue, err)
	}
	return q, true, nil
}

// warnAboutHistory tells at once, on stderr, when consume on RabbitMQ cannot show what was
// published before it started: a group whose queue does not exist yet gets only what is
// published from now on, and a classic or quorum queue has no oldest to start from.
func warnAboutHistory(w io.Writer, b *bus.Bus, cfg *config.Config, topic, group string, fromGiven bool, from bus.StartFrom) error {
	if b.Backend() != rabbitmq.Name {
		return nil
	}
	bc, err := bus.BackendConfig(cfg)
	if err != nil {
		return err
	}
	rc, ok := bc.(*rabbitmq.Config)
	if !ok || rc.Queue.Type == rabbitmq.QueueStream {
		return nil
	}
	if fromGiven && from == bus.StartOldest {
		fmt.Fprintf(w, "eventbus: note: --from oldest: a RabbitMQ %s queue keeps no history; consume reads what group %s's queue holds now. For replay from the oldest message set rabbitmq.queue.type: stream\n", rc.Queue.Type, group)
	}
	queue := rc.QueueName(topic, group)
	_, exists, err := inspectQueue(b, queue)
	if err != nil {
		return err
	}
	if !exists {
		hint := "set rabbitmq.queue.type: stream"
		for _, g := range rc.Publisher.DeclareGroups {
			if g != group {
				hint = fmt.Sprintf("consume as a group whose queue publish declares (rabbitmq.publisher.declare_groups: --group %s), or %s", g, hint)
				break
			}
		}
		fmt.Fprintf(w, "eventbus: note: group %s has no queue for %s yet; consume declares %s now, and messages published before it existed are not in it. To read those, %s\n", group, topic, queue, hint)
	}
	return nil
}
