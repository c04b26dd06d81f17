package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// Topics the bus creates get kafka.topics.retention and retention_bytes as retention.ms and
// retention.bytes, read back from the broker through the admin API (DescribeConfigs); with
// neither set a created topic has no retention of its own and the broker's default applies.
func TestCreatedTopicsGetConfiguredRetention(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	describe := func(topic string) map[string]string {
		t.Helper()
		sc := sarama.NewConfig()
		sc.Version = sarama.V2_8_0_0
		admin, err := sarama.NewClusterAdmin([]string{addr}, sc)
		require.NoError(t, err)
		defer admin.Close()
		results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms", "retention.bytes"}}}, sarama.DescribeConfigsOptions{})
		require.NoError(t, err)
		require.Len(t, results, 1)
		require.Equal(t, sarama.ErrNoError, results[0].ErrorCode, results[0].ErrorMsg)
		got := map[string]string{}
		for _, e := range results[0].Configs {
			if e.Source == sarama.SourceTopic {
				got[e.Name] = e.Value
			}
		}
		return got
	}
	publish := func(retention time.Duration, retentionBytes int64) string {
		t.Helper()
		cfg := brokertest.KafkaConfig(addr, "g-"+watermill.NewShortUUID(), 1, 1)
		cfg.Topics.Retention = retention
		cfg.Topics.RetentionBytes = retentionBytes
		b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(brokertest.Logger()))
		require.NoError(t, err)
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		topic := "retention-" + watermill.NewShortUUID()
		require.NoError(t, b.Publish(ctx, topic, bus.Event{Type: "t", Source: "s"}))
		return topic
	}

	topic := publish(72*time.Hour, 1<<30)
	assert.Equal(t, map[string]string{"retention.ms": "259200000", "retention.bytes": "1073741824"}, describe(topic))
	assert.Empty(t, describe(publish(0, 0)), "unset: the broker's defaults, nothing set on the topic")
}

func TestRetentionConfigErrors(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte("backend: kafka\nkafka:\n  topics:\n    retention: -1h\n    retention_bytes: -1\n"))
	require.NoError(t, err)
	_, err = bus.BackendConfig(cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Contains(t, err.Error(), "eventbus.yaml:4: kafka.topics.retention: -1h0m0s: must be at least 1ms, or 0 for the broker's default")
	assert.Contains(t, err.Error(), "eventbus.yaml:5: kafka.topics.retention_bytes: must not be negative")
}
