package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// publisher adds each message to its topic's stream with XADD, trimming the stream in the same
// command to publisher.retention (MINID) or publisher.max_len (MAXLEN), and to the other with
// an XTRIM in the same round trip when both apply. It replaces watermill-redisstream's
// publisher, which trims only by length and whose closed flag is not safe against a concurrent
// Publish. It refuses messages over publisher.max_message_bytes.
type publisher struct {
	client redis.UniversalClient // its own: closed by Close
	cfg    PublisherConfig

	mu     sync.RWMutex
	closed bool
}

// Publish adds msgs to topic in order; each message's context bounds its XADD. It returns at
// the first message Redis did not take: those before it are in the stream.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("redis publisher %w", driver.ErrClosed)
	}
	if topic == "" {
		return fmt.Errorf("publish: topic (stream key) is empty: %w", driver.ErrInvalidEvent)
	}
	// Every message is checked before the first is sent, so a refused batch leaves no trace.
	for _, msg := range msgs {
		if size := messageBytes(msg); size > p.cfg.MaxMessageBytes {
			return fmt.Errorf("publish message %s to %s: it is %d bytes (payload and metadata), over the limit of %d (redis.publisher.max_message_bytes): %w",
				msg.UUID, topic, size, p.cfg.MaxMessageBytes, driver.ErrTooLarge)
		}
	}
	retention, maxLen := p.cfg.limits(topic)
	for _, msg := range msgs {
		values, err := marshaller{}.Marshal(topic, msg)
		if err != nil {
			return fmt.Errorf("publish message %s to %s: %w", msg.UUID, topic, err)
		}
		if err := p.add(msg.Context(), topic, values, retention, maxLen); err != nil {
			return classify(fmt.Sprintf("publish message %s to %s", msg.UUID, topic), err)
		}
	}
	return nil
}

// add runs XADD, trimming by age in it when retention is set (else by length), and an XTRIM by
// length after it when both are set, in one round trip.
func (p *publisher) add(ctx context.Context, topic string, values map[string]any, retention time.Duration, maxLen int64) error {
	if retention <= 0 || maxLen <= 0 {
		return p.client.XAdd(ctx, xaddArgs(topic, values, retention, maxLen)).Err()
	}
	_, err := p.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		queueAdd(ctx, pipe, topic, values, retention, maxLen)
		return nil
	})
	return err
}

// queueAdd queues on pipe what add runs: for a MULTI that adds an entry together with other
// commands.
func queueAdd(ctx context.Context, pipe redis.Pipeliner, topic string, values map[string]any, retention time.Duration, maxLen int64) {
	pipe.XAdd(ctx, xaddArgs(topic, values, retention, maxLen))
	if retention > 0 && maxLen > 0 {
		pipe.XTrimMaxLenApprox(ctx, topic, maxLen, 0)
	}
}

func xaddArgs(topic string, values map[string]any, retention time.Duration, maxLen int64) *redis.XAddArgs {
	args := &redis.XAddArgs{Stream: topic, Values: values, Approx: true}
	switch {
	case retention > 0:
		args.MinID = minID(time.Now(), retention)
	case maxLen > 0:
		args.MaxLen = maxLen
	}
	return args
}

// minID is the stream id below which entries were added more than retention before now: ids
// start with the millisecond they were added.
func minID(now time.Time, retention time.Duration) string {
	return strconv.FormatInt(now.Add(-retention).UnixMilli(), 10)
}

// messageBytes is what publisher.max_message_bytes counts: the payload plus the metadata keys
// and values, the fields of the stream entry.
func messageBytes(msg *message.Message) int {
	n := len(msg.Payload)
	for k, v := range msg.Metadata {
		n += len(k) + len(v)
	}
	return n
}

// Close closes the publisher's client; Publish fails with bus.ErrClosed afterwards.
func (p *publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.client.Close()
}
