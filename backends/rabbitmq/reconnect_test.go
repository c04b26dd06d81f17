package rabbitmq_test

import (
	"testing"

	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestReconnect publishes 10,000 messages from 100 publishers while a private node restarts
// its application twice (stop_app, start_app; durable queues keep their messages): every
// confirmed message is received. This is Watermill's universal Reconnect test with exact
// bookkeeping (see brokertest.Reconnect).
func TestReconnect(t *testing.T) {
	n := brokertest.StartRabbitMQ(t)
	cfg := testConfig(n.URL())
	cfg.ConsumerGroup = "test"
	b := openBackend(t, cfg)
	brokertest.Reconnect(t, b.Publisher, b.Subscriber, "reconnect", func() {
		n.StopApp(t)
		n.StartApp(t)
	}, brokertest.ReconnectOptions{})
}
