package redis_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPubSub runs Watermill's universal Pub/Sub suite against the driver, on a private
// redis-server that keeps an append-only file. The features are those the
// driver has: consumer groups, persistence, and order with a single subscriber (max_in_flight
// 1). Every subscriber of the default constructor joins group "test", so a new one continues
// where the group is (as on Kafka), rather than reading old messages again.
//
// The suite's own Reconnect test is left out (no restart command): TestReconnect runs it with
// exact bookkeeping.
func TestPubSub(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{Persist: true})
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		b := openPubSubBus(t, srv.Addr(), group)
		return b.Publisher, b.Subscriber
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     false,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			NewSubscriberReceivesOldMessages:    false,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
		newPubSub,
	)
}

// TestReconnect publishes 10,000 messages from 100 publishers while the server restarts twice
// (keeping its append-only file, fsynced on every write): every acknowledged message is
// received.
func TestReconnect(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{Persist: true})
	b := openPubSubBus(t, srv.Addr(), "test")
	brokertest.Reconnect(t, b.Publisher, b.Subscriber, "reconnect", srv.Restart, brokertest.ReconnectOptions{})
}

// openPubSubBus opens a bus on the server at addr in group, configured for the suite, closed
// when the test ends.
func openPubSubBus(t *testing.T, addr, group string) *bus.Bus {
	cfg := testConfig(addr)
	cfg.ConsumerGroup = group
	cfg.Consumer.ReadBatch = 50
	cfg.Consumer.MinIdle = 5 * time.Second
	cfg.Consumer.DrainTimeout = time.Second
	// TestConcurrentSubscribe opens dozens of buses at once against a server that fsyncs
	// every write: the test config's 1s timeouts measure the machine's load, not the driver.
	cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout = 10*time.Second, 10*time.Second, 10*time.Second
	b, _ := openBus(t, cfg)
	return b
}
