package schema_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/eventbus-go/eventbus/backends/rabbitmq"
	_ "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/schema"
)

// avroConfig writes a config file: section (the backend's) plus schemas in mode.
func avroConfig(t *testing.T, section, mode string) *config.Config {
	t.Helper()
	text := section + "schemas:\n  mode: " + mode + "\n  catalog: " + catalogDir(t) + "\n"
	path := filepath.Join(t.TempDir(), "eventbus.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	return cfg
}

// The Avro codec round-trips an event on every backend, and a schema-invalid event is refused
// before it reaches the broker.
func TestAvroRoundTripOnEveryBackend(t *testing.T) {
	for _, tc := range []struct {
		backend string
		section func(t *testing.T) (yaml, topic string)
	}{
		{"kafka", func(t *testing.T) (string, string) {
			return "backend: kafka\n" + brokertest.KafkaYAML(brokertest.StartKafka(t, 1)), "enrollment-" + watermill.NewShortUUID()
		}},
		{"redis", func(t *testing.T) (string, string) {
			return "backend: redis\nredis:\n  addrs: [" + brokertest.RedisAddr + "]\n", brokertest.RedisStream(t, "eventbus-test:schema")
		}},
		{"rabbitmq", func(t *testing.T) (string, string) {
			return "backend: rabbitmq\nrabbitmq:\n  url: " + brokertest.RabbitMQURL(brokertest.RabbitMQVhost(t)) + "\n", "enrollment"
		}},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			section, topic := tc.section(t)
			ctx := context.Background()
			b, err := schema.Open(ctx, avroConfig(t, section, schema.ModeAvro), bus.WithLogger(brokertest.Logger()),
				bus.WithConsumerGroup("g-"+watermill.NewShortUUID()), bus.WithStartFrom(bus.StartOldest))
			require.NoError(t, err)
			defer b.Close()
			require.Equal(t, tc.backend, b.Backend())
			msgs, err := b.Subscriber.Subscribe(ctx, topic)
			require.NoError(t, err)

			bad := map[string]any{"enrollment": map[string]any{"mode": "audit"}}
			err = b.Publish(ctx, topic, bus.Event{Type: enrollmentCreated, Source: "test", Data: bad})
			require.ErrorIs(t, err, bus.ErrInvalidEvent)
			assert.Contains(t, err.Error(), "missing required field")

			require.NoError(t, b.Publish(ctx, topic, bus.Event{Type: enrollmentCreated, Source: "openedx/lms/web", Key: "k1", Data: sampleEnrollment()}))
			msg := receive(t, msgs)
			msg.Ack()
			assert.Equal(t, handBuiltEnrollment(), []byte(msg.Payload), "plain Avro, as Open edX's Redis bus writes it")
			ev, err := bus.ParseEvent(msg)
			require.NoError(t, err)
			assert.Equal(t, schema.ContentType, ev.ContentType)
			var got enrollmentCreatedData
			require.NoError(t, ev.DecodeData(b.Codec(), &got))
			assert.Equal(t, sampleEnrollment(), got)
		})
	}
}

func TestOpenEdXModeOnKafkaNeedsARegistry(t *testing.T) {
	cfg := avroConfig(t, "backend: kafka\n", schema.ModeOpenEdX)
	_, err := schema.Open(context.Background(), cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Contains(t, err.Error(), "schemas.registry.url")

	cfgNoCatalog, err := config.Parse("x.yaml", []byte("schemas:\n  mode: avro\n"))
	require.NoError(t, err)
	_, err = schema.Open(context.Background(), cfgNoCatalog)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Contains(t, err.Error(), "schemas.catalog")
}
