package rabbitmq_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

func problems(t *testing.T, yaml string) []string {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	require.NoError(t, err)
	_, err = bus.BackendConfig(cfg)
	var out []string
	for _, p := range config.Problems(err) {
		out = append(out, p.Error())
	}
	return out
}

func TestDefaultsAreSafeAndValid(t *testing.T) {
	c := rabbitmq.DefaultConfig()
	require.NoError(t, c.Validate())
	assert.True(t, c.Publisher.Confirms)
	assert.True(t, c.Publisher.Persistent)
	assert.True(t, c.Publisher.Mandatory)
	assert.Greater(t, c.Publisher.Channels, 1)
	assert.Greater(t, c.Consumer.Prefetch, 1)
	assert.Equal(t, rabbitmq.QueueQuorum, c.Queue.Type)
	assert.Empty(t, problems(t, "backend: rabbitmq\n"))
}

func TestConfigProblemsNameKeyAndLine(t *testing.T) {
	got := problems(t, `backend: rabbitmq
rabbitmq:
  url: http://broker:5672
  exchange: {type: headers}
  queue:
    type: quorum
    durable: false
    name: "{topic}"
    arguments: {x-queue-type: classic, x-max-length: 10}
  publisher: {confirms: false, channels: 0}
  consumer: {prefetch: 10, max_in_flight: 20}
`)
	want := []string{
		`test.yaml:3: rabbitmq.url: not an amqp:// or amqps:// URL`,
		`test.yaml:4: rabbitmq.exchange.type: "headers": want topic, direct or fanout`,
		`test.yaml:7: rabbitmq.queue.durable: quorum queues are always durable`,
		`test.yaml:8: rabbitmq.queue.name: "{topic}" must contain "{topic}" and "{group}"`,
		`test.yaml:9: rabbitmq.queue.arguments.x-max-length: is set by queue.max_length; remove it here`,
		`test.yaml:9: rabbitmq.queue.arguments.x-queue-type: is set by queue.type; remove it here`,
		`test.yaml:10: rabbitmq.publisher.mandatory: needs publisher.confirms`,
		`test.yaml:10: rabbitmq.publisher.channels: must be at least 1`,
		`test.yaml:11: rabbitmq.consumer.max_in_flight: 20: must be at most consumer.prefetch (10)`,
	}
	require.Len(t, got, len(want), strings.Join(got, "\n"))
	for i := range want {
		assert.True(t, strings.HasPrefix(got[i], want[i]), "got  %s\nwant %s...", got[i], want[i])
	}
}

// TestRenamedKeys: the key of earlier versions fails at its line, naming the new key.
func TestRenamedKeys(t *testing.T) {
	got := problems(t, `backend: rabbitmq
rabbitmq:
  queue: {type: stream}
  stream:
    max_age: 24h
    start_from: newest
`)
	assert.Equal(t, []string{"test.yaml:6: rabbitmq.stream.start_from: renamed to rabbitmq.consumer.start_from"}, got)
}

func TestSharedKeys(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`backend: rabbitmq
rabbitmq:
  consumer: {start_from: newest, max_in_flight: 4, nack_delay: 1s}
  publisher: {max_message_bytes: 65536}
`))
	require.NoError(t, err)
	bc, err := bus.BackendConfig(cfg)
	require.NoError(t, err)
	rc := bc.(*rabbitmq.Config)
	assert.Equal(t, "newest", rc.Consumer.StartFrom)
	assert.Equal(t, 4, rc.Consumer.MaxInFlight)
	assert.Equal(t, time.Second, rc.Consumer.NackDelay)
	assert.Equal(t, 65536, rc.Publisher.MaxMessageBytes)
	assert.Equal(t, 1<<20, rabbitmq.DefaultConfig().Publisher.MaxMessageBytes)
	// Close does not wait for handed-out messages (the broker requeues them), so there is no
	// drain_timeout to set.
	got := problems(t, "backend: rabbitmq\nrabbitmq:\n  consumer: {drain_timeout: 5s}\n")
	require.Len(t, got, 1)
	assert.Contains(t, got[0], "test.yaml:3: rabbitmq.consumer.drain_timeout: unknown key")
}

func TestURLPasswordNeverShown(t *testing.T) {
	t.Setenv("EVENTBUS_TEST_AMQP_URL", "amqp://lms:hunter2-secret@broker:port/x")
	got := problems(t, "backend: rabbitmq\nrabbitmq:\n  url: ${EVENTBUS_TEST_AMQP_URL}\n")
	require.Len(t, got, 1)
	assert.NotContains(t, got[0], "hunter2-secret")
	assert.Contains(t, got[0], "rabbitmq.url")
}

func TestStreamAndFanoutRules(t *testing.T) {
	got := problems(t, `backend: rabbitmq
rabbitmq:
  exchange: {type: fanout}
  queue: {type: stream, single_active_consumer: true}
  consumer: {start_from: latest}
`)
	require.Len(t, got, 3, strings.Join(got, "\n"))
	assert.Contains(t, got[0], `rabbitmq.exchange.type: fanout sends every message to every bound queue`)
	assert.Contains(t, got[1], "rabbitmq.queue.single_active_consumer: is not available for stream queues")
	assert.Contains(t, got[2], `rabbitmq.consumer.start_from: "latest": want oldest or newest`)
	assert.Empty(t, problems(t, "backend: rabbitmq\nrabbitmq:\n  exchange: {type: fanout, name: \"{topic}\"}\n  queue: {type: stream}\n"))
}
