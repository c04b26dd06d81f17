package kafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// withPositions forwards Watermill's Kafka subscription to a channel of its own, recording each
// message's driver.Position (partition and offset, which the adapter keeps in the context) on its
// context. The adapter hands a nacked message out again as a copy without its context; such a
// copy gets the position of the message it copies, found by UUID among the last message of
// each partition (the adapter has at most one message per partition out at a time). The
// forwarder ends when the adapter closes its channel, ctx is done or closing is closed.
func withPositions(ctx context.Context, closing <-chan struct{}, in <-chan *message.Message, topic, group string, done func()) <-chan *message.Message {
	out := make(chan *message.Message)
	go func() {
		defer done()
		defer close(out)
		type last struct {
			uuid string
			pos  driver.Position
		}
		lastOf := map[int32]last{} // this goroutine's own
		for msg := range in {
			pos := driver.Position{Backend: Name, Topic: topic, ConsumerGroup: group}
			partition, ok := wkafka.MessagePartitionFromCtx(msg.Context())
			if ok {
				offset, _ := wkafka.MessagePartitionOffsetFromCtx(msg.Context())
				pos.Coordinates = Coordinates(partition, offset)
				lastOf[partition] = last{uuid: msg.UUID, pos: pos}
			} else {
				for _, l := range lastOf {
					if l.uuid == msg.UUID {
						pos, ok = l.pos, true
						break
					}
				}
			}
			mctx := msg.Context()
			if mctx == context.Background() {
				mctx = ctx // a redelivered copy: at least end with the subscription
			}
			if ok {
				mctx = driver.ContextWithPosition(mctx, pos)
			}
			if t, ok := wkafka.MessageTimestampFromCtx(msg.Context()); ok {
				mctx = driver.ContextWithBrokerTime(mctx, t)
			}
			msg.SetContext(mctx)
			select {
			case out <- msg:
			case <-ctx.Done():
				return
			case <-closing:
				return
			}
		}
	}()
	return out
}

// Coordinates formats a record's place in its topic as a Position's coordinates:
// "partition:offset", as kcat and kafka-console-consumer write it.
func Coordinates(partition int32, offset int64) string {
	return strconv.FormatInt(int64(partition), 10) + ":" + strconv.FormatInt(offset, 10)
}

// ParseCoordinates reads "partition:offset" back.
func ParseCoordinates(s string) (partition int32, offset int64, err error) {
	ps, os, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("kafka position %q: want partition:offset, e.g. 3:1042: %w", s, driver.ErrInvalidPosition)
	}
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(os, 10, 64)
	if perr != nil || oerr != nil || p < 0 || o < 0 {
		return 0, 0, fmt.Errorf("kafka position %q: want partition:offset, two non-negative numbers: %w", s, driver.ErrInvalidPosition)
	}
	return int32(p), o, nil
}
