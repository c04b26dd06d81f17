package middleware

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
)

// Headers `eventbus dlq redrive` sets on a message it sends back to its topic, besides
// HeaderRedriveCount.
const (
	// HeaderRedriveGroup names the consumer group whose handler failed on the message: the only
	// group that is to handle the redriven copy. On backends where a topic's messages reach every
	// group (Kafka, Redis Streams, a RabbitMQ exchange), the other groups receive it too and
	// RedriveFilter acks it for them unhandled.
	HeaderRedriveGroup = "eventbus_redrive_group"
	// HeaderRedriveID identifies one redrive: the poison queue record it was made from (its
	// backend position). Copies that carry the same value are the same redrive, sent twice by a
	// run that stopped between sending and removing the record; `eventbus dlq` redrives such
	// copies once when they come back to the poison queue.
	HeaderRedriveID = "eventbus_redrive_id"
)

// NewRedriveFilter returns the middleware that lets a redriven message reach only the consumer
// group it was redriven to: a message whose HeaderRedriveGroup names another group than the
// one it was consumed in (bus.PositionOf) is acked without calling the handler. A message
// without the header, or whose consumer group is unknown (a backend that reports no position,
// a subscription without a group), is handled as usual: the filter never drops what it cannot
// tell apart.
func NewRedriveFilter(logger *slog.Logger) message.HandlerMiddleware {
	if logger == nil {
		logger = slog.Default()
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			target := msg.Metadata.Get(HeaderRedriveGroup)
			if target == "" {
				return h(msg)
			}
			pos, ok := bus.PositionOf(msg)
			if !ok || pos.ConsumerGroup == "" || pos.ConsumerGroup == target {
				return h(msg)
			}
			logger.Debug("redriven message is for another consumer group; acked unhandled",
				"message_id", msg.UUID, "redrive_group", target, "consumer_group", pos.ConsumerGroup)
			return nil, nil
		}
	}
}
