package driver

import "context"

// PartitionLag is how far one consumer group is behind on one partition (Kafka), stream
// (Redis) or queue (RabbitMQ) of a topic: what Conn.Lag reports.
type PartitionLag struct {
	// Topic is the topic asked about.
	Topic string
	// Group is the consumer group the lag is measured for.
	Group string
	// Partition names the unit of the topic: a Kafka partition number ("0"), the Redis stream
	// key, or the RabbitMQ queue name.
	Partition string
	// Lag is the number of messages the group has not been handed yet: Kafka's high watermark
	// minus the committed offset, Redis XINFO GROUPS "lag", RabbitMQ's ready messages.
	Lag int64
	// Pending is the number handed out but not yet acknowledged: Redis XINFO GROUPS
	// "pending"; RabbitMQ's unacked messages are not visible over AMQP, so it is -1 there, as
	// on Kafka (where records past the committed offset count as Lag).
	Pending int64
}

// LagFunc reports the lag of the connection's consumer group on topic, one entry per
// partition, stream or queue. It asks the broker, so it also tells whether the broker is
// reachable: an error wrapping ErrUnavailable when it is not.
type LagFunc func(ctx context.Context, topic string) ([]PartitionLag, error)
