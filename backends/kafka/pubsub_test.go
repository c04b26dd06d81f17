package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPubSub runs Watermill's universal Pub/Sub suite against the Kafka driver, over TCP to an
// embedded broker, with the features the driver truly has. Ordering is not claimed here: the
// suite checks a total order across keys, and Kafka orders per partition (per key), which
// TestKeyPicksPartition covers.
//
// The suite's own Reconnect test is left out (no restart command): TestReconnect runs it with
// exact bookkeeping.
func TestPubSub(t *testing.T) {
	addr := brokertest.StartRestartableKafka(t).Addr()
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		b := openPubSubBus(t, addr, group)
		return b.Publisher, b.Subscriber
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                   true,
			ExactlyOnceDelivery:              false,
			GuaranteedOrder:                  false,
			Persistent:                       true,
			NewSubscriberReceivesOldMessages: false,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
		newPubSub,
	)
}

// TestReconnect publishes 10,000 messages from 100 publishers while the broker restarts twice
// (in place, keeping its data): every acknowledged message is received.
func TestReconnect(t *testing.T) {
	broker := brokertest.StartRestartableKafka(t)
	b := openPubSubBus(t, broker.Addr(), "test")
	t.Cleanup(func() { _ = b.Close() })
	brokertest.Reconnect(t, b.Publisher, b.Subscriber, "reconnect",
		func() { require.NoError(t, broker.Restart()) }, brokertest.ReconnectOptions{})
}

// openPubSubBus opens a bus on the broker at addr in group, with timeouts short enough for
// the suite's rebalances.
func openPubSubBus(t *testing.T, addr, group string) *bus.Bus {
	cfg := kafka.DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.ConsumerGroup = group
	cfg.Consumer.SessionTimeout = 3 * time.Second
	cfg.Consumer.HeartbeatInterval = 500 * time.Millisecond
	cfg.Consumer.RebalanceTimeout = 3 * time.Second
	cfg.Consumer.DrainTimeout = time.Second
	b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	return b
}
