package rabbitmq_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// The tests in this file hold the driver to the defects of the bare watermill-amqp adapter
// that it exists to fix. Speed itself is measured by the benchmarks in bench_test.go.

// Defect 1: the adapter's default opens and closes a channel for every Publish. The driver
// publishes on a fixed pool, from many goroutines at once.
func TestPublishReusesPooledChannels(t *testing.T) {
	cfg := testConfig(brokertest.RabbitMQRunURL(t))
	cfg.Publisher.Channels = 4
	cfg.Publisher.DeclareGroups = []string{cfg.ConsumerGroup} // a queue to route to
	b := openBackend(t, cfg)
	var conn *rabbitmq.Connection
	require.True(t, b.As(&conn))
	topic := uniqueTopic("pooled")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	before := rabbitmq.ChannelsOpened(conn)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				errs <- b.Publish(ctx, topic, bus.Event{ID: fmt.Sprintf("%d-%d", g, i), Type: "t", Source: "s"})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// The pool's four channels, and one short-lived channel that declared the topic's queue.
	opened := rabbitmq.ChannelsOpened(conn) - before
	assert.LessOrEqual(t, opened, uint64(4+1), "400 publishes from 8 goroutines opened %d channels; the pool has 4", opened)
	assert.Greater(t, opened, uint64(1), "concurrent publishes should use more than one pooled channel")
}

// Defect 2: with the adapter's default (confirms off) a publish the broker refused still
// "succeeds". The driver waits for the confirm and reports the refusal.
func TestPublishReportsBrokerRefusal(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	topic := uniqueTopic("full")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A queue that holds one message and refuses more (x-overflow reject-publish nacks them).
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDeclare("eventbus", "topic", true, false, false, false, nil))
	q, err := ch.QueueDeclare("full."+topic, true, false, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(q.Name, topic, "eventbus", false, nil))

	b := openBackend(t, testConfig(url))
	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "fits", Type: "t", Source: "s"}))
	err = b.Publish(ctx, topic, bus.Event{ID: "refused", Type: "t", Source: "s"})
	require.ErrorIs(t, err, rabbitmq.ErrNacked)
	assert.Contains(t, err.Error(), "message refused")

	// The bare adapter, as configured by default, reports success for the same refusal.
	adapterCfg := wamqp.NewDurablePubSubConfig(url, nil)
	adapterCfg.Exchange.GenerateName = wamqp.GenerateExchangeNameConstant("eventbus")
	adapterCfg.Exchange.Type = "topic"
	adapterCfg.Publish.GenerateRoutingKey = func(topic string) string { return topic }
	adapter, err := wamqp.NewPublisher(adapterCfg, watermill.NopLogger{})
	require.NoError(t, err)
	defer adapter.Close()
	require.NoError(t, adapter.Publish(topic, message.NewMessage("silently-dropped", nil)),
		"the adapter's default publish is expected to report success here")
	q, err = ch.QueueDeclarePassive(q.Name, true, false, false, false, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, q.Messages, "only the first message was stored")
}

// Confirms on: once Publish returns, the broker has the message.
func TestPublishReturnsAfterTheBrokerHasTheMessage(t *testing.T) {
	url := brokertest.RabbitMQRunURL(t)
	cfg := testConfig(url)
	cfg.Publisher.DeclareGroups = []string{cfg.ConsumerGroup}
	b := openBackend(t, cfg)
	topic := uniqueTopic("confirmed")
	events := make([]bus.Event, 300)
	for i := range events {
		events[i] = bus.Event{ID: fmt.Sprint(i), Type: "t", Source: "s"}
	}
	require.NoError(t, b.Publish(context.Background(), topic, events...))

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	q, err := ch.QueueDeclarePassive("eventbus."+topic, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	require.NoError(t, err)
	assert.Equal(t, 300, q.Messages)
}
