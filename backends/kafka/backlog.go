package kafka

import (
	"context"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// partitionEnds is a topic's end for a group: the last offset to see (high watermark - 1) of
// each partition the group has not read to its end yet.
type partitionEnds map[int32]int64

func (e partitionEnds) Reached() bool { return len(e) == 0 }

func (e partitionEnds) Saw(msg *message.Message) {
	pos, ok := driver.PositionFrom(msg.Context())
	if !ok {
		return
	}
	p, off, err := ParseCoordinates(pos.Coordinates)
	if err == nil && off >= e[p] {
		delete(e, p)
	}
}

// backlogEnd answers driver.Admin.BacklogEnd for group, which, without committed offsets,
// starts at the newest record when newest, else at the oldest (or at a time or position, which
// the subscriber commits when it joins: BacklogEnd runs after Subscribe).
func backlogEnd(brokers []string, sc *sarama.Config, group string, newest bool) driver.BacklogEndFunc {
	return func(_ context.Context, topic string) (driver.BacklogEnd, error) {
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
		// A group that has not joined yet (the subscriber joins in the background) has
		// committed nothing.
		committed, err := committedOffsets(admin, group, topic, partitions)
		if err != nil {
			return nil, fmt.Errorf("kafka: offsets of group %s: %w", group, err)
		}
		ends := partitionEnds{}
		for _, p := range partitions {
			low, high, err := watermarks(client, topic, p)
			if err != nil {
				return nil, fmt.Errorf("kafka: watermarks of %s partition %d: %w", topic, p, err)
			}
			start, ok := committed[p]
			switch {
			case ok:
			case newest:
				start = high // a new group starting at newest reads nothing of the backlog
			default:
				start = low
			}
			if start < high {
				ends[p] = high - 1
			}
		}
		return ends, nil
	}
}
