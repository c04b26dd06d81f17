package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
)

// kafkaPartitionReadTimeout bounds the wait for the next record of a partition below the end a
// run fixed: a broker that stops answering ends the run with an error instead of a hang.
const kafkaPartitionReadTimeout = 30 * time.Second

// kafkaCommitEvery bounds how many purged records a run stopped early leaves to the next run.
const kafkaCommitEvery = 500

// kafkaPoisonQueue is a Kafka poison topic seen as the records after the dlq group's committed
// offsets. It reads partitions directly (a partition consumer per partition, no group
// membership), so it takes nothing and no other run or member can hide records from it. Kafka
// cannot delete a single record: a run that removes records commits the dlq group's offset past
// them, and appends again the records before them that it keeps, so that the offset can move.
// Records after the last one a run removes are neither appended nor passed.
type kafkaPoisonQueue struct {
	b                         *bus.Bus
	topic, poisonTopic, group string
	client                    sarama.Client

	ranges      []kafkaRange
	lastRemoved map[int32]int64 // per partition, from the last scan that did not act
}

// kafkaRange is the part of one partition a run works on: [start, end).
type kafkaRange struct {
	partition  int32
	start, end int64
}

func newKafkaPoisonQueue(b *bus.Bus, f *dlqFlags) (*kafkaPoisonQueue, error) {
	var sc *sarama.Config
	var brokers []string
	if !b.As(&sc) || !b.As(&brokers) {
		return nil, errors.New("kafka backend does not expose its Sarama config")
	}
	conf := *sc
	// Reading must never create a topic, and offsets move only when this run commits them.
	conf.Metadata.AllowAutoTopicCreation = false
	conf.Consumer.Offsets.AutoCommit.Enable = false
	conf.Consumer.Return.Errors = false
	client, err := sarama.NewClient(brokers, &conf)
	if err != nil {
		return nil, fmt.Errorf("connect to kafka %v: %w", brokers, err)
	}
	return &kafkaPoisonQueue{b: b, topic: f.topic, poisonTopic: f.poisonTopic, group: f.dlqGroup, client: client}, nil
}

func (q *kafkaPoisonQueue) describe() string {
	return fmt.Sprintf("kafka topic %s (after the offsets of group %s)", q.poisonTopic, q.group)
}

func (q *kafkaPoisonQueue) open(ctx context.Context) (int, error) {
	if err := q.client.RefreshMetadata(); err != nil {
		return 0, fmt.Errorf("read kafka metadata: %w", err)
	}
	topics, err := q.client.Topics()
	if err != nil {
		return 0, fmt.Errorf("list kafka topics: %w", err)
	}
	if !slices.Contains(topics, q.poisonTopic) {
		if !slices.Contains(topics, q.topic) {
			return 0, fmt.Errorf("%w %s: neither it nor its poison topic %s exists on kafka", errUnknownTopic, q.topic, q.poisonTopic)
		}
		return 0, nil // nothing was ever poisoned
	}
	partitions, err := q.client.Partitions(q.poisonTopic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", q.poisonTopic, err)
	}
	admin, err := sarama.NewClusterAdminFromClient(q.client)
	if err != nil {
		return 0, err
	}
	// Not closed: closing the admin closes the shared client.
	committed, err := admin.ListConsumerGroupOffsets(q.group, map[string][]int32{q.poisonTopic: partitions})
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		committed, err = &sarama.OffsetFetchResponse{}, nil // no run has removed anything yet
	}
	if err != nil {
		return 0, fmt.Errorf("offsets of group %s on %s: %w", q.group, q.poisonTopic, err)
	}
	q.ranges = q.ranges[:0]
	count := 0
	for _, p := range partitions {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		oldest, err := q.client.GetOffset(q.poisonTopic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, fmt.Errorf("oldest offset of %s partition %d: %w", q.poisonTopic, p, err)
		}
		end, err := q.client.GetOffset(q.poisonTopic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, fmt.Errorf("high watermark of %s partition %d: %w", q.poisonTopic, p, err)
		}
		start := oldest
		if block := committed.GetBlock(q.poisonTopic, p); block != nil && block.Offset > start {
			start = min(block.Offset, end)
		}
		q.ranges = append(q.ranges, kafkaRange{partition: p, start: start, end: end})
		count += int(end - start)
	}
	return count, nil
}

func (q *kafkaPoisonQueue) scan(ctx context.Context, act bool, visit func(poisonRecord) (dlqDecision, error)) error {
	consumer, err := sarama.NewConsumerFromClient(q.client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	if !act {
		q.lastRemoved = map[int32]int64{}
	}
	for _, r := range q.ranges {
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

func (q *kafkaPoisonQueue) scanPartition(ctx context.Context, consumer sarama.Consumer, p int32, start, end int64, act bool,
	visit func(poisonRecord) (dlqDecision, error)) error {
	pc, err := consumer.ConsumePartition(q.poisonTopic, p, start)
	if err != nil {
		return fmt.Errorf("read %s partition %d from offset %d: %w", q.poisonTopic, p, start, err)
	}
	defer pc.AsyncClose()
	idle := time.NewTimer(kafkaPartitionReadTimeout)
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
				q.poisonTopic, p, kafkaPartitionReadTimeout, next, end-next, end), commit())
		case rec = <-pc.Messages():
		}
		idle.Reset(kafkaPartitionReadTimeout)
		if rec.Offset >= end {
			break // offsets are not dense (compaction, transaction markers)
		}
		d, err := visit(poisonRecord{msg: kafka.DecodeRecord(rec), position: "kafka " + q.poisonTopic + " " + kafka.Coordinates(p, rec.Offset)})
		if err != nil {
			return errors.Join(err, commit())
		}
		next = rec.Offset + 1
		switch {
		case !act:
			if d.remove {
				q.lastRemoved[p] = rec.Offset
			}
		case !d.remove:
			// Kept, but the offset must pass it: append it again (at the topic's end, beyond
			// what this run reads).
			if err := q.b.Publisher.Publish(q.poisonTopic, kafka.DecodeRecord(rec)); err != nil {
				next = rec.Offset
				return errors.Join(fmt.Errorf("append kept record %s again to %s: %w", kafka.Coordinates(p, rec.Offset), q.poisonTopic, err), commit())
			}
		case d.send != nil:
			if err := sendRedrive(q.b, d); err != nil {
				next = rec.Offset
				return errors.Join(err, commit())
			}
			// Committed at once: a later run must not redrive this record again.
			if err := commit(); err != nil {
				return err
			}
			d.removed()
		default:
			d.removed()
			if next-committed >= kafkaCommitEvery {
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
func (q *kafkaPoisonQueue) commit(p int32, offset int64) error {
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

func (q *kafkaPoisonQueue) close() error { return q.client.Close() }
