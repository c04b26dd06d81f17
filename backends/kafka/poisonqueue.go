package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// poisonReadTimeout bounds the wait for the next record of a partition below the end a
// run fixed: a broker that stops answering ends the run with an error instead of a hang.
const poisonReadTimeout = 30 * time.Second

// poisonCommitEvery bounds how many purged records a run stopped early leaves to the next run.
const poisonCommitEvery = 500

// poisonQueue is a Kafka poison topic seen as the records after the dlq group's committed
// offsets. It reads partitions directly (a partition consumer per partition, no group
// membership), so it takes nothing and no other run or member can hide records from it. Kafka
// cannot delete a single record: a run that removes records commits the dlq group's offset past
// them, and appends again the records before them that it keeps, so that the offset can move.
// Records after the last one a run removes are neither appended nor passed.
type poisonQueue struct {
	pub                       message.Publisher
	topic, poisonTopic, group string
	client                    sarama.Client

	parts       []partitionRange // as Open fixed them
	lastRemoved map[int32]int64  // per partition, from the last scan that did not act
}

// partitionRange is the part of one partition a run works on: [start, end).
type partitionRange struct {
	partition  int32
	start, end int64
}

// poisonQueueOpener answers driver.Admin.PoisonQueue: each reader has a client of its own,
// closed with it; pub appends kept records again and sends redrives.
func poisonQueueOpener(brokers []string, sc *sarama.Config, pub message.Publisher) driver.PoisonQueueFunc {
	return func(_ context.Context, o driver.PoisonQueueOptions) (driver.PoisonQueue, error) {
		conf := *sc
		// Reading must never create a topic, and offsets move only when this run commits them.
		conf.Metadata.AllowAutoTopicCreation = false
		conf.Consumer.Offsets.AutoCommit.Enable = false
		conf.Consumer.Return.Errors = false
		client, err := sarama.NewClient(brokers, &conf)
		if err != nil {
			return nil, fmt.Errorf("connect to kafka %v: %w", brokers, err)
		}
		group := o.Group
		if group == "" {
			group = driver.DefaultPoisonReaderGroup
		}
		return &poisonQueue{pub: pub, topic: o.Topic, poisonTopic: o.PoisonTopic, group: group, client: client}, nil
	}
}

func (q *poisonQueue) Describe() string {
	return fmt.Sprintf("kafka topic %s (after the offsets of group %s)", q.poisonTopic, q.group)
}

func (q *poisonQueue) Open(ctx context.Context) (int, error) {
	ranges, count, err := q.ranges(ctx)
	if err != nil {
		return 0, err
	}
	q.parts = ranges
	return count, nil
}

func (q *poisonQueue) Depth(ctx context.Context) (int, error) {
	_, count, err := q.ranges(ctx)
	return count, err
}

// ranges are the parts of the poison topic's partitions past the group's committed offsets, and
// how many records they hold.
func (q *poisonQueue) ranges(ctx context.Context) ([]partitionRange, int, error) {
	if err := q.client.RefreshMetadata(); err != nil {
		return nil, 0, fmt.Errorf("read kafka metadata: %w", err)
	}
	topics, err := q.client.Topics()
	if err != nil {
		return nil, 0, fmt.Errorf("list kafka topics: %w", err)
	}
	if !slices.Contains(topics, q.poisonTopic) {
		if !slices.Contains(topics, q.topic) {
			return nil, 0, fmt.Errorf("%w %s: neither it nor its poison topic %s exists on kafka", driver.ErrUnknownTopic, q.topic, q.poisonTopic)
		}
		return nil, 0, nil // nothing was ever poisoned
	}
	partitions, err := q.client.Partitions(q.poisonTopic)
	if err != nil {
		return nil, 0, fmt.Errorf("partitions of %s: %w", q.poisonTopic, err)
	}
	admin, err := sarama.NewClusterAdminFromClient(q.client)
	if err != nil {
		return nil, 0, err
	}
	// Not closed: closing the admin closes the shared client.
	committed, err := committedOffsets(admin, q.group, q.poisonTopic, partitions) // none: no run removed anything yet
	if err != nil {
		return nil, 0, fmt.Errorf("offsets of group %s on %s: %w", q.group, q.poisonTopic, err)
	}
	var ranges []partitionRange
	count := 0
	for _, p := range partitions {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		start, end, err := watermarks(q.client, q.poisonTopic, p)
		if err != nil {
			return nil, 0, fmt.Errorf("watermarks of %s partition %d: %w", q.poisonTopic, p, err)
		}
		if off, ok := committed[p]; ok && off > start {
			start = min(off, end)
		}
		ranges = append(ranges, partitionRange{partition: p, start: start, end: end})
		count += int(end - start)
	}
	return ranges, count, nil
}

func (q *poisonQueue) Scan(ctx context.Context, act bool, visit func(driver.PoisonRecord) (driver.PoisonDecision, error)) error {
	consumer, err := sarama.NewConsumerFromClient(q.client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	if !act {
		q.lastRemoved = map[int32]int64{}
	}
	for _, r := range q.parts {
		end := r.end
		if act {
			last, ok := q.lastRemoved[r.partition]
			if !ok {
				continue // nothing to remove here: leave the partition as it is
			}
			end = last + 1
		}
		if r.start >= end {
			continue
		}
		if err := q.scanPartition(ctx, consumer, r.partition, r.start, end, act, visit); err != nil {
			return err
		}
	}
	return nil
}

func (q *poisonQueue) scanPartition(ctx context.Context, consumer sarama.Consumer, p int32, start, end int64, act bool,
	visit func(driver.PoisonRecord) (driver.PoisonDecision, error)) error {
	pc, err := consumer.ConsumePartition(q.poisonTopic, p, start)
	if err != nil {
		return fmt.Errorf("read %s partition %d from offset %d: %w", q.poisonTopic, p, start, err)
	}
	defer pc.AsyncClose()
	idle := time.NewTimer(poisonReadTimeout)
	defer idle.Stop()
	next := start      // the next offset to read
	committed := start // the dlq group's offset as this run last committed it
	commit := func() error {
		if !act || next == committed {
			return nil
		}
		if err := q.commit(p, next); err != nil {
			return err
		}
		committed = next
		return nil
	}
	for next < end {
		var rec *sarama.ConsumerMessage
		select {
		case <-ctx.Done():
			return errors.Join(context.Cause(ctx), commit())
		case <-idle.C:
			return errors.Join(fmt.Errorf("%s partition %d: no record for %s at offset %d, %d before the end this run fixed (%d): is the broker up?",
				q.poisonTopic, p, poisonReadTimeout, next, end-next, end), commit())
		case rec = <-pc.Messages():
		}
		idle.Reset(poisonReadTimeout)
		if rec.Offset >= end {
			break // offsets are not dense (compaction, transaction markers)
		}
		d, err := visit(driver.PoisonRecord{Msg: toMessage(rec), Position: "kafka " + q.poisonTopic + " " + Coordinates(p, rec.Offset)})
		if err != nil {
			return errors.Join(err, commit())
		}
		next = rec.Offset + 1
		switch {
		case !act:
			if d.Remove {
				q.lastRemoved[p] = rec.Offset
			}
		case !d.Remove:
			// Kept, but the offset must pass it: append it again (at the topic's end, beyond
			// what this run reads).
			if err := q.pub.Publish(q.poisonTopic, toMessage(rec)); err != nil {
				next = rec.Offset
				return errors.Join(fmt.Errorf("append kept record %s again to %s: %w", Coordinates(p, rec.Offset), q.poisonTopic, err), commit())
			}
		case d.Send != nil:
			if err := q.pub.Publish(d.Topic, d.Send); err != nil {
				next = rec.Offset
				return errors.Join(fmt.Errorf("redrive %s to %s: %w (it stays in the poison queue)", d.Send.UUID, d.Topic, err), commit())
			}
			// Committed at once: a later run must not redrive this record again.
			if err := commit(); err != nil {
				return err
			}
			d.Removed()
		default:
			d.Removed()
			if next-committed >= poisonCommitEvery {
				if err := commit(); err != nil {
					return err
				}
			}
		}
	}
	return commit()
}

// commit sets the dlq group's committed offset of partition p, as a member-less group (the way
// kafka-consumer-groups --reset-offsets does).
func (q *poisonQueue) commit(p int32, offset int64) error {
	coordinator, err := q.client.Coordinator(q.group)
	if err != nil {
		return fmt.Errorf("coordinator of group %s: %w", q.group, err)
	}
	req := sarama.NewOffsetCommitRequest(q.client.Config(), q.group)
	req.AddBlock(q.poisonTopic, p, offset, 0, "eventbus dlq")
	resp, err := coordinator.CommitOffset(req)
	if err != nil {
		return fmt.Errorf("commit offset %d of %s partition %d for group %s: %w", offset, q.poisonTopic, p, q.group, err)
	}
	if kerr := resp.Errors[q.poisonTopic][p]; kerr != sarama.ErrNoError {
		return fmt.Errorf("commit offset %d of %s partition %d for group %s: %w (does a running consumer hold the group?)", offset, q.poisonTopic, p, q.group, kerr)
	}
	return nil
}

func (q *poisonQueue) Close() error { return q.client.Close() }
