package rabbitmq_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPubSub runs Watermill's universal Pub/Sub suite against the driver over real connections
// to the shared broker, in this run's vhost, with the features the driver truly has in each
// configuration.
func TestPubSub(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	for _, tc := range []struct {
		name     string
		setup    func(*rabbitmq.Config)
		features tests.Features
	}{
		{
			// The defaults: quorum queues, one topic exchange, messages handed out one at a
			// time, so a single subscriber sees its queue's order.
			name:  "pubsub-quorum",
			setup: func(*rabbitmq.Config) {},
			features: tests.Features{
				ConsumerGroups: true, Persistent: true,
				GuaranteedOrder: true, GuaranteedOrderWithSingleSubscriber: true,
			},
		},
		{
			// Work-queue use: classic queues, an exchange per topic, and up to 16 messages handed
			// out before earlier ones are acked, so order is not kept.
			name: "queue-classic-pipelined",
			setup: func(c *rabbitmq.Config) {
				c.Queue.Type = rabbitmq.QueueClassic
				c.Exchange.Name = "eventbus.{topic}"
				c.Exchange.Type = "direct"
				c.Consumer.MaxInFlight = 16
			},
			features: tests.Features{ConsumerGroups: true, Persistent: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
				cfg := testConfig(url)
				cfg.ConsumerGroup = group
				tc.setup(cfg)
				b := openBackend(t, cfg)
				return b.Publisher, b.Subscriber
			}
			tests.TestPubSub(t, tc.features,
				func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
				newPubSub,
			)
		})
	}
}
