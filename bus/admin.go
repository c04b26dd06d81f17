package bus

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

var (
	// ErrGroupActive is wrapped by Rewind's error when the consumer group has live members.
	ErrGroupActive = driver.ErrGroupActive
	// ErrUnknownTopic is wrapped by Rewind's, Status's and PoisonQueue's errors for a topic
	// the broker does not have; none of them creates one.
	ErrUnknownTopic = driver.ErrUnknownTopic
	// ErrIncomplete is wrapped by a PoisonQueue's errors when a run cannot see the whole queue.
	ErrIncomplete = driver.ErrIncomplete
)

// DefaultPoisonReaderGroup is the consumer group whose committed offsets mark where a Kafka
// poison queue starts (PoisonQueueOptions.Group): records before them were removed by earlier
// runs of `eventbus dlq`.
const DefaultPoisonReaderGroup = driver.DefaultPoisonReaderGroup

// The types of the operator's calls; see bus/driver for their fields.
type (
	RewindTarget      = driver.RewindTarget
	PartitionPosition = driver.PartitionPosition
	TopicStatus       = driver.TopicStatus
	PartitionStatus   = driver.PartitionStatus
	GroupStatus       = driver.GroupStatus
	MemberStatus      = driver.MemberStatus

	PoisonQueue        = driver.PoisonQueue
	PoisonQueueOptions = driver.PoisonQueueOptions
	PoisonRecord       = driver.PoisonRecord
	PoisonDecision     = driver.PoisonDecision
	BacklogEnd         = driver.BacklogEnd
)

// Rewind moves consumer group's position on topic to target so that the group's next run is
// handed messages again from there (replay), and returns the positions per partition or
// stream, before and after. With dryRun it changes nothing and returns the positions it would
// set. It fails with an error wrapping ErrGroupActive while the group has live members, and
// with ErrNotSupported, saying why, where the backend keeps no position it can move (RabbitMQ).
// Kafka moves committed offsets (offsets for times); Redis sets the group's last delivered id
// (XGROUP SETID).
func (b *Bus) Rewind(ctx context.Context, topic, group string, target RewindTarget, dryRun bool) ([]PartitionPosition, error) {
	if topic == "" || group == "" {
		return nil, fmt.Errorf("rewind: topic and consumer group must not be empty")
	}
	if target.At.IsZero() == (target.Position == "") {
		return nil, fmt.Errorf("rewind %s group %s: give a time or a position, not both or neither", topic, group)
	}
	if err := b.adminReady("rewind "+topic, b.conn.Admin != nil && b.conn.Admin.Rewind != nil); err != nil {
		return nil, err
	}
	return b.conn.Admin.Rewind(ctx, topic, group, target, dryRun)
}

// Status describes topic (every topic the backend can list when topic is ""), its partitions
// or streams, its consumer groups (those named, else every one the backend knows on the
// topic), their members and lag: what kafka-consumer-groups.sh --describe shows. It fails with
// ErrNotSupported where the backend cannot tell.
func (b *Bus) Status(ctx context.Context, topic string, groups ...string) ([]TopicStatus, error) {
	if err := b.adminReady("status of "+topic, b.conn.Admin != nil && b.conn.Admin.Status != nil); err != nil {
		return nil, err
	}
	return b.conn.Admin.Status(ctx, topic, groups)
}

// PoisonQueue opens a reader of topic o.Topic's poison queue o.PoisonTopic through the
// backend's own client: what `eventbus dlq` lists, shows, redrives and purges. Reading takes
// nothing a consumer would see and creates nothing. It fails with ErrNotSupported where the
// backend cannot read its poison queues (a RabbitMQ stream keeps every message: read it with a
// consumer from the oldest).
func (b *Bus) PoisonQueue(ctx context.Context, o PoisonQueueOptions) (PoisonQueue, error) {
	if o.Topic == "" || o.PoisonTopic == "" {
		return nil, fmt.Errorf("poison queue: topic and poison topic must not be empty")
	}
	if err := b.adminReady("poison queue of "+o.Topic, b.conn.Admin != nil && b.conn.Admin.PoisonQueue != nil); err != nil {
		return nil, err
	}
	return b.conn.Admin.PoisonQueue(ctx, o)
}

// SubscribeToEnd subscribes to topic as b.Subscriber does and captures the end of the backlog
// the bus's consumer group has to read, as it stood when the subscription began: a reader that
// passes every message it is handed to end.Saw can stop once end.Reached() (`eventbus consume
// --exit-at-end`). It fails with ErrNotSupported where the backend cannot tell where a topic
// ends (a RabbitMQ stream).
func (b *Bus) SubscribeToEnd(ctx context.Context, topic string) (<-chan *message.Message, BacklogEnd, error) {
	if err := b.adminReady("the end of "+topic, b.conn.Admin != nil && b.conn.Admin.BacklogEnd != nil); err != nil {
		return nil, nil, err
	}
	var end BacklogEnd
	var err error
	if !b.conn.Admin.BacklogEndAfterSubscribe {
		if end, err = b.conn.Admin.BacklogEnd(ctx, topic); err != nil {
			return nil, nil, fmt.Errorf("the end of %s: %w", topic, err)
		}
	}
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	if end == nil {
		if end, err = b.conn.Admin.BacklogEnd(ctx, topic); err != nil {
			return nil, nil, fmt.Errorf("the end of %s: %w", topic, err)
		}
	}
	return msgs, end, nil
}

// ConsumeNotes returns what an operator about to consume topic in the bus's consumer group
// should know first, one sentence each (on RabbitMQ: that messages published before the
// group's queue existed are not in it, that a classic or quorum queue keeps no history); nil
// when there is nothing to say. It creates nothing.
func (b *Bus) ConsumeNotes(ctx context.Context, topic string) ([]string, error) {
	if b.conn.Admin == nil || b.conn.Admin.ConsumeNotes == nil {
		return nil, nil
	}
	if err := b.adminReady("notes on "+topic, true); err != nil {
		return nil, err
	}
	return b.conn.Admin.ConsumeNotes(ctx, topic)
}

// DeleteTopics removes topics from the broker, with what it keeps for them apart from the topic:
// Kafka topics and the named consumer groups (best effort), Redis streams with their groups,
// RabbitMQ the queues of the named, configured and declared groups on each topic with their
// dead-letter queues (a stream queue for queue.type stream; the shared exchange stays). A
// topic or group that does not exist is no error. It is for tools that clean up after
// themselves; it fails with ErrNotSupported where the backend cannot delete.
func (b *Bus) DeleteTopics(ctx context.Context, topics []string, groups ...string) error {
	if err := b.adminReady("delete topics", b.conn.Admin != nil && b.conn.Admin.DeleteTopics != nil); err != nil {
		return err
	}
	return b.conn.Admin.DeleteTopics(ctx, topics, groups)
}

func (b *Bus) adminReady(what string, supported bool) error {
	if !supported {
		return fmt.Errorf("%s on %s: %w", what, b.backend, ErrNotSupported)
	}
	select {
	case <-b.closed:
		return fmt.Errorf("%s: bus %w", what, ErrClosed)
	default:
	}
	return nil
}
