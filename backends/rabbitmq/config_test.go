package rabbitmq_test

import (
	"strings"
	"testing"

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
  stream: {start_from: latest}
`)
	require.Len(t, got, 3, strings.Join(got, "\n"))
	assert.Contains(t, got[0], `rabbitmq.exchange.type: fanout sends every message to every bound queue`)
	assert.Contains(t, got[1], "rabbitmq.queue.single_active_consumer: is not available for stream queues")
	assert.Contains(t, got[2], `rabbitmq.stream.start_from: "latest": want oldest or newest`)
	assert.Empty(t, problems(t, "backend: rabbitmq\nrabbitmq:\n  exchange: {type: fanout, name: \"{topic}\"}\n  queue: {type: stream}\n"))
}

func TestDeliveryLimitAndDeadLetterRules(t *testing.T) {
	got := problems(t, `backend: rabbitmq
rabbitmq:
  queue:
    delivery_limit: -1
    dead_letter_queue: dead
    arguments: {x-dead-letter-exchange: dlx}
`)
	require.Len(t, got, 3, strings.Join(got, "\n"))
	assert.Contains(t, got[0], "test.yaml:4: rabbitmq.queue.delivery_limit: -1: must not be negative")
	assert.Contains(t, got[1], `test.yaml:5: rabbitmq.queue.dead_letter_queue: "dead" must contain "{queue}"`)
	assert.Contains(t, got[2], "test.yaml:6: rabbitmq.queue.arguments.x-dead-letter-exchange: is set by queue.dead_letter_queue")
	assert.Empty(t, problems(t, "backend: rabbitmq\nrabbitmq:\n  queue: {delivery_limit: 0, dead_letter_queue: \"\"}\n"))
}
