package bus

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Position says where a consumed message sits in the broker: backend, topic, consumer group,
// and coordinates in the broker's own terms that only its driver formats and parses (Kafka
// "partition:offset", a Redis stream id, a RabbitMQ queue and delivery tag).
type Position = driver.Position

// PositionOf returns the broker position its subscriber recorded on msg, if any.
func PositionOf(msg *message.Message) (Position, bool) {
	return driver.PositionFrom(msg.Context())
}
