package driver

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrGroupActive is wrapped by Admin.Rewind's error when the consumer group has live
	// members: stop them first.
	ErrGroupActive = errors.New("consumer group has live members")
	// ErrUnknownTopic is wrapped by Admin's errors for a topic the broker does not have (no
	// Kafka topic, no Redis stream). Admin calls never create a topic.
	ErrUnknownTopic = errors.New("no such topic")
)

// Admin holds the operator's calls on a connection: what `eventbus replay`, `eventbus status`,
// `eventbus dlq` and `eventbus consume` use. A driver sets the ones its broker supports; a nil field makes the
// matching bus call fail with ErrNotSupported.
type Admin struct {
	// Rewind moves a consumer group's position on a topic; see RewindFunc. May be nil.
	Rewind RewindFunc
	// Status describes topics, their consumer groups, members and lag; see StatusFunc. May be
	// nil.
	Status StatusFunc
	// PoisonQueue opens a reader of a topic's poison queue; see PoisonQueueFunc. May be nil.
	PoisonQueue PoisonQueueFunc
	// BacklogEnd captures where a topic's backlog ends for the connection's group; see
	// BacklogEndFunc. May be nil.
	BacklogEnd BacklogEndFunc
	// BacklogEndAfterSubscribe says BacklogEnd is to be called after the subscription is made
	// (Kafka: subscribing places a group that starts at a time or position); otherwise before
	// (Redis, RabbitMQ: reading moves what BacklogEnd looks at).
	BacklogEndAfterSubscribe bool
	// ConsumeNotes says what an operator should know before consuming; see ConsumeNotesFunc.
	// May be nil.
	ConsumeNotes ConsumeNotesFunc
	// DeleteTopics removes topics and what the broker keeps for them; see DeleteTopicsFunc.
	// May be nil.
	DeleteTopics DeleteTopicsFunc
}

// DeleteTopicsFunc removes topics from the broker, with what it keeps for them apart from the
// topic: Kafka topics and then groups (best effort: a group outlives its members briefly),
// Redis streams (their groups go with them), RabbitMQ the queues of groups and of the
// connection's consumer and declared groups on each topic, with their dead-letter queues (the
// exchange is shared and stays). A topic or group that does not exist is no error. It is for
// tools that clean up after themselves: the conformance suite, benchmarks.
type DeleteTopicsFunc func(ctx context.Context, topics, groups []string) error

// RewindTarget is where Rewind moves a group: exactly one field is set.
type RewindTarget struct {
	// At moves the group, on every partition or stream of the topic, to the first message the
	// broker stamped at or after this time; to the end where there is none.
	At time.Time
	// Position moves the group to this message, included: a Position's Coordinates in the
	// driver's format (Kafka "partition:offset", which moves that partition only; a Redis
	// stream id).
	Position string
}

// PartitionPosition is a group's position on one partition (Kafka) or stream (Redis) before
// and after a rewind: the next message the group is handed, in the driver's coordinates.
type PartitionPosition struct {
	Topic     string `json:"topic"`
	Group     string `json:"group"`
	Partition string `json:"partition"`
	// From is where the group stood: the next message it would have been handed ("" when it
	// had no position there, e.g. a Kafka group that never committed on the partition).
	From string `json:"from"`
	// To is where the group stands after the rewind (or would, on a dry run).
	To string `json:"to"`
}

// RewindFunc moves group's position on topic to target, so that the group's next run is handed
// messages again from there; with dryRun it only computes the positions. It refuses, with an
// error wrapping ErrGroupActive, while the group has live members (a member would overwrite
// the move with its next commit, or hold on to what it read), and with ErrNotSupported where
// the broker keeps no position to move.
type RewindFunc func(ctx context.Context, topic, group string, target RewindTarget, dryRun bool) ([]PartitionPosition, error)

// StatusFunc describes topic and its consumer groups: the groups named in groups, or, when
// groups is empty, every group the broker knows on the topic (where it can list them). With
// topic "" it describes every topic the broker can list, or fails with ErrNotSupported where
// it cannot list topics.
type StatusFunc func(ctx context.Context, topic string, groups []string) ([]TopicStatus, error)

// TopicStatus is what StatusFunc reports about one topic.
type TopicStatus struct {
	Topic string
	// Partitions are the topic's partitions (Kafka), its stream (Redis); empty where the broker
	// has no retained log for a topic (RabbitMQ classic and quorum queues).
	Partitions []PartitionStatus
	// Retention is the bound on what the topic retains as the broker or config states it
	// ("retention.ms=604800000", "max_len ~100000"); "" when not known.
	Retention string
	// Groups are the topic's consumer groups, sorted by name.
	Groups []GroupStatus
}

// PartitionStatus is one partition or stream of a topic.
type PartitionStatus struct {
	Partition string
	// Oldest and Newest are the coordinates of the oldest message retained and of the next one
	// to be written (Kafka) or the last written (Redis); "" when empty or unknown.
	Oldest, Newest string
	// Messages is the number of messages retained.
	Messages int64
}

// GroupStatus is one consumer group on a topic.
type GroupStatus struct {
	Group string
	// State is the broker's word for the group ("Stable", "Empty" on Kafka; "active", "idle"
	// as eventbus judges Redis and RabbitMQ groups by their members); "" when not known.
	State string
	// Members are the group's consumers.
	Members []MemberStatus
	// Consumers is the number of consumers when the broker counts them without naming them
	// (RabbitMQ); otherwise len(Members).
	Consumers int
	// Lag is the group's lag per partition, stream or queue, as Conn.Lag reports it.
	Lag []PartitionLag
}

// MemberStatus is one member of a consumer group.
type MemberStatus struct {
	// ID is the member or consumer name.
	ID string
	// ClientID and Host are what the member told the broker (Kafka); "" elsewhere.
	ClientID, Host string
	// Partitions are the partitions of the topic assigned to it (Kafka).
	Partitions []string
	// Pending is the number of messages handed to it and not yet acknowledged (Redis); -1
	// when not known.
	Pending int64
	// Idle is the time since it last read (Redis); -1 when not known.
	Idle time.Duration
}
