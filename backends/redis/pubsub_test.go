package redis_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPubSub runs Watermill's universal Pub/Sub suite against the driver, on a private
// redis-server that keeps an append-only file, so that the suite's Reconnect test can restart
// it (DEBUG RESTART, in place) without losing what was published. The features are those the
// driver has: consumer groups, persistence, and order with a single subscriber (max_in_flight
// 1). Every subscriber of the default constructor joins group "test", so a new one continues
// where the group is (as on Kafka), rather than reading old messages again.
//
// The suite's Reconnect test races on its own bookkeeping (it appends to a slice in one
// goroutine and reads it in another), so it runs only without -race (scripts/test.sh runs it
// so after the -race run); TestRestartKeepsData checks the same behaviour under -race.
func TestPubSub(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{Persist: true})
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		cfg := testConfig(srv.Addr())
		cfg.ConsumerGroup = group
		cfg.Consumer.ReadBatch = 50
		cfg.Consumer.MinIdle = 5 * time.Second
		cfg.Consumer.DrainTimeout = time.Second
		// TestConcurrentSubscribe opens dozens of buses at once against a server that fsyncs
		// every write: the test config's 1s timeouts measure the machine's load, not the driver.
		cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout = 10*time.Second, 10*time.Second, 10*time.Second
		b, _ := openBus(t, cfg)
		return b.Publisher, b.Subscriber
	}
	var restart []string
	if !raceEnabled {
		restart = srv.RestartCommand()
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     false,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			NewSubscriberReceivesOldMessages:    false,
			RestartServiceCommand:               restart,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
		newPubSub,
	)
}
