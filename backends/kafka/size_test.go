package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// recordBytes measures a message as the Kafka record publisher.max_message_bytes counts.
func recordBytes(topic string) func(*message.Message) int {
	return func(m *message.Message) int { return kafka.RecordBytes(topic, m) }
}

// TestPublishRefusesOversizeRecord: a record over publisher.max_message_bytes fails with
// bus.ErrTooLarge, naming the message, its size, the limit and the key, and never reaches the
// broker; one exactly at the limit goes through.
func TestPublishRefusesOversizeRecord(t *testing.T) {
	const limit = 4096
	cfg, err := config.Parse("test.yaml", fmt.Appendf(nil, "kafka:\n  brokers: [%s]\n  publisher: {max_message_bytes: %d}\n", brokertest.StartKafka(t, 1), limit))
	require.NoError(t, err)
	b, err := bus.Open(context.Background(), cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, limit, b.Capabilities().MaxMessageBytes)
	topic := "sized-" + watermill.NewShortUUID()

	err = b.Publish(context.Background(), topic, bustest.SizedEvent(t, "big", limit+1, recordBytes(topic)))
	require.ErrorIs(t, err, bus.ErrTooLarge)
	for _, want := range []string{"message big", topic, "4097 bytes", "limit of 4096", "kafka.publisher.max_message_bytes"} {
		assert.Contains(t, err.Error(), want)
	}
	require.NoError(t, b.Publish(context.Background(), topic, bustest.SizedEvent(t, "fits", limit, recordBytes(topic))))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "fits", m.UUID, "the refused record reached the topic")
	m.Ack()
}

// TestBrokerSizeLimitIsErrTooLarge: a record under publisher.max_message_bytes that the broker
// refuses as too large (the topic's max.message.bytes is smaller) fails with bus.ErrTooLarge.
func TestBrokerSizeLimitIsErrTooLarge(t *testing.T) {
	b, topic := busWithSmallTopic(t)

	err := b.Publish(context.Background(), topic, bustest.SizedEvent(t, "big", 5000, recordBytes(topic)))
	require.ErrorIs(t, err, bus.ErrTooLarge)
	require.ErrorIs(t, err, sarama.ErrMessageSizeTooLarge)
	assert.Contains(t, err.Error(), "message big")
	assert.Contains(t, err.Error(), "kafka.publisher.max_message_bytes")
}

func ptr[T any](v T) *T { return &v }

// busWithSmallTopic opens a bus whose own limit (publisher.max_message_bytes 100000) is far
// above what the broker takes on the returned topic (max.message.bytes 1000), so that the
// broker, not the bus, refuses a large record. Publishes are not retried.
func busWithSmallTopic(t *testing.T) (*bus.Bus, string) {
	t.Helper()
	addr := brokertest.StartKafka(t, 1)
	cfg, err := config.Parse("test.yaml", fmt.Appendf(nil, "kafka:\n  brokers: [%s]\n  publisher: {max_message_bytes: 100000, retries: 0}\n", addr))
	require.NoError(t, err)
	b, err := bus.Open(context.Background(), cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	topic := "small-" + watermill.NewShortUUID()
	createTopic(t, addr, topic, map[string]*string{"max.message.bytes": ptr("1000")})
	return b, topic
}

// createTopic creates topic with one partition and the given topic configs.
func createTopic(t *testing.T, addr, topic string, configs map[string]*string) {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin([]string{addr}, sc)
	require.NoError(t, err)
	defer admin.Close()
	require.NoError(t, admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: configs}, false))
}
