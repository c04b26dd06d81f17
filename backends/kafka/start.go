package kafka

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// groupStart places a new consumer group at a time or at a partition's offset before its
// first subscription: it commits, for the group, the offset each partition is to start at, so
// the group's members find a committed offset where they would otherwise use initial_offset.
// Partitions that already have a committed offset keep it: the group is not new there.
type groupStart struct {
	brokers []string
	sc      *sarama.Config
	group   string
	logger  *slog.Logger

	at time.Time // start at the first record stamped at or after it; or
	// partition and offset, when position is true: that partition starts there, the others at
	// initial_offset.
	position  bool
	partition int32
	offset    int64
}

// newGroupStart returns the groupStart for the caller's StartPosition or StartAt, nil when
// neither is set.
func newGroupStart(cfg *Config, sc *sarama.Config, o driver.Options, logger *slog.Logger) (*groupStart, error) {
	if o.StartPosition == "" && o.StartAt.IsZero() {
		return nil, nil
	}
	if cfg.ConsumerGroup == "" {
		return nil, fmt.Errorf("starting at a time or position needs a consumer group to commit it for (consumer_group is empty): %w", driver.ErrNotSupported)
	}
	gs := &groupStart{brokers: cfg.Brokers, sc: sc, group: cfg.ConsumerGroup, logger: logger, at: o.StartAt}
	if o.StartPosition != "" {
		p, off, err := ParseCoordinates(o.StartPosition)
		if err != nil {
			return nil, err
		}
		gs.position, gs.partition, gs.offset = true, p, off
	}
	return gs, nil
}

// apply commits the start offsets of topic's partitions for the group.
func (gs *groupStart) apply(topic string) error {
	client, err := sarama.NewClient(gs.brokers, gs.sc)
	if err != nil {
		return fmt.Errorf("kafka: place group %s on %s: connect: %w", gs.group, topic, err)
	}
	defer client.Close()
	partitions, err := client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("kafka: place group %s on %s: %w", gs.group, topic, err)
	}
	if gs.position && (gs.partition < 0 || int(gs.partition) >= len(partitions)) {
		return fmt.Errorf("kafka start position %d:%d: topic %s has partitions 0 to %d: %w", gs.partition, gs.offset, topic, len(partitions)-1, driver.ErrInvalidPosition)
	}
	coordinator, err := client.Coordinator(gs.group)
	if err != nil {
		return fmt.Errorf("kafka: coordinator of group %s: %w", gs.group, err)
	}
	// What the group has committed; a group the broker does not know has committed nothing
	// (Kafka answers -1 offsets, some brokers GROUP_ID_NOT_FOUND).
	fetch := &sarama.OffsetFetchRequest{Version: 1, ConsumerGroup: gs.group}
	for _, p := range partitions {
		fetch.AddPartition(topic, p)
	}
	committed, err := coordinator.FetchOffset(fetch)
	if err != nil {
		return fmt.Errorf("kafka: offsets of group %s: %w", gs.group, err)
	}
	commit := sarama.NewOffsetCommitRequest(gs.sc, gs.group)
	n := 0
	for _, p := range partitions {
		if gs.position && p != gs.partition {
			continue
		}
		if blk := committed.GetBlock(topic, p); blk != nil && blk.Err == sarama.ErrNoError && blk.Offset >= 0 {
			gs.logger.Warn("consumer group has a committed offset: it goes on from there, not from the start asked for",
				"group", gs.group, "topic", topic, "partition", p, "committed", blk.Offset)
			continue
		}
		off := gs.offset
		if !gs.position {
			if off, err = client.GetOffset(topic, p, gs.at.UnixMilli()); err != nil {
				return fmt.Errorf("kafka: offset of %s partition %d at %s: %w", topic, p, gs.at.Format(time.RFC3339), err)
			}
			if off < 0 { // no record at or after the time: start at the end
				if off, err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
					return fmt.Errorf("kafka: end offset of %s partition %d: %w", topic, p, err)
				}
			}
		}
		commit.AddBlock(topic, p, off, 0, "")
		n++
	}
	if n == 0 {
		return nil
	}
	resp, err := coordinator.CommitOffset(commit)
	if err != nil {
		return fmt.Errorf("kafka: place group %s on %s: commit: %w", gs.group, topic, err)
	}
	for p, kerr := range resp.Errors[topic] {
		if kerr != sarama.ErrNoError {
			return fmt.Errorf("kafka: place group %s on %s partition %d: %w", gs.group, topic, p, kerr)
		}
	}
	return nil
}
