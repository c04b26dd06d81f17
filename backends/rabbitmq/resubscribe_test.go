package rabbitmq_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// When consuming stops and subscribing again fails (here the group's queue was replaced by one
// with other arguments), the consumer has stopped: that is said at warn, the default level's
// floor, with the broker's reason, not at debug where nobody sees it.
func TestResubscribeFailureIsLoggedAtWarn(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	logs := &brokertest.SyncBuffer{}
	b := openBackend(t, testConfig(url), bus.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	topic := uniqueTopic("resub")
	queue := "eventbus." + topic
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	// Replace the quorum queue with a classic one: the broker cancels the driver's consumer, and
	// its queue.declare (quorum) is refused with PRECONDITION_FAILED from then on.
	require.Eventually(t, func() bool {
		ch, err := conn.Channel()
		if err != nil {
			return false
		}
		defer ch.Close()
		if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
			return false
		}
		_, err = ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"})
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "cannot consume") && strings.Contains(line, "PRECONDITION_FAILED") {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "no warning with the reason; logs:\n%s", logs)
}
