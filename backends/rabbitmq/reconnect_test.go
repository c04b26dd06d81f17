package rabbitmq_test

import (
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestReconnect runs Watermill's Reconnect test (10,000 messages from 100 publishers while the
// broker restarts twice) on a private node, which the suite restarts with stop_app/start_app.
// The suite's Reconnect test races on its own bookkeeping, so it runs only without -race:
// scripts/test.sh runs it so after the -race run.
func TestReconnect(t *testing.T) {
	if raceEnabled {
		t.Skip("Watermill's Reconnect test races on its own bookkeeping; scripts/test.sh runs it without -race")
	}
	n := brokertest.StartRabbitMQ(t)
	restart := []string{"bash", "-c", fmt.Sprintf(
		`rabbitmqctl -n %[1]s stop_app >/dev/null && rabbitmqctl -n %[1]s start_app >/dev/null && `+
			`for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/%[2]d) 2>/dev/null && exit 0; sleep 0.2; done; exit 1`,
		n.Name, n.Port)}
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		cfg := testConfig(n.URL())
		cfg.ConsumerGroup = group
		b := openBackend(t, cfg)
		return b.Publisher, b.Subscriber
	}
	tests.TestPubSub(t,
		tests.Features{ConsumerGroups: true, Persistent: true, RestartServiceCommand: restart},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
		newPubSub,
	)
}
