package bus

import (
	"time"

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

// BrokerTimeOf returns the time the broker gave msg, where the backend keeps one: Kafka's
// record timestamp, the time in a Redis stream id. RabbitMQ keeps none (its timestamp
// property is the publisher's).
func BrokerTimeOf(msg *message.Message) (time.Time, bool) {
	return driver.BrokerTimeFrom(msg.Context())
}
