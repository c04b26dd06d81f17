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
// The broker keeps its data on disk and restarts in place on SIGUSR1, which the suite's
// Reconnect test sends. That test races on its own bookkeeping (it appends to a slice in one
// goroutine and reads it in another), so it runs only without -race: scripts/test.sh runs it
// so after the -race run.
func TestPubSub(t *testing.T) {
	broker := brokertest.StartRestartableKafka(t)
	addr := broker.Addr()
	var restart []string
	if !raceEnabled {
		restart = broker.RestartOnSignal()
	}
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		cfg := kafka.DefaultConfig()
		cfg.Brokers = []string{addr}
		cfg.ConsumerGroup = group
		cfg.Consumer.SessionTimeout = 3 * time.Second
		cfg.Consumer.HeartbeatInterval = 500 * time.Millisecond
		cfg.Consumer.RebalanceTimeout = 3 * time.Second
		cfg.Consumer.DrainTimeout = time.Second
		b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(brokertest.Logger()))
		require.NoError(t, err)
		return b.Publisher, b.Subscriber
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                   true,
			ExactlyOnceDelivery:              false,
			GuaranteedOrder:                  false,
			Persistent:                       true,
			NewSubscriberReceivesOldMessages: false,
			RestartServiceCommand:            restart,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
		newPubSub,
	)
}
