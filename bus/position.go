package bus

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Position says where a consumed message sits in the broker, in the broker's own terms. The
// poison queue records it as provenance; operators use it to find the message again.
type Position struct {
	Backend       string // "kafka", "redis", "rabbitmq"
	Topic         string
	ConsumerGroup string

	// Kafka: the record's partition and offset.
	Partition int32
	Offset    int64
	// Redis Streams: the entry id, e.g. "1732363200000-0".
	StreamID string
	// RabbitMQ: the queue the message was delivered from and its delivery tag on the channel.
	Queue       string
	DeliveryTag uint64
}

// String renders the position compactly, e.g. "kafka enrollments[3]@1042".
func (p Position) String() string {
	switch p.Backend {
	case "kafka":
		return fmt.Sprintf("kafka %s[%d]@%d", p.Topic, p.Partition, p.Offset)
	case "redis":
		return fmt.Sprintf("redis %s@%s", p.Topic, p.StreamID)
	case "rabbitmq":
		return fmt.Sprintf("rabbitmq %s (queue %s) tag %d", p.Topic, p.Queue, p.DeliveryTag)
	}
	return fmt.Sprintf("%s %s", p.Backend, p.Topic)
}

type positionKey struct{}

// ContextWithPosition returns ctx carrying p. Subscribers set it on each message's context.
func ContextWithPosition(ctx context.Context, p Position) context.Context {
	return context.WithValue(ctx, positionKey{}, p)
}

// PositionOf returns the broker position its subscriber recorded on msg, if any.
func PositionOf(msg *message.Message) (Position, bool) {
	p, ok := msg.Context().Value(positionKey{}).(Position)
	return p, ok
}
