package rabbitmq_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
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
  consumer: {start_from: newest, max_in_flight: 4, nack_delay: 1s, drain_timeout: 5s}
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
	assert.Equal(t, 5*time.Second, rc.Consumer.DrainTimeout)
	assert.Equal(t, 10*time.Second, rabbitmq.DefaultConfig().Consumer.DrainTimeout)
	got := problems(t, "backend: rabbitmq\nrabbitmq:\n  consumer: {drain_timeout: 0s}\n")
	require.Len(t, got, 1)
	assert.Contains(t, got[0], "test.yaml:3: rabbitmq.consumer.drain_timeout: must be positive")
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

// A password holding / ? or # ends the URL's authority early, so net/url's error quoted the
// URL, password included; "1234/x9z" even parsed, as port 1234 and a vhost, and showed up in
// every log line naming the broker.
func TestURLPasswordWithDelimitersNeverShown(t *testing.T) {
	for _, raw := range []string{
		"amqp://lms:pa/ss-S3CRET@broker:5672/edx",
		"amqp://lms:pa?ss-S3CRET@broker:5672/edx",
		"amqp://lms:pa#ss-S3CRET@broker:5672/edx",
		"amqps://lms:S3CRET@broker:port/edx",
		"amqp://lms:1234/S3CRET@broker/edx",
		"amqp://lms:S3CRET/@broker",
	} {
		t.Setenv("EVENTBUS_TEST_AMQP_URL", raw)
		got := problems(t, "backend: rabbitmq\nrabbitmq:\n  url: ${EVENTBUS_TEST_AMQP_URL}\n")
		require.Len(t, got, 1, raw)
		assert.True(t, strings.HasPrefix(got[0], "test.yaml:3: rabbitmq.url: "), got[0])
		for _, part := range []string{"S3CRET", "pa/ss", "pa?ss", "pa#ss", "1234"} {
			assert.NotContains(t, got[0], part, raw)
		}
		t.Log(got[0])
	}
}

// tls.enabled with an amqp:// URL connected in plaintext, password included, and the file
// validated. It is now an error at the url key.
func TestTLSEnabledWithPlainURLIsAnError(t *testing.T) {
	got := problems(t, "backend: rabbitmq\nrabbitmq:\n  url: amqp://guest:guest@127.0.0.1:5672/\n  tls:\n    enabled: true\n")
	require.Len(t, got, 1, strings.Join(got, "\n"))
	assert.Equal(t, "test.yaml:3: rabbitmq.url: is amqp:// (plaintext) while tls.enabled is true: use amqps:// and the broker's TLS listener (usually port 5671)", got[0])

	got = problems(t, "backend: rabbitmq\nrabbitmq:\n  url: amqps://guest:guest@127.0.0.1:5671/\n  tls:\n    enabled: true\n")
	assert.Empty(t, got)

	// An amqps:// URL encrypts, but a ca_file under a disabled tls: block was ignored.
	got = problems(t, "backend: rabbitmq\nrabbitmq:\n  url: amqps://guest:guest@127.0.0.1:5671/\n  tls:\n    ca_file: /etc/ssl/ca.pem\n")
	assert.Equal(t, []string{"test.yaml:5: rabbitmq.tls.ca_file: is set but tls.enabled is false, so it would be ignored: set enabled: true or remove it"}, got)

	// On the shared broker's plaintext listener: before, this connected.
	cfg := rabbitmq.DefaultConfig()
	cfg.URL = config.Secret(brokertest.RabbitMQRunURL(t))
	cfg.TLS.Enabled = true
	b, err := bus.OpenConfig(context.Background(), rabbitmq.Name, cfg)
	if err == nil {
		_ = b.Close()
	}
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Contains(t, err.Error(), "url: is amqp:// (plaintext) while tls.enabled is true")
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
