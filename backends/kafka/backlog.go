package kafka

import (
	"context"
	"errors"
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
			} else if !newest {
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
}
