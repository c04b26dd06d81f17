package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/IBM/sarama"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// lagReporter answers driver.Conn.Lag: per partition, the high watermark minus the group's
// committed offset. It keeps one sarama client, opened on first use (a service that never asks
// pays nothing) and closed with the connection.
type lagReporter struct {
	brokers []string
	sc      *sarama.Config
	group   string

	mu     sync.Mutex
	client sarama.Client
	admin  sarama.ClusterAdmin
	closed bool
}

// newLag returns the Conn's Lag function and registers the closing of its client in closers.
func newLag(brokers []string, sc *sarama.Config, group string, closers *[]func() error) driver.LagFunc {
	l := &lagReporter{brokers: brokers, sc: sc, group: group}
	*closers = append(*closers, l.close)
	return l.lag
}

func (l *lagReporter) open() (sarama.Client, sarama.ClusterAdmin, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, driver.ErrClosed
	}
	if l.client != nil {
		return l.client, l.admin, nil
	}
	c, err := sarama.NewClient(l.brokers, l.sc)
	if err != nil {
		return nil, nil, err
	}
	a, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	l.client, l.admin = c, a
	return c, a, nil
}

// lag does not honour ctx's cancellation mid-request (sarama has no context); the client's
// configured timeouts bound it.
func (l *lagReporter) lag(ctx context.Context, topic string) ([]driver.PartitionLag, error) {
	if l.group == "" {
		return nil, fmt.Errorf("kafka lag of %s: no consumer group configured: %w", topic, driver.ErrNotSupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	client, admin, err := l.open()
	if err != nil {
		return nil, fmt.Errorf("kafka lag of %s: connect to %v: %w: %w", topic, l.brokers, driver.ErrUnavailable, err)
	}
	if err := client.RefreshMetadata(topic); err != nil {
		return nil, fmt.Errorf("kafka lag of %s: metadata: %w: %w", topic, driver.ErrUnavailable, err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("kafka lag of %s: partitions: %w: %w", topic, driver.ErrUnavailable, err)
	}
	committed, err := admin.ListConsumerGroupOffsets(l.group, map[string][]int32{topic: parts})
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		// The group never committed (it has not subscribed yet): no offsets.
		committed, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kafka lag of %s for group %s: committed offsets: %w: %w", topic, l.group, driver.ErrUnavailable, err)
	}
	out := make([]driver.PartitionLag, 0, len(parts))
	for _, p := range parts {
		high, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("kafka lag of %s/%d: high watermark: %w: %w", topic, p, driver.ErrUnavailable, err)
		}
		offset := int64(-1)
		if committed != nil {
			if b := committed.GetBlock(topic, p); b != nil {
				offset = b.Offset
			}
		}
		if offset < 0 {
			// No commit yet: the group would read what the partition retains (start_from
			// oldest) or nothing (newest); report the retained records, the larger bound.
			if offset, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
				return nil, fmt.Errorf("kafka lag of %s/%d: oldest offset: %w: %w", topic, p, driver.ErrUnavailable, err)
			}
		}
		out = append(out, driver.PartitionLag{Topic: topic, Group: l.group, Partition: strconv.Itoa(int(p)), Lag: max(high-offset, 0), Pending: -1})
	}
	return out, nil
}

func (l *lagReporter) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.admin == nil {
		return nil
	}
	err := l.admin.Close() // closes the client too
	l.client, l.admin = nil, nil
	return err
}
