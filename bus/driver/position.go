package driver

import (
	"context"
	"strings"
	"time"
)

// Position says where a consumed message sits in the broker. Backend, Topic and ConsumerGroup
// are portable; Coordinates locate the message within the topic in the broker's own terms and
// are formatted and parsed by its driver alone (Kafka "3:1042", partition and offset; Redis
// Streams "1732363200000-0", the entry id; RabbitMQ "eventbus.orders#7", queue and delivery
// tag). The poison queue records positions as provenance; operators use them to find a
// message again.
type Position struct {
	Backend       string
	Topic         string
	ConsumerGroup string
	Coordinates   string
}

// String renders the position for people, e.g. "kafka enrollments 3:1042 (group lms)".
func (p Position) String() string {
	var b strings.Builder
	b.WriteString(p.Backend)
	b.WriteString(" ")
	b.WriteString(p.Topic)
	if p.Coordinates != "" {
		b.WriteString(" ")
		b.WriteString(p.Coordinates)
	}
	if p.ConsumerGroup != "" {
		b.WriteString(" (group ")
		b.WriteString(p.ConsumerGroup)
		b.WriteString(")")
	}
	return b.String()
}

type positionKey struct{}

// ContextWithPosition returns ctx carrying p. Subscribers set it on each message's context.
func ContextWithPosition(ctx context.Context, p Position) context.Context {
	return context.WithValue(ctx, positionKey{}, p)
}

// PositionFrom returns the position a subscriber put on ctx.
func PositionFrom(ctx context.Context) (Position, bool) {
	p, ok := ctx.Value(positionKey{}).(Position)
	return p, ok
}

type brokerTimeKey struct{}

// ContextWithBrokerTime returns ctx carrying the time the broker gave the message (Kafka's
// record timestamp, the milliseconds of a Redis stream id). Subscribers whose broker keeps
// such a time set it on each message's context, beside its position.
func ContextWithBrokerTime(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, brokerTimeKey{}, t)
}

// BrokerTimeFrom returns the broker time a subscriber put on ctx.
func BrokerTimeFrom(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(brokerTimeKey{}).(time.Time)
	return t, ok
}
