package kafka

import (
	"context"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v2/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
)

// withPositions forwards Watermill's Kafka subscription to a channel of its own, recording each
// message's bus.Position (partition and offset, which the adapter keeps in the context) on its
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
			pos  bus.Position
		}
		lastOf := map[int32]last{} // this goroutine's own
		for msg := range in {
			pos := bus.Position{Backend: Name, Topic: topic, ConsumerGroup: group}
			partition, ok := wkafka.MessagePartitionFromCtx(msg.Context())
			if ok {
				pos.Partition = partition
				pos.Offset, _ = wkafka.MessagePartitionOffsetFromCtx(msg.Context())
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
				mctx = bus.ContextWithPosition(mctx, pos)
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
